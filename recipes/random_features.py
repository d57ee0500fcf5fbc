"""The paper's random-features figures (Fig. 4 and 5): psi_p = 64, psi_n in {4, 8, 16, 32}, t in {0.01, 0.1}, d = 100.

    python recipes/random_features.py                   # -> results/random_features/
    python recipes/random_features.py --d 40 --out runs/rf_small

Takes the same flags as `freqdiff theory` (see `--help`); an interrupted run resumes.
"""
from __future__ import annotations

import sys

from freqdiff.registry import FreqdiffError
from freqdiff.theory.cli import main

if __name__ == "__main__":
    try:
        raise SystemExit(main(sys.argv[1:]))
    except FreqdiffError as err:
        print(f"random_features: error: {err}", file=sys.stderr)
        raise SystemExit(2) from None
