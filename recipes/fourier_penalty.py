"""Headline recipe: does penalizing high frequencies at small noise widen the window, at matched quality?

MSE + weight * the energy of x0_hat above 0.35 cycles/pixel at OU times <= 0.1 (where the baseline's error
against the empirical score falls fastest in that band: freqdiff/commands/recipes.py), weights 0 (the baseline), 0.3, 3,
at n = 128 over seeds 0-4; then the Pareto figure and verdict (pareto.md).
Run: `accelerate launch recipes/fourier_penalty.py [--vary regularizer.weight=0,1,10] [--n 128] [--seeds 0,1] ...`
Results: results/fourier_penalty/ (weight-W/ per value, pareto.md, pareto.png). Flags as `freqdiff sweep`.
"""
import sys

from freqdiff.cli import main

if __name__ == "__main__":
    raise SystemExit(main(["sweep", "--recipe", "fourier_penalty", *sys.argv[1:]]))
