"""Two real CPU ranks (gloo) through `accelerate launch`: a run's batch split with identical weights; an ensemble's
members shared out; a failing two-rank train ends in one line."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from ddp_probe import ENSEMBLE
from test_catalogue import snapshot, train_argv

from conftest import tiny_config
from freqdiff.core.io import LOCK_NAME, RunLock
from freqdiff.train.trainer import train

PROBE = Path(__file__).parent / "ddp_probe.py"


def launch(out: Path, processes: int, *args: str, ok: bool = True,
           script: list[str] | None = None) -> subprocess.CompletedProcess:
    """`accelerate launch` of the probe on `out` (or of `script`, e.g. the CLI); -q: no launcher traceback."""
    env = {**os.environ, "ACCELERATE_USE_CPU": "1", "OMP_NUM_THREADS": "1"}
    multi = ["--multi_gpu"] if processes > 1 else []
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "-q", *multi, "--num_processes", str(processes),
           "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", "0",
           *(script or [str(PROBE), str(out)]), *args]
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert (result.returncode == 0) == ok, result.stderr[-3000:]
    return result


def test_two_ranks_split_the_batch_and_end_identical(tmp_path: Path) -> None:
    launch(tmp_path / "two", 2)
    launch(tmp_path / "one", 1)
    r0, r1 = (torch.load(tmp_path / "two" / f"rank{r}.pt", weights_only=False) for r in (0, 1))
    (single,) = (torch.load(tmp_path / "one" / "rank0.pt", weights_only=False),)
    assert r0["world"] == r1["world"] == 2 and single["world"] == 1
    for a, b, whole in zip(r0["seen"], r1["seen"], single["seen"]):
        assert len(a) == len(b) == len(whole) // 2, "each rank takes half of the global batch"
        assert not set(a) & set(b) and sorted(a + b) == sorted(whole), "split, not duplicated"
    for key, value in r0["weights"].items():
        assert torch.equal(value, r1["weights"][key]), f"ranks differ in {key}"
        assert torch.allclose(value, single["weights"][key], atol=1e-5), f"2 ranks != 1 rank in {key}"


def test_an_ensemble_is_sharded_over_two_ranks_and_matches_single_runs(tmp_path: Path) -> None:
    launch(tmp_path / "two", 2, "ensemble")
    for i, n in enumerate(("8", "16")):
        single = tmp_path / f"single{i}"
        train(tiny_config(**ENSEMBLE, n=n, seed=str(i)), single)
        a, b = (torch.load(d / "state.pt", weights_only=True)["model"] for d in (single, tmp_path / "two" / f"member{i}"))
        assert all(torch.allclose(a[k], b[k], atol=1e-5) for k in a), f"member {i} != its single run"


RANK_FAULTS = {  # case: (flags, words of the one line)
    "a user's folder as --out": ({}, ["holds files that are not a freqdiff run (notes.txt)", "nothing was written"]),
    "a NaN loss": ({"lr": "1e30"}, ["loss became nan at step 2", "training stopped (no state was saved)"]),
    "a lock another live process holds": ({}, [f"is being written by pid {os.getpid()}", LOCK_NAME]),
}


@pytest.mark.parametrize("case", RANK_FAULTS)
def test_a_failing_two_rank_train_is_one_line(case: str, tmp_path: Path) -> None:
    """The main rank prints the one line and exits 2; the other rank, which failed alike, says nothing, and neither
    waits for the other. The refusals leave the run as it was; nothing outside the run changes."""
    flags, words = RANK_FAULTS[case]
    run = tmp_path / "run"
    run.mkdir()
    (tmp_path / "beside.txt").write_text("the user's\n")
    if case == "a user's folder as --out":
        (run / "notes.txt").write_text("mine")
    lock = RunLock(run).acquire() if case == "a lock another live process holds" else None
    before = snapshot(tmp_path)
    try:
        result = launch(run, 2, *train_argv(run, **flags), ok=False, script=["-m", "freqdiff.cli"])
        after = snapshot(tmp_path)  # while the lock is held: releasing it empties it
    finally:
        if lock is not None:
            lock.release()
    lines = [line for line in result.stderr.splitlines() if "error:" in line]
    assert len(lines) == 1 and lines[0].startswith("freqdiff train: error: "), result.stderr[-3000:]
    assert all(word in lines[0] for word in words), lines[0]
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    cause = result.stderr[result.stderr.index("Root Cause"):]  # the launcher's summary: rank 0 exited 2
    assert re.search(r"rank\s*: 0 \(local_rank: 0\)\s*exitcode\s*: 2 ", cause), result.stderr[-3000:]
    if case == "a NaN loss":  # it wrote into its run, and nothing beside it
        before, after = ({k: v for k, v in files.items() if not k.startswith("run/")} for files in (before, after))
    assert after == before
