"""A SIGKILLed sweep resumes exactly: every run's weights equal an uninterrupted sweep's (torch.equal), whether it
was killed right after the first run's window.json (a stack done, the next not begun) or at a random point.

The sweep (3 runs, n = 8, 12, 16 at 2 steps per n, stacks of 2) trains n8 and n12 as one stack, n12 alone once n8
finished at step 16, then n16 alone: a resume must train each unfinished run in the stack the plan gave it. Before
the fix, the unfinished runs were regrouped on resume (n12 with n16), so n16 trained as a stack of one (vmap) instead
of a lone network, and its weights differed in the last bits.
"""
from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from conftest import TINY

REPO = Path(__file__).resolve().parents[1]
FAST = {k: v for k, v in TINY.items() if k not in ("n", "steps")}
RUNS = ("n00008-seed0", "n00012-seed0", "n00016-seed0")

# `python -m freqdiff.cli ARGV` with os.replace watched: SIGKILL itself at the nth rename onto a file named TARGET,
# before or after it is done (nth 0: never), and list every renamed file's name in COUNT_FILE when it exits.
KILLER = """
import atexit, json, os, runpy, signal, sys
from pathlib import Path
target, nth, when, count_file = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
real, seen, names = os.replace, [0], []
def replace(src, dst, *args, **kwargs):
    hit = Path(dst).name == target and seen[0] + 1 == nth
    seen[0] += Path(dst).name == target
    if hit and when == "before":
        os.kill(os.getpid(), signal.SIGKILL)
    result = real(src, dst, *args, **kwargs)
    names.append(Path(dst).name)
    if hit:
        os.kill(os.getpid(), signal.SIGKILL)
    return result
os.replace = replace
atexit.register(lambda: count_file != "-" and Path(count_file).write_text(json.dumps(names)))
sys.argv = ["freqdiff", *sys.argv[5:]]
runpy.run_module("freqdiff.cli", run_name="__main__", alter_sys=True)
"""


def sweep_argv(out: Path) -> list[str]:
    flags = {"recipe": "baseline", "n": "8,12,16", "seeds": "0", "steps": "8", "steps_per_n": "2", "batch_size": "4",
             "ensemble": "2", "workers": "1", "report": "false", "out": str(out), **FAST}
    return ["sweep", *[token for key, value in flags.items() for token in (f"--{key}", value)]]


def sweep(out: Path, target: str = "-", nth: int = 0, when: str = "after", count: Path | None = None) -> int:
    """The sweep into `out` in a fresh process, killed at the nth rename onto `target` (nth 0: never)."""
    argv = [sys.executable, "-c", KILLER, target, str(nth), when, str(count or "-"), *sweep_argv(out)]
    result = subprocess.run(argv, cwd=REPO, capture_output=True, env={**os.environ, "FREQDIFF_WORKERS": "1"})
    assert result.returncode in (0, -signal.SIGKILL), result.stderr.decode()[-3000:]
    return result.returncode


@pytest.fixture(scope="module")
def whole(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    """An uninterrupted sweep, and the names of the files it renamed into place, in order."""
    root = tmp_path_factory.mktemp("whole")
    assert sweep(root / "out", count=root / "renames.json") == 0
    return root / "out", json.loads((root / "renames.json").read_text())


def state(run: Path) -> dict:
    return torch.load(run / "state.pt", weights_only=True)


def assert_same_runs(whole: Path, resumed: Path, where: str) -> None:
    for name in RUNS:
        a, b = state(whole / name), state(resumed / name)
        assert a["step"] == b["step"], f"{name} ({where}): step {b['step']}, uninterrupted {a['step']}"
        for key in ("model", "ema"):
            if a[key] is None:
                continue
            differ = [k for k in a[key] if not torch.equal(a[key][k], b[key][k])]
            assert not differ, f"{name} {key} ({where}): {len(differ)} tensors differ from the uninterrupted sweep"
        assert (whole / name / "metrics.csv").read_text() == (resumed / name / "metrics.csv").read_text(), name


def test_killed_right_after_the_first_window_resumes_to_the_same_stacks(whole, tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert sweep(out, "window.json", 1, "after") == -signal.SIGKILL
    assert (out / RUNS[0] / "window.json").exists() and not (out / RUNS[1] / "window.json").exists()
    assert not (out / RUNS[2] / "state.pt").exists()  # the second stack had not begun
    assert sweep(out) == 0
    assert_same_runs(whole[0], out, "killed after the first window.json")


def test_killed_at_a_random_point_resumes_to_the_same_weights(whole, tmp_path: Path) -> None:
    """A random rename of a resume state (state.pt), killed before or after it: mid-training of either stack."""
    writes = whole[1].count("state.pt")
    rng = random.Random()
    nth, when = rng.randint(1, writes - 1), rng.choice(("before", "after"))
    where = f"killed {when} state.pt write {nth} of {writes}"
    out = tmp_path / "out"
    assert sweep(out, "state.pt", nth, when) == -signal.SIGKILL, where
    assert sweep(out) == 0, where
    assert_same_runs(whole[0], out, where)
