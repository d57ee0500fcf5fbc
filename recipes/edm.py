"""The baseline with EDM's process (Karras et al. 2022): preconditioned denoiser, log-normal training sigma, Heun's
sampler on the rho = 7 grid (25 levels: 49 network evaluations, the baseline DDIM's 50): tau_gen, tau_mem vs n.

Run: `accelerate launch recipes/edm.py [--n 128,256] [--seeds 0,1] [--process.sigma_data V] ...`
Results: results/edm/ (one run directory per (n, seed), report.md, figures). Flags as `freqdiff sweep`.
Compare: `freqdiff compare results/baseline results/edm`.
"""
import sys

from freqdiff.cli import main

if __name__ == "__main__":
    if sys.argv[1:2] in (["-h"], ["--help"]):
        print(__doc__)
        raise SystemExit(main(["sweep", "--help"]))
    raise SystemExit(main(["sweep", "--recipe", "edm", *sys.argv[1:]]))
