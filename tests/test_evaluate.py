"""freqdiff eval: one row per checkpoint, resumable without duplicates, pinned settings, clear errors."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

import freqdiff.metrics.evaluate as evaluate_module
from conftest import tiny_config
from freqdiff.cli import main
from freqdiff.core.checkpoint import list_checkpoints
from freqdiff.core.registry import FreqdiffError
from freqdiff.metrics.digits_cnn import WEIGHTS as DIGITS_CNN_WEIGHTS
from freqdiff.metrics.evaluate import COLUMNS, evaluate_run, read_metrics
from freqdiff.train.trainer import train


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = tmp_path_factory.mktemp("eval") / "run"
    train(tiny_config(), run)
    return run


def test_eval_writes_one_labelled_row_per_checkpoint(trained: Path, tmp_path: Path) -> None:
    rows = evaluate_run(trained, progress=False, cache_dir=tmp_path)
    assert [int(r["step"]) for r in read_metrics(trained)] == list_checkpoints(trained)
    for row in read_metrics(trained):
        assert row["extractor"] == "pixels" and int(row["n_samples"]) == 32 and int(row["folds"]) == 4
        for copy in ("fmem", "fmem_robust"):
            assert 0 <= float(row[f"{copy}_low"]) <= float(row[copy]) <= float(row[f"{copy}_high"]) <= 1
        assert float(row["fid"]) > 0 and float(row["loss_train"]) > 0 and float(row["loss_test"]) > 0
        assert all(float(row[f"{q}_err"]) >= 0 for q in ("fid", "kid", "precision", "coverage", "spectral"))
        assert row["recognizable"] == row["recognizable_err"] == ""  # pixels are no classifier: not computed
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


def test_columns_are_the_contracts() -> None:
    assert COLUMNS == ["step", "fid", "fid_err", "kid", "kid_err", "precision", "precision_err", "recall", "recall_err",
                       "density", "density_err", "coverage", "coverage_err", "recognizable", "recognizable_err",
                       "spectral", "spectral_err", "fmem", "fmem_low", "fmem_high", "fmem_robust", "fmem_robust_low",
                       "fmem_robust_high", "loss_train", "loss_test", "extractor", "n_samples", "folds"]
    committed = sorted((Path(__file__).parents[1] / "results").glob("*/**/metrics.csv"))
    assert committed  # the reference results are measured in the current format, every one of them
    for path in committed:
        with open(path) as fh:
            header = fh.readline().strip().split(",")  # a closed-form baseline's axis is its parameter, not step
            assert header[1:] == COLUMNS[1:] and header[0] in ("step", "sigma", "patch", "strength", "model"), path


def test_too_few_samples_for_the_folds_are_refused_before_anything_is_written(tmp_path: Path) -> None:
    run = tmp_path / "run"
    train(tiny_config(), run)
    with pytest.raises(FreqdiffError, match=r"--n_samples: n_samples has 2 images, 0 per fold with 4 folds; .*at least "
                                            r"7 per fold \(28 images\)") as info:
        evaluate_run(run, overrides={"n_samples": "2"}, progress=False, cache_dir=tmp_path)
    assert "\n" not in str(info.value)
    assert not (run / "metrics.csv").exists() and not (run / "eval_config.json").exists()
    with pytest.raises(FreqdiffError, match="--folds: need at least 2 folds"):
        evaluate_run(run, overrides={"folds": "1"}, progress=False, cache_dir=tmp_path)


def test_extractor_weights_flag_reaches_the_extractor(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "run"
    train(tiny_config(), run)
    copied = tmp_path / "my_digits_cnn.pt"
    copied.write_bytes(DIGITS_CNN_WEIGHTS.read_bytes())
    argv = ["eval", str(run), "--extractor", "digits_cnn", "--extractor.weights", str(copied)]
    assert main(argv) == 0
    rows = read_metrics(run)
    assert {r["extractor"] for r in rows} == {"digits_cnn"} and all(r["recognizable"] != "" for r in rows)
    assert main(["eval", str(tmp_path / "other"), "--extractor.weights", str(tmp_path / "missing.pt")]) == 2
    (run / "metrics.csv").unlink()
    assert main(argv[:-1] + [str(tmp_path / "missing.pt")]) == 2
    assert "missing.pt not found" in capsys.readouterr().err


def test_spectral_diagnostics_per_checkpoint(tmp_path: Path) -> None:
    run = tmp_path / "run"
    train(tiny_config(), run)
    evaluate_run(run, overrides={"spectral": "true", "spectral_bands": "3"}, progress=False, cache_dir=tmp_path)
    rows = __import__("freqdiff.core.io", fromlist=["read_csv"]).read_csv(run / "spectral.csv")
    assert sorted({int(r["tau"]) for r in rows}) == list_checkpoints(run)
    assert len(rows) == len(list_checkpoints(run)) * 3 * 3  # checkpoints x OU times x bands
    assert all(float(r["model_vs_memorizer"]) >= 0 for r in rows)
    assert (run / "figures" / "spectral_bands.png").stat().st_size > 0


def test_checkpoints_sampled_together_match_one_at_a_time(trained: Path) -> None:
    """The stacked pass draws what each checkpoint draws alone, up to float re-association in batched kernels."""
    from freqdiff.core.checkpoint import load_run_config
    from freqdiff.metrics.evaluate import sample_checkpoints
    from freqdiff.pipeline.build import build_pipeline

    cfg = load_run_config(trained)
    pipe = build_pipeline(cfg)
    steps = list_checkpoints(trained)
    alone = dict(sample_checkpoints(pipe, cfg, trained, steps, group=1))
    together = dict(sample_checkpoints(pipe, cfg, trained, steps, group=len(steps)))
    assert len(steps) > 1 and alone.keys() == together.keys()
    for step in steps:
        assert torch.allclose(alone[step], together[step], atol=1e-4), f"checkpoint {step} differs when stacked"
    assert not torch.allclose(alone[steps[0]], alone[steps[-1]]), "different checkpoints draw different samples"
