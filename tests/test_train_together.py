"""Runs trained together: members match single runs, write ordinary run directories, resume exactly, refuse what cannot stack."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import freqdiff.train.trainer as trainer_module
from conftest import TINY, tiny_config
from freqdiff.core.checkpoint import list_checkpoints
from freqdiff.core.registry import FreqdiffError
from freqdiff.train.grouping import group_runs
from freqdiff.train.members import check_members
from freqdiff.train.trainer import Trainer, train, train_runs

# SGD: Adam turns the float re-association of near-zero gradients into lr-sized steps, hiding what is compared.
# Small U-Net (two levels) with its dropout on: masks, batches, steps and noise must all match.
MEMBERS = [dict(n="8", seed="0"), dict(n="16", seed="1"), dict(n="12", seed="2")]
SETTINGS = dict(steps="200", batch_size="4", optimizer="sgd", lr="0.05", save_every="50", n_checkpoints="3",
                ema="0.9", **{"model.multipliers": "1,2", "model.dropout": "0.1"})
TOLERANCE = 1e-5  # max |w_ensemble - w_single| after 200 SGD steps (measured: ~5e-7)


def weights(run_dir: Path, key: str = "model") -> dict[str, torch.Tensor]:
    return torch.load(run_dir / "state.pt", weights_only=True)[key]


def files(run_dir: Path) -> list[str]:
    return sorted(str(p.relative_to(run_dir)) for p in run_dir.rglob("*") if p.is_file() and not p.name.startswith("."))


def test_members_match_single_runs_and_write_ordinary_run_dirs(tmp_path: Path) -> None:
    configs = [tiny_config(**SETTINGS, **member) for member in MEMBERS]
    for i, cfg in enumerate(configs):
        train(cfg, tmp_path / f"single{i}")
    train_runs([(cfg, tmp_path / f"member{i}") for i, cfg in enumerate(configs)])
    for i in range(len(configs)):
        single, member = tmp_path / f"single{i}", tmp_path / f"member{i}"
        assert files(single) == files(member)
        assert (member / "config.json").read_text() == (single / "config.json").read_text()
        for key in ("model", "ema"):
            a, b = weights(single, key), weights(member, key)
            assert a.keys() == b.keys()
            worst = max((a[k].float() - b[k].float()).abs().max().item() for k in a)
            assert worst < TOLERANCE, f"member {i} {key} differs from its single run by {worst}"


def test_members_are_scored_by_runs_of_equal_objectives_each_with_its_own_loss(tmp_path: Path) -> None:
    """Penalty weights 0, 0, 5: two runs of members share an objective; each member's first loss and logged parts
    are its lone run's (one forward pass, before any step could make them drift)."""
    configs = [tiny_config(batch_size="4", seed=str(i), regularizer="fourier_penalty", **{"regularizer.weight": w})
               for i, w in enumerate(("0", "0", "5"))]
    stack = Trainer([(cfg, tmp_path / f"member{i}") for i, cfg in enumerate(configs)])
    assert stack.shared == [slice(0, 2), slice(2, 3)]
    together = stack.train_step()
    for i, cfg in enumerate(configs):
        [(loss, parts)] = Trainer([(cfg, tmp_path / f"single{i}")]).train_step()
        assert float(together[i][0]) == pytest.approx(float(loss), rel=1e-5)
        assert together[i][1] == pytest.approx(parts, rel=1e-5) and parts["fourier_penalty"] > 0


def test_killed_ensemble_resumes_to_the_same_weights(tmp_path: Path) -> None:
    """SIGKILL a real ensemble process mid-run, rerun it, compare every member with an uninterrupted ensemble."""
    settings = {**{k: v for k, v in TINY.items() if k != "n"}, "steps": "120", "save_every": "10", "ema": "0.9",
                "batch_size": "4"}
    script = ("import sys; from pathlib import Path; sys.path.insert(0, 'tests');"
              "from conftest import tiny_config; from freqdiff.train.trainer import train_runs;"
              f"s = {settings!r}; root = Path(sys.argv[1]);"
              "train_runs([(tiny_config(**s, n=n, seed=str(i)), root / f'm{i}') for i, n in enumerate(('8', '16'))])")
    subprocess.run([sys.executable, "-c", script, str(tmp_path / "whole")], check=True, capture_output=True)
    proc = subprocess.Popen([sys.executable, "-c", script, str(tmp_path / "killed")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    state = tmp_path / "killed" / "m1" / "state.pt"
    deadline = time.time() + 120
    while not state.exists() and time.time() < deadline:
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    subprocess.run([sys.executable, "-c", script, str(tmp_path / "killed")], check=True, capture_output=True)
    for name in ("m0", "m1"):
        whole, resumed = tmp_path / "whole" / name, tmp_path / "killed" / name
        assert list_checkpoints(whole) == list_checkpoints(resumed)
        for key in ("model", "ema"):
            a, b = weights(whole, key), weights(resumed, key)
            assert all(torch.equal(a[k], b[k]) for k in a), f"{name} {key} differs after the resume"


def test_a_member_killed_ahead_of_the_group_steps_back_and_stays_exact(tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """Killed between two members' state writes: on resume the member ahead returns to the group's step."""
    configs = [tiny_config(steps="40", save_every="8", n_checkpoints="2", batch_size="4", n=n, seed=str(i))
               for i, n in enumerate(("8", "12"))]
    train_runs([(cfg, tmp_path / "whole" / f"m{i}") for i, cfg in enumerate(configs)])

    real_save = trainer_module.save_state

    def dies_after_first_member_at_step_24(state, run_dir):
        real_save(state, run_dir)
        if state["step"] == 24:
            raise KeyboardInterrupt("killed between the members' state writes")

    monkeypatch.setattr(trainer_module, "save_state", dies_after_first_member_at_step_24)
    runs = [(cfg, tmp_path / "killed" / f"m{i}") for i, cfg in enumerate(configs)]
    with pytest.raises(KeyboardInterrupt):
        train_runs(runs)
    assert [torch.load(d / "state.pt", weights_only=True)["step"] for _, d in runs] == [24, 16]
    monkeypatch.setattr(trainer_module, "save_state", real_save)
    trainer = Trainer(runs)
    assert [m.step for m in trainer.members] == [16, 16]
    trainer.run()
    for i in range(2):
        a, b = weights(tmp_path / "whole" / f"m{i}"), weights(tmp_path / "killed" / f"m{i}")
        assert all(torch.equal(a[k], b[k]) for k in a)


def test_members_may_differ_only_in_n_seed_steps_and_numeric_regularizer_parameters() -> None:
    check_members([tiny_config(n="8", seed="0", batch_size="8"), tiny_config(n="16", seed="3", steps="48", batch_size="8")])
    check_members([tiny_config(regularizer="fourier_penalty", **{"regularizer.weight": w}) for w in ("0", "0.5")])
    with pytest.raises(FreqdiffError, match=r"runs differ in train.lr \(0.001 vs 0.002\)"):
        check_members([tiny_config(), tiny_config(lr="0.002")])
    with pytest.raises(FreqdiffError, match="batch sizes"):
        check_members([tiny_config(n="8", batch_size="16"), tiny_config(n="16", batch_size="16")])
    with pytest.raises(FreqdiffError, match="regularizer.params.target"):
        check_members([tiny_config(regularizer="fourier_penalty", **{"regularizer.target": t}) for t in ("eps", "x0")])


def test_a_regularizer_that_changes_the_network_must_be_equal_across_members(tmp_path: Path) -> None:
    configs = [tiny_config(regularizer="dropout", **{"regularizer.p": p}) for p in ("0.1", "0.3")]
    with pytest.raises(FreqdiffError, match="changes the network"):
        Trainer([(cfg, tmp_path / f"m{i}") for i, cfg in enumerate(configs)])


def test_runs_are_grouped_by_batch_size_in_order() -> None:
    configs = [tiny_config(n=n, batch_size="8") for n in ("4", "8", "16", "6", "32")]
    assert group_runs(configs, 2) == [[0], [1, 2], [4], [3]]


def test_runs_whose_regularizer_changes_the_network_are_grouped_by_its_settings() -> None:
    filters = [tiny_config(regularizer="spectral_filter", **{"regularizer.cutoff": c}) for c in ("0.25", "0.5", "0.25")]
    penalties = [tiny_config(regularizer="fourier_penalty", **{"regularizer.weight": w}) for w in ("0", "1")]
    assert group_runs(filters, 4) == [[0, 2], [1]]
    assert group_runs(penalties, 4) == [[0, 1]]  # an objective-only parameter may differ inside a stack


def test_runs_whose_process_derives_values_from_their_data_are_stacked_only_with_equal_data(tmp_path: Path) -> None:
    """EDM's sigma_data is measured on each run's images and a stack runs one template process: runs of different n
    stack under DDPM, not under EDM; handed to the trainer together, they are refused in one line."""
    ddpm = [tiny_config(n=n, batch_size="8") for n in ("8", "16")]
    edm = [tiny_config(n=n, batch_size="8", process="edm") for n in ("8", "16", "8")]
    assert group_runs(ddpm, 4) == [[0, 1]]
    assert group_runs(edm, 4) == [[0, 2], [1]]
    with pytest.raises(FreqdiffError, match="sigma_data"):
        Trainer([(cfg, tmp_path / f"m{i}") for i, cfg in enumerate(edm[:2])])
