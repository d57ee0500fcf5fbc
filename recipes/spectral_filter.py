"""Low-pass the network's denoised estimate x0_hat above 0.35 cycles/pixel (hard radial mask), in training and
sampling, at the small-noise OU times t <= t_max where the baseline approaches the memorizer fastest in that band.

t_max 0 (the filter never acts: the baseline), 0.03, 0.1, at n = 128 over seeds 0-4; then the Pareto figure and
verdict (pareto.md). --regularizer.kind butterworth selects a smooth mask, --regularizer.cutoff another cutoff.
Run: `accelerate launch recipes/spectral_filter.py [--vary regularizer.t_max=0,1] [--n 128] [--seeds 0,1] ...`
Results: results/spectral_filter/ (t_max-T/ per value, pareto.md, pareto.png). Flags as `freqdiff sweep`.
"""
import sys

from freqdiff.cli import main

if __name__ == "__main__":
    raise SystemExit(main(["sweep", "--recipe", "spectral_filter", *sys.argv[1:]]))
