"""freqdiff refine: kept states, exact extra checkpoints (single run and ensemble member), end to end, bad input."""
from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest
import torch

from conftest import TINY, tiny_config
from freqdiff.analysis.reading.curves import load_refined
from freqdiff.analysis.reading.onsets import Onset
from freqdiff.cli import main
from freqdiff.commands.refine import RefineOptions, plan, train_segment
from freqdiff.core.checkpoint import list_checkpoints, load_checkpoint
from freqdiff.core.io import read_csv, torch_load
from freqdiff.metrics.evaluate import evaluate_run
from freqdiff.train.trainer import train, train_runs

# A residual MLP on 4 images whose fitted FD plateau (tau_gen ~270, checkpoints 10..1500) and copies (tau_mem ~210)
# both fall inside the run.
WINDOWED = {"model": "mlp", "model.width": "128", "n": "4", "steps": "1500", "first_checkpoint": "10",
            "n_checkpoints": "10", "batch_size": "512", "ema": "0.9", "lr": "3e-3", "save_every": "100000",
            "n_samples": "64"}
# Short runs for exactness: Adam with EMA, checkpoints at 5, 17 and 60.
SHORT = {"model": "mlp", "model.width": "32", "steps": "60", "first_checkpoint": "5", "n_checkpoints": "3",
         "ema": "0.9", "save_every": "25", "batch_size": "4"}


def short(**extra: str):
    """A SHORT run config with `extra` settings."""
    return tiny_config(**{**SHORT, **extra})


def kept(run_dir: Path) -> list[int]:
    return sorted(int(p.stem.split("_")[1]) for p in (run_dir / "states").glob("step_*.pt"))


def tensors_equal(a: dict, b: dict) -> bool:
    """Model and EMA weights equal bit for bit (and the same keys)."""
    return all((a[k] is None and b[k] is None) or (a[k].keys() == b[k].keys() and
                                                    all(torch.equal(a[k][n], b[k][n]) for n in a[k]))
               for k in ("model", "ema"))


def fingerprint(root: Path, skip: str = "") -> dict[str, str]:
    """sha256 of every file below root (not the lock, nor below `skip`)."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*"))
            if p.is_file() and p.name != ".freqdiff.lock" and not (skip and p.is_relative_to(root / skip))}


@pytest.fixture(scope="module")
def windowed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A trained, evaluated run (its window: tau_gen reached, tau_mem censored)."""
    run = tmp_path_factory.mktemp("refine") / "run"
    train(tiny_config(**WINDOWED), run)
    evaluate_run(run, progress=False)
    return run


@pytest.fixture
def run_copy(windowed: Path, tmp_path: Path) -> Path:
    shutil.copytree(windowed, tmp_path / "run")
    return tmp_path / "run"


# ---- (a) exactness --------------------------------------------------------------------------------------------
def test_a_refined_checkpoint_equals_one_the_single_run_was_configured_to_save(tmp_path: Path) -> None:
    train(short(), tmp_path / "run")
    assert list_checkpoints(tmp_path / "run") == [5, 17, 60]
    segment = train_segment(tmp_path / "run", 17, 60, 3)
    assert segment["reproduces_b"] and segment["new_steps"] == [23, 32, 44]
    s = 32
    train(short(first_checkpoint=str(s), n_checkpoints="1"), tmp_path / "reference")
    refined, reference = load_checkpoint(tmp_path / "run" / "refine", s), load_checkpoint(tmp_path / "reference", s)
    assert refined["step"] == reference["step"] == s
    assert tensors_equal(refined, reference)
    assert not tensors_equal(refined, load_checkpoint(tmp_path / "reference", 60))  # the comparison can fail


def test_a_refined_checkpoint_of_a_run_trained_beside_others_equals_its_own(tmp_path: Path) -> None:
    """A run trained beside others keeps the batched arithmetic, which differs from a lone run's in the last bits:
    refine must use it, also from step 0."""
    def members(root: Path, **extra: str) -> list:
        return [(short(**extra, n=n, seed=str(i)), root / f"m{i}") for i, n in enumerate(("8", "12"))]

    train_runs(members(tmp_path / "ensemble"))
    run = tmp_path / "ensemble" / "m0"
    segment = train_segment(run, 17, 60, 3)
    assert segment["reproduces_b"]
    train_runs(members(tmp_path / "reference", first_checkpoint="32", n_checkpoints="1"))
    assert tensors_equal(load_checkpoint(run / "refine", 32), load_checkpoint(tmp_path / "reference" / "m0", 32))
    train(short(n="8", seed="0", first_checkpoint="32", n_checkpoints="1"), tmp_path / "single")
    assert not tensors_equal(load_checkpoint(run / "refine", 32), load_checkpoint(tmp_path / "single", 32))
    assert train_segment(run, 0, 5, 2)["reproduces_b"]


# ---- (b) kept states ------------------------------------------------------------------------------------------
def test_states_are_kept_at_every_checkpoint_and_resume_from_any_of_them(tmp_path: Path) -> None:
    whole = tmp_path / "whole"
    train(short(), whole)
    assert kept(whole) == list_checkpoints(whole) == [5, 17, 60]
    final = torch_load(whole / "state.pt")
    for step in kept(whole):
        resumed = tmp_path / f"from{step}"
        resumed.mkdir()
        shutil.copyfile(whole / "config.json", resumed / "config.json")
        shutil.copyfile(whole / "states" / f"step_{step:08d}.pt", resumed / "state.pt")
        assert torch_load(resumed / "state.pt")["step"] == step
        train(short(), resumed)
        again = torch_load(resumed / "state.pt")
        assert again["step"] == 60 and tensors_equal(final, again)
        assert all(torch.equal(x, y) for x, y in zip(final["optimizer"]["state"][0].values(),
                                                     again["optimizer"]["state"][0].values()))


def test_ensembles_keep_states_too_and_keep_states_false_keeps_none(tmp_path: Path) -> None:
    train_runs([(short(n=n, seed=str(i)), tmp_path / f"m{i}") for i, n in enumerate(("8", "12"))])
    assert kept(tmp_path / "m0") == kept(tmp_path / "m1") == [5, 17, 60]
    train(short(keep_states="false"), tmp_path / "none")
    assert not (tmp_path / "none" / "states").exists()
    train(short(keep_states="true"), tmp_path / "none")  # a setting that may change on resume


# ---- (c) end to end -------------------------------------------------------------------------------------------
def test_refine_end_to_end_then_a_second_refine_does_nothing(run_copy: Path, capsys: pytest.CaptureFixture[str]) -> None:
    own = fingerprint(run_copy)
    assert main(["refine", str(run_copy), "--samples", "96", "--points", "3", "--target", "0.1", "--rounds", "2"]) == 0
    out = capsys.readouterr().out
    assert "tau_gen" in out and "tau_mem" in out
    assert fingerprint(run_copy, skip="refine") == own  # the run's metrics, checkpoints, states, window untouched
    rows = read_csv(run_copy / "refine" / "metrics.csv")
    assert rows == load_refined(run_copy)
    assert (run_copy / "refine" / "metrics.csv").read_text().splitlines()[0] == \
        (run_copy / "metrics.csv").read_text().splitlines()[0]
    assert {r["n_samples"] for r in rows} == {"96"}
    assert json.loads((run_copy / "refine" / "eval_config.json").read_text())["n_samples"] == 96
    report = json.loads((run_copy / "refine" / "refine.json").read_text())
    first = report["rounds"][0]
    a, b = first["before"]["tau_gen"]["bracket"]
    new = first["segments"][0]["new_steps"]
    assert first["segments"][0]["reproduces_b"] and len(new) == 3 and all(a < s < b for s in new)
    assert {a, *new, b} <= {int(r["step"]) for r in rows}  # the bracket and its new checkpoints, measured
    assert {int(r["step"]) for r in read_csv(run_copy / "metrics.csv")} <= {int(r["step"]) for r in rows}  # all
    assert list_checkpoints(run_copy / "refine") == sorted(s for r in report["rounds"] for g in r["segments"]
                                                           for s in g["new_steps"])
    cost = first["cost"]
    assert cost["train_s"] > 0 and cost["measure_s"] > 0 and cost["train_steps"] >= b - a
    assert cost["samples"] == 96 * len(first["measured"])
    after = report["rounds"][-1]["after"]
    # 96 samples a checkpoint on 4 images: the copy counts pin tau_mem closer (0.90 -> 0.55 here), while the FD of
    # so few samples need not; the narrowing of both on a real run is in results/refine/
    assert after["tau_mem"]["half_width"] < first["before"]["tau_mem"]["half_width"]
    assert set(report["status"]) == {"tau_gen", "tau_mem"}

    refined = fingerprint(run_copy / "refine")
    met = str(max(after["tau_gen"]["half_width"], after["tau_mem"]["half_width"], 0.1))
    assert main(["refine", str(run_copy), "--samples", "96", "--points", "3", "--target", met]) == 0
    assert "nothing to do" in capsys.readouterr().out
    assert fingerprint(run_copy / "refine") == refined and fingerprint(run_copy, skip="refine") == own


# ---- (d) bad input --------------------------------------------------------------------------------------------
def test_a_run_without_kept_states_is_refused_naming_the_state_and_writing_nothing(
        run_copy: Path, capsys: pytest.CaptureFixture[str]) -> None:
    shutil.rmtree(run_copy / "states")  # as trained with --keep_states false
    before = fingerprint(run_copy)
    assert main(["refine", str(run_copy), "--samples", "64"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "states/step_" in err and "no kept state at step" in err and "--keep_states true" in err
    assert not (run_copy / "refine").exists() and fingerprint(run_copy) == before


@pytest.mark.parametrize("flags, words", [(["--sample", "64"], ["unknown parameter 'sample'", "did you mean 'samples'",
                                                                  "parameters: target, samples, points, budget, rounds"]),
                                          (["--points", "0"], ["refine.points: 0 is out of range", ">= 1"]),
                                          (["--samples", "8"], ["--samples: samples has 8 images"])])
def test_bad_options_are_one_line_and_write_nothing(run_copy: Path, capsys: pytest.CaptureFixture[str],
                                                    flags: list[str], words: list[str]) -> None:
    before = fingerprint(run_copy)
    assert main(["refine", str(run_copy), *flags]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and all(w in err for w in words), err
    assert not (run_copy / "refine").exists() and fingerprint(run_copy) == before


def test_refine_help_lists_its_own_options(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["refine", "--help"]) == 0
    out = capsys.readouterr().out
    assert all(f"--{name} " in out for name in ("target", "samples", "points", "budget", "rounds"))
    assert "--n_samples" not in out


# ---- sweep --refine -------------------------------------------------------------------------------------------
def test_sweep_refine_refines_the_finished_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from freqdiff.commands.sweep import job_command, parse_sweep_argv, plan, sweep_main

    refined: list[str] = []
    monkeypatch.setattr("freqdiff.commands.sweep.refine_run", lambda run_dir, **_: refined.append(Path(run_dir).name))
    fast = {k: v for k, v in TINY.items() if k not in ("n", "steps")}
    argv = ["--recipe", "baseline", "--n", "8", "--seeds", "0", "--steps", "16", "--steps_per_n", "0",
            "--out", str(tmp_path), "--report", "false", *[t for k, v in fast.items() for t in (f"--{k}", v)]]
    assert sweep_main([*argv, "--refine", "true"]) == 0
    assert refined == ["n00008-seed0"]
    assert sweep_main(argv) == 0 and refined == ["n00008-seed0"]  # off by default
    run = plan(*parse_sweep_argv(argv))[0]
    assert job_command(run, 1, refine=True).endswith(f"freqdiff window {run.run_dir} && freqdiff refine {run.run_dir}")


# ---- reading the intervals ------------------------------------------------------------------------------------
STEPS = [10, 17, 29, 49, 82, 139, 236, 400]


@pytest.mark.parametrize("onset, reason, bracket", [
    (Onset(236, ">=", "fit", estimate=None, low=236.0, high=None),
     "right-censored (>= 236: not reached by the last checkpoint 400): not refined", None),
    (Onset(400, ">=", "never"), "right-censored (>= 400: not reached by the last checkpoint 400): not refined", None),
    (Onset(None, "", "no FD computed"), "undefined (no FD computed): not refined", None),
    (Onset(139, "", "first in the band"), "", (82, 139)),  # no interval from the reader: the checkpoints around
    (Onset(120, "", "fit", estimate=120.0, low=90.0, high=150.0), "", (82, 236)),
    (Onset(10, "<=", "fit", estimate=8.0, low=None, high=12.0), "", (0, 17)),  # before the first: from step 0
    (Onset(236, "", "fit", estimate=236.0, low=230.0, high=240.0), "met (±2.1% <= ±5.0%)", None),
    (Onset(390, "", "fit", estimate=390.0, low=300.0, high=None), "its interval reaches past the last checkpoint 400",
     None),
])
def test_each_transition_is_bracketed_by_the_checkpoints_around_its_interval(onset: Onset, reason: str,
                                                                             bracket: tuple[int, int] | None) -> None:
    p = plan("tau", onset, STEPS, RefineOptions())
    assert p.reason.startswith(reason) and (reason or not p.reason) and p.bracket == bracket
