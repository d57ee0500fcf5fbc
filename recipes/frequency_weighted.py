"""Down-weight the denoising MSE above 0.35 cycles/pixel at OU times <= 0.1 (Parseval: unit weights = plain MSE).

high_weight 1 (the baseline), 0.3, 0.1 at n = 128 over seeds 0-4; then the Pareto figure and verdict (pareto.md).
Run: `accelerate launch recipes/frequency_weighted.py [--vary regularizer.high_weight=1,0.01] [--n 128] ...`
Results: results/frequency_weighted/ (high_weight-W/ per value, pareto.md, pareto.png). Flags as `freqdiff sweep`.
"""
import sys

from freqdiff.cli import main

if __name__ == "__main__":
    raise SystemExit(main(["sweep", "--recipe", "frequency_weighted", *sys.argv[1:]]))
