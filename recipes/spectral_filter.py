"""Low-pass the network's denoised estimate x0_hat in Fourier space, in training and sampling alike.

The filter is the regularizer's default: a hard radial mask (kind=hard) at cutoff 0.25 cycles/pixel,
not a Butterworth filter (--regularizer.kind butterworth selects that).

Run: `accelerate launch recipes/spectral_filter.py [--n 8,16,32] [--seeds 0,1] [--regularizer NAME --regularizer.PARAM V] ...`
Results: results/spectral_filter/ (one run directory per (n, seed), report.md, figures). Flags as `freqdiff sweep`.
"""
import sys

from freqdiff.cli import main

if __name__ == "__main__":
    raise SystemExit(main(["sweep", "--recipe", "spectral_filter", *sys.argv[1:]]))
