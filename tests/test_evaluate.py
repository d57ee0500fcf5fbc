"""freqdiff eval: one row per checkpoint, resumable without duplicates, pinned settings, clear errors."""
from __future__ import annotations

from pathlib import Path

import pytest

import freqdiff.evaluate as evaluate_module
from conftest import tiny_config
from freqdiff.checkpoint import list_checkpoints
from freqdiff.cli import main
from freqdiff.evaluate import COLUMNS, evaluate_run, read_metrics
from freqdiff.registry import FreqdiffError
from freqdiff.trainer import train


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = tmp_path_factory.mktemp("eval") / "run"
    train(tiny_config(), run)
    return run


def test_eval_writes_one_labelled_row_per_checkpoint(trained: Path, tmp_path: Path) -> None:
    rows = evaluate_run(trained, progress=False, cache_dir=tmp_path)
    assert [int(r["step"]) for r in read_metrics(trained)] == list_checkpoints(trained)
    for row in read_metrics(trained):
        assert row["extractor"] == "pixels" and int(row["n_samples"]) == 32
        assert 0 <= float(row["fmem_low"]) <= float(row["fmem"]) <= float(row["fmem_high"]) <= 1
        assert float(row["fid"]) > 0 and float(row["loss_train"]) > 0 and float(row["loss_test"]) > 0
    assert len(rows) == len(list_checkpoints(trained))
    assert sorted(p.name for p in (trained / "nearest").glob("*.npz")) == [f"step_{s:08d}.npz" for s in list_checkpoints(trained)]


def test_killed_eval_resumes_without_duplicate_rows(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run = tmp_path / "run"
    train(tiny_config(), run)
    real = evaluate_module.measure_checkpoint
    calls = {"n": 0}

    def dies_on_second(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(evaluate_module, "measure_checkpoint", dies_on_second)
    with pytest.raises(KeyboardInterrupt):
        evaluate_run(run, progress=False, cache_dir=tmp_path)
    assert len(read_metrics(run)) == 1
    monkeypatch.setattr(evaluate_module, "measure_checkpoint", real)
    evaluate_run(run, progress=False, cache_dir=tmp_path)
    steps = [int(r["step"]) for r in read_metrics(run)]
    assert steps == list_checkpoints(run) and len(set(steps)) == len(steps)


def test_other_eval_settings_are_refused(trained: Path, tmp_path: Path) -> None:
    evaluate_run(trained, progress=False, cache_dir=tmp_path)
    with pytest.raises(FreqdiffError, match="n_samples"):
        evaluate_run(trained, overrides={"n_samples": "64"}, progress=False)


def test_no_checkpoints_and_incompatible_metrics(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "run"
    run.mkdir()
    assert main(["eval", str(run)]) == 2
    assert "no config.json" in capsys.readouterr().err
    (run / "config.json").write_text(__import__("json").dumps(tiny_config().to_dict()))
    assert main(["eval", str(run)]) == 2
    assert "no checkpoints" in capsys.readouterr().err


def test_metrics_from_another_version_are_never_overwritten(trained: Path) -> None:
    path = trained / "metrics.csv"
    path.write_text("step,fid\n1,2.0\n")
    with pytest.raises(FreqdiffError, match="incompatible"):
        evaluate_run(trained, progress=False)
    assert path.read_text() == "step,fid\n1,2.0\n"
    path.unlink()


def test_columns_are_the_documented_ones() -> None:
    assert COLUMNS[:10] == ["step", "fid", "kid", "fmem", "fmem_low", "fmem_high", "loss_train", "loss_test",
                            "extractor", "n_samples"]


def test_spectral_diagnostics_per_checkpoint(tmp_path: Path) -> None:
    run = tmp_path / "run"
    train(tiny_config(), run)
    evaluate_run(run, overrides={"spectral": "true", "spectral_bands": "3"}, progress=False, cache_dir=tmp_path)
    rows = __import__("freqdiff.io", fromlist=["read_csv"]).read_csv(run / "spectral.csv")
    assert sorted({int(r["tau"]) for r in rows}) == list_checkpoints(run)
    assert len(rows) == len(list_checkpoints(run)) * 3 * 3  # checkpoints x OU times x bands
    assert all(float(r["model_vs_memorizer"]) >= 0 for r in rows)
    assert (run / "figures" / "spectral_bands.png").stat().st_size > 0
