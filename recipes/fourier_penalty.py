"""Headline recipe: penalize the energy of the eps prediction above a radial cutoff; does the window widen?

Run: `accelerate launch recipes/fourier_penalty.py [--n 8,16,32] [--seeds 0,1] [--regularizer NAME --regularizer.PARAM V] ...`
Results: results/fourier_penalty/ (one run directory per (n, seed), report.md, figures). Flags as `freqdiff sweep`.
"""
import sys

from freqdiff.cli import main

if __name__ == "__main__":
    raise SystemExit(main(["sweep", "--recipe", "fourier_penalty", *sys.argv[1:]]))
