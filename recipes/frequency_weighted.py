"""Down-weight the denoising MSE above a radial cutoff (Parseval: unit weights = plain MSE).

Run: `accelerate launch recipes/frequency_weighted.py [--n 8,16,32] [--seeds 0,1] [--regularizer NAME --regularizer.PARAM V] ...`
Results: results/frequency_weighted/ (one run directory per (n, seed), report.md, figures). Flags as `freqdiff sweep`.
"""
import sys

from freqdiff.cli import main

if __name__ == "__main__":
    raise SystemExit(main(["sweep", "--recipe", "frequency_weighted", *sys.argv[1:]]))
