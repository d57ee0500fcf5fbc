"""The random-features study: tau_mem against psi_n read four ways, in the theorem's regime (Gaussian-equivalent
model, psi_p up to 4096) and in the exact model (psi_p = 64), with intervals over draws; tau_gen; a GD check.

    python recipes/random_features.py            # -> results/random_features/ (about 15 minutes on 2 busy cores)
    python recipes/random_features.py --quick    # -> runs/random_features_quick/ (under a minute)
    python recipes/random_features.py --help     # every option

Takes the same flags as `freqdiff theory`; an interrupted run resumes.
"""
from __future__ import annotations

import sys

from freqdiff.core.registry import FreqdiffError
from freqdiff.theory.cli import main

if __name__ == "__main__":
    try:
        raise SystemExit(main(sys.argv[1:]))
    except FreqdiffError as err:
        print(f"random_features: error: {err}", file=sys.stderr)
        raise SystemExit(2) from None
