"""Projection baselines beside the trained U-Net: empirical, smoothed_empirical (over sigma), els (over the patch size)
and nn_projection of the trained run (over its strength), on the same n, test set, sampler and eval settings; each
trained checkpoint placed on the copy-to-smooth axis (its equivalent smoothing sigma, by f_mem and by spectral
profile), all in one report.

Run: `python recipes/projection_baselines.py [--n 16] [--sigmas 0,0.2,...] [--patches 3,5,7,15] [run flags]`
(`--help` lists the options). Results: results/projection_baselines/ (trained/, baselines/, report.md, figures/).
"""
import sys

from freqdiff.commands.baseline_study import study_main
from freqdiff.core.registry import FreqdiffError

if __name__ == "__main__":
    try:
        raise SystemExit(study_main(sys.argv[1:]))
    except FreqdiffError as err:
        print(f"projection_baselines: error: {err}", file=sys.stderr)
        raise SystemExit(2)
