"""The baseline with equal-SNR noise (Falck et al. 2025): DDPM's schedule, the noise shaped per DCT frequency to the
training subset's variance so every frequency has the same SNR (recorded in config.json): tau_gen, tau_mem vs n.

Run: `accelerate launch recipes/equal_snr.py [--n 128,256] [--seeds 0,1] [--process.floor V] ...`
Results: results/equal_snr/ (one run directory per (n, seed), report.md, figures). Flags as `freqdiff sweep`.
Compare: `freqdiff compare results/baseline results/equal_snr`.
"""
import sys

from freqdiff.cli import main

if __name__ == "__main__":
    if sys.argv[1:2] in (["-h"], ["--help"]):
        print(__doc__)
        raise SystemExit(main(["sweep", "--help"]))
    raise SystemExit(main(["sweep", "--recipe", "equal_snr", *sys.argv[1:]]))
