"""freqdiff calibrate: the committed table and gate are what the code derives; the derivation rule; runs; the CLI."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from conftest import tiny_config
from freqdiff.cli import main
from freqdiff.commands.calibrate import calibrate, derive_gate, run_samples
from freqdiff.core.checkpoint import list_checkpoints
from freqdiff.core.io import read_csv, read_json
from freqdiff.core.registry import FreqdiffError
from freqdiff.metrics.known_sets import make_setup
from freqdiff.metrics.quality import GATES, QUALITY
from freqdiff.train.trainer import train

COMMITTED = Path(__file__).parents[1] / "results" / "calibration"


def test_recomputed_calibration_agrees_with_the_committed_table_and_gate(tmp_path: Path) -> None:
    gate = calibrate(tmp_path / "calibration", gates=tmp_path / "gates.json", cache_dir=tmp_path / "cache")
    committed = read_json(GATES)[gate.extractor]
    assert gate.measure == committed["measure"] == "recognizable"
    assert gate.threshold == pytest.approx(committed["threshold"], abs=1e-6)
    assert read_json(tmp_path / "gates.json")[gate.extractor]["threshold"] == gate.threshold
    new, old = read_csv(tmp_path / "calibration" / "calibration.csv"), read_csv(COMMITTED / "calibration.csv")
    old = [row for row in old if row["kind"] != "run"]  # rows of runs added by --runs are not recomputed here
    assert [r["reference"] for r in new] == [r["reference"] for r in old]
    for a, b in zip(new, old):
        for name in QUALITY:
            assert (a[name] == b[name] == "") or float(a[name]) == pytest.approx(float(b[name]), rel=1e-6, abs=1e-9)
        assert a["generates"] == b["generates"]
    by = {r["reference"]: r for r in new}
    assert {name for name, r in by.items() if r["generates"] == "yes"} == {
        "held-out digits", "exact copies", "noisy copies", "blurred copies"}
    assert float(by["noisy copies"]["fmem"]) < 0.9 <= float(by["noisy copies"]["fmem_robust_low"])
    for measure in ("recall", "coverage"):  # copies are less diverse than held-out digits
        assert float(by["exact copies"][measure]) < float(by["held-out digits"][measure])
    assert (tmp_path / "calibration" / "calibration.png").stat().st_size > 0
    assert "recognizable - recognizable_err >= " in (tmp_path / "calibration" / "calibration.md").read_text()


def row(reference: str, kind: str, **values: float) -> dict:
    out = {"reference": reference, "kind": kind}
    for name in ("recognizable", "precision", "density"):
        out[name], out[f"{name}_err"] = values.get(name, (0.5, 0.0))
    return out


def test_the_gate_is_the_widest_relative_margin_and_its_midpoint() -> None:
    rows = [row("digits", "image-like", recognizable=(0.9, 0.1), precision=(0.95, 0.0)),
            row("blurred", "image-like", recognizable=(0.7, 0.1), precision=(0.6, 0.1)),
            row("noise", "noise-like", recognizable=(0.1, 0.1), precision=(0.4, 0.05)),
            row("run", "run", recognizable=(0.0, 0.0))]  # runs never move the threshold
    gate, candidates = derive_gate(rows, "digits_cnn", "table.csv")
    assert gate.measure == "recognizable" and gate.threshold == pytest.approx((0.6 + 0.2) / 2)
    assert {c["measure"]: round(c["relative_margin"], 3) for c in candidates}["precision"] == round(0.05 / 0.5, 3)
    assert "table.csv" in gate.source and "blurred" in gate.source and "noise" in gate.source


def test_no_gate_when_nothing_separates_images_from_noise() -> None:
    rows = [row("digits", "image-like", recognizable=(0.5, 0.2)), row("noise", "noise-like", recognizable=(0.4, 0.2))]
    with pytest.raises(FreqdiffError, match="no measure of recognizable, precision, density separates"):
        derive_gate(rows, "digits_cnn", "table.csv")


def test_runs_are_sampled_at_their_last_or_given_checkpoint(tmp_path: Path) -> None:
    setup = make_setup(n=16, n_samples=32, folds=4, seed=0)
    run = tmp_path / "run"
    train(tiny_config(test_size="256"), run)
    steps = list_checkpoints(run)
    label, split, samples = run_samples(str(run), setup)
    assert label == f"{tmp_path.name}/run@{steps[-1]} (ddpm, none, n=8)" and samples.shape == (32, 1, 8, 8) and len(split.train) == 8
    assert run_samples(f"{run}:{steps[0]}", setup)[0].startswith(f"{tmp_path.name}/run@{steps[0]}")
    with pytest.raises(FreqdiffError, match=re.escape(f"no checkpoint 7; steps: {steps}")):
        run_samples(f"{run}:7", setup)
    other = tmp_path / "other"
    train(tiny_config(), other)  # test_size 64: another reference
    with pytest.raises(FreqdiffError, match="uses digits with test_size 64; the calibration uses digits with 256"):
        run_samples(str(other), setup)


def test_the_command_has_its_own_help_and_one_line_errors(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["calibrate", "--help"]) == 0
    text = capsys.readouterr().out
    assert "--runs" in text and "--out" in text and "--folds" in text
    assert main(["calibrate", "--folds", "many"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("freqdiff calibrate: error: calibrate: argument --folds: invalid int value") and "\n" not in err
