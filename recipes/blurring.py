"""The baseline with blurring diffusion (Hoogeboom & Salimans 2023): heat dissipation per DCT frequency plus the
cosine log-SNR noise, eps prediction, ancestral sampling with its per-frequency posterior: tau_gen, tau_mem vs n.

Run: `accelerate launch recipes/blurring.py [--n 128,256] [--seeds 0,1] [--process.sigma_blur_max V] ...`
Results: results/blurring/ (one run directory per (n, seed), report.md, figures). Flags as `freqdiff sweep`.
Compare: `freqdiff compare results/baseline results/blurring`.
"""
import sys

from freqdiff.cli import main

if __name__ == "__main__":
    if sys.argv[1:2] in (["-h"], ["--help"]):
        print(__doc__)
        raise SystemExit(main(["sweep", "--help"]))
    raise SystemExit(main(["sweep", "--recipe", "blurring", *sys.argv[1:]]))
