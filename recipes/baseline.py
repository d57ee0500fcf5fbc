"""The paper's recipe (plain epsilon MSE, DDPM, U-Net) scaled to the embedded digits: tau_gen, tau_mem vs n.

Run: `accelerate launch recipes/baseline.py [--n 8,16,32] [--seeds 0,1] [--regularizer NAME --regularizer.PARAM V] ...`
Results: results/baseline/ (one run directory per (n, seed), report.md, figures). Flags as `freqdiff sweep`.
"""
import sys

from freqdiff.cli import main

if __name__ == "__main__":
    raise SystemExit(main(["sweep", "--recipe", "baseline", *sys.argv[1:]]))
