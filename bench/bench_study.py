"""A whole study end to end (train, eval, window, report) under two settings, one after the other:
  --axis ensemble: one run at a time (`--ensemble 1`, how the sweep trained before) against the automatic
                   ensembles (`--ensemble 0`, the default);
  --axis workers:  one worker process (`--workers 1`, one core) against the default (one worker per core).

Both sweeps run the same recipe in fresh temporary directories, one after the other (a study is too long to
interleave), in separate processes; the wall times and their ratio are printed. Any sweep flag is passed on.
Usage: python bench/bench_study.py [--axis ensemble|workers] [--recipe baseline] [sweep flags, e.g. --n 64,128]
"""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# axis -> ((label, flags) before, (label, flags) after)
AXES = {
    "ensemble": (("one run at a time (--ensemble 1)", ["--ensemble", "1"]), ("ensembles (--ensemble 0)", ["--ensemble", "0"])),
    "workers": (("one core (--workers 1)", ["--workers", "1"]), ("default (one worker per core)", [])),
}


def timed_sweep(argv: list[str], out: Path) -> float:
    """Wall seconds of `freqdiff sweep ARGV --out OUT` in its own process (FREQDIFF_WORKERS unset: the default)."""
    env = {k: v for k, v in os.environ.items() if k != "FREQDIFF_WORKERS"}
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "freqdiff.cli", "sweep", *argv, "--out", str(out)],
                   check=True, stdout=subprocess.DEVNULL, env=env)
    return time.perf_counter() - start


def split_axis(argv: list[str]) -> tuple[str, list[str]]:
    """The --axis value (default ensemble) and the remaining sweep flags; the recipe defaults to baseline."""
    axis = "ensemble"
    if "--axis" in argv:
        i = argv.index("--axis")
        axis, argv = argv[i + 1] if i + 1 < len(argv) else "", argv[:i] + argv[i + 2:]
    if axis not in AXES:
        raise SystemExit(f"bench_study: --axis {axis!r} is not one of {', '.join(AXES)}")
    return axis, argv if "--recipe" in argv else ["--recipe", "baseline", *argv]


def main(argv: list[str]) -> None:
    if "-h" in argv or "--help" in argv:
        print(__doc__)
        return
    axis, argv = split_axis(argv)
    (label_a, flags_a), (label_b, flags_b) = AXES[axis]
    with tempfile.TemporaryDirectory() as tmp:
        before = timed_sweep([*argv, *flags_a], Path(tmp) / "a")
        after = timed_sweep([*argv, *flags_b], Path(tmp) / "b")
    width = max(len(label_a), len(label_b)) + 1
    print(f"study: freqdiff sweep {' '.join(argv)}")
    print(f"{label_a + ':':<{width}} {before:8.1f} s")
    print(f"{label_b + ':':<{width}} {after:8.1f} s   speed-up {before / after:.2f}x")


if __name__ == "__main__":
    main(sys.argv[1:])
