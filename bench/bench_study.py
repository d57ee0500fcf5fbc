"""A whole study end to end (train, eval, window, report), before and after ensembles: one run at a time
(`--ensemble 1`, how the sweep trained before) against the automatic ensembles (`--ensemble 0`, the default).

Both sweeps run the same recipe in fresh temporary directories, one after the other (a study is too long to
interleave), in separate processes; the wall times and their ratio are printed. Any sweep flag is passed on.
Usage: python bench/bench_study.py [--recipe baseline] [sweep flags, e.g. --n 64,128 --seeds 0,1]
"""
from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path


def timed_sweep(argv: list[str], out: Path, ensemble: str) -> float:
    """Wall seconds of `freqdiff sweep ... --ensemble <ensemble> --out <out>` in its own process."""
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "freqdiff.cli", "sweep", *argv, "--ensemble", ensemble, "--out", str(out)],
                   check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def main(argv: list[str]) -> None:
    if "-h" in argv or "--help" in argv:
        print(__doc__)
        return
    argv = argv if "--recipe" in argv else ["--recipe", "baseline", *argv]
    with tempfile.TemporaryDirectory() as tmp:
        before = timed_sweep(argv, Path(tmp) / "one_at_a_time", "1")
        after = timed_sweep(argv, Path(tmp) / "ensembles", "0")
    print(f"study: freqdiff sweep {' '.join(argv)}")
    print(f"one run at a time (--ensemble 1): {before:8.1f} s")
    print(f"ensembles (--ensemble 0):         {after:8.1f} s   speed-up {before / after:.2f}x")


if __name__ == "__main__":
    main(sys.argv[1:])
