"""The trainer: checkpoints, grids, exact resume after a real kill, config guard, NaN stop."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from conftest import TINY, tiny_config
from freqdiff.core.checkpoint import checkpoint_steps, list_checkpoints
from freqdiff.core.registry import FreqdiffError
from freqdiff.regularizers import Regularizer
from freqdiff.train.trainer import Trainer, train


def final_weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return torch.load(run_dir / "state.pt", weights_only=False)["model"]


def test_checkpoint_steps_are_log_spaced_and_end_at_the_last_step() -> None:
    steps = checkpoint_steps(10, 10_000, 4)
    assert steps == [10, 100, 1000, 10_000]
    assert checkpoint_steps(50, 30, 5) == [30]


def test_tiny_run_writes_config_checkpoints_grids_and_log(tmp_path: Path) -> None:
    cfg = tiny_config()
    train(cfg, tmp_path / "run")
    run = tmp_path / "run"
    assert json.loads((run / "config.json").read_text()) == cfg.to_dict()
    expected = checkpoint_steps(cfg.train.first_checkpoint, cfg.train.steps, cfg.train.n_checkpoints)
    assert list_checkpoints(run) == expected
    assert sorted(p.name for p in (run / "samples").glob("*.png")) == [f"step_{s:08d}.png" for s in expected]
    records = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == list(range(4, 25, 4))
    assert all(r["loss"] > 0 and "mse" in r for r in records)


def test_rerunning_a_finished_run_changes_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    train(tiny_config(), tmp_path / "run")
    before = final_weights(tmp_path / "run")
    train(tiny_config(), tmp_path / "run")
    assert "already trained" in capsys.readouterr().out
    assert all(torch.equal(before[k], v) for k, v in final_weights(tmp_path / "run").items())


def test_resume_into_a_different_config_is_refused_naming_the_keys(tmp_path: Path) -> None:
    train(tiny_config(), tmp_path / "run")
    with pytest.raises(FreqdiffError) as err:
        train(tiny_config(lr="5e-4", **{"model.width": "16"}), tmp_path / "run")
    assert "train.lr" in str(err.value) and "model.params.width" in str(err.value)


def test_killed_run_resumes_to_the_same_weights(tmp_path: Path) -> None:
    """SIGKILL a real `freqdiff train` process mid-run, rerun the command, compare with an uninterrupted run."""
    flags = {**TINY, "steps": "120", "save_every": "20", "n_checkpoints": "4", "ema": "0.9"}
    train(tiny_config(**flags), tmp_path / "whole")
    argv = [sys.executable, "-m", "freqdiff.cli", "train", "--out", str(tmp_path / "killed")]
    for key, value in flags.items():
        argv += [f"--{key}", value]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    state = tmp_path / "killed" / "state.pt"
    deadline = time.time() + 120
    while not state.exists() and time.time() < deadline:
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    killed_at = torch.load(state, weights_only=False)["step"]
    assert 0 < killed_at < 120, "the kill must land mid-run for this test to mean anything"
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    whole, resumed = final_weights(tmp_path / "whole"), final_weights(tmp_path / "killed")
    assert all(torch.equal(whole[k], resumed[k]) for k in whole)
    ema_whole = torch.load(tmp_path / "whole" / "state.pt", weights_only=False)["ema"]
    ema_resumed = torch.load(state, weights_only=False)["ema"]
    assert all(torch.equal(ema_whole[k], ema_resumed[k]) for k in ema_whole)


def test_nan_loss_stops_and_keeps_the_last_good_state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real_objective = Regularizer.objective
    calls = {"n": 0}

    def poisoned(self, terms):
        calls["n"] += 1
        if calls["n"] > 10:
            terms.output = terms.output * float("nan")
        return real_objective(self, terms)

    monkeypatch.setattr(Regularizer, "objective", poisoned)
    with pytest.raises(FreqdiffError) as err:
        train(tiny_config(), tmp_path / "run")
    message = str(err.value)
    # the last state written before step 11: checkpoints at 4 and 10, resume states every 8 steps
    assert "at step 11" in message and "last good state: step 10" in message
    assert torch.load(tmp_path / "run" / "state.pt", weights_only=False)["step"] == 10
    assert list_checkpoints(tmp_path / "run") == [4, 10]
    assert all(torch.isfinite(v).all() for v in final_weights(tmp_path / "run").values())


def test_global_batch_is_min_n_B(tmp_path: Path) -> None:
    trainer = Trainer([(tiny_config(batch_size="4"), tmp_path / "run")])
    assert len(trainer.local_indices(trainer.members[0])) == 4
    trainer = Trainer([(tiny_config(batch_size="512"), tmp_path / "run2")])
    assert sorted(trainer.local_indices(trainer.members[0]).tolist()) == list(range(8))


def test_each_checkpoint_reaches_on_checkpoint_once_written(tmp_path: Path) -> None:
    """`--eval_checkpoints true` hangs evaluation on this hook; it must see every checkpoint, after its file exists."""
    seen: list[tuple[int, bool]] = []
    train(tiny_config(), tmp_path / "run",
          on_checkpoint=lambda run_dir, step: seen.append((step, (run_dir / "checkpoints" / f"step_{step:08d}.pt").exists())))
    assert seen == [(step, True) for step in list_checkpoints(tmp_path / "run")] and len(seen) >= 2
