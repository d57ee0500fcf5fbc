"""Two real CPU ranks (gloo) through `accelerate launch`: a run's batch split with identical weights; an ensemble's
members shared out."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import torch
from ddp_probe import ENSEMBLE

from conftest import tiny_config
from freqdiff.train.trainer import train

PROBE = Path(__file__).parent / "ddp_probe.py"


def launch(out: Path, processes: int, *args: str, ok: bool = True) -> subprocess.CompletedProcess:
    env = {**os.environ, "ACCELERATE_USE_CPU": "1", "OMP_NUM_THREADS": "1"}
    multi = ["--multi_gpu"] if processes > 1 else []
    cmd = [sys.executable, "-m", "accelerate.commands.launch", *multi, "--num_processes", str(processes),
           "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", str(PROBE), str(out), *args]
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


def test_a_refused_run_stops_every_rank(tmp_path: Path) -> None:
    """The main rank refuses --out (a user's file there); the other rank must hear it, not wait forever."""
    (tmp_path / "two" / "run").mkdir(parents=True)
    (tmp_path / "two" / "run" / "notes.txt").write_text("mine")
    result = launch(tmp_path / "two", 2, ok=False)
    assert "holds files that are not a freqdiff run" in result.stderr
    assert (tmp_path / "two" / "run" / "notes.txt").read_text() == "mine"
