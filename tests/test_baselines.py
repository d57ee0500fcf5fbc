"""The closed-form baselines (empirical, smoothed_empirical, els, nn_projection), for every registered process, and
baseline runs measured over their own parameter through eval and report."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from einops import rearrange

from conftest import tiny_config
from freqdiff.analysis.reading.baselines import sigma_by_fmem, sigma_by_profile
from freqdiff.cli import main
from freqdiff.commands.evaluate import evaluate
from freqdiff.core.io import read_csv, read_json
from freqdiff.core.registry import FreqdiffError
from freqdiff.data import make_split
from freqdiff.metrics import fmem
from freqdiff.metrics.evaluate import COLUMNS
from freqdiff.models import MODELS
from freqdiff.models.closed_form.smoothed import remainder_draws
from freqdiff.models.optimal_score import in_basis
from freqdiff.pipeline.build import build_pipeline, trained_model
from freqdiff.process import PROCESSES
from freqdiff.process.context import BuildContext
from freqdiff.samplers import draw_samples
from freqdiff.train.trainer import train

PROCESS_NAMES = PROCESSES.names()


def copies(model: str, process: str, samples: int, steps: int = 30, **params: str) -> float:
    """f_mem of `samples` DDIM samples of a closed-form model on the tiny digits set (n = 8)."""
    flags = {"model": model, "process": process, "sampler.steps": str(steps),
             **{f"model.{k}": v for k, v in params.items()}}
    pipe = build_pipeline(tiny_config(**flags))
    drawn = draw_samples(pipe.sampler, pipe.model, pipe.process, samples, pipe.split.image_shape, seed=0)
    return fmem(drawn, pipe.split.train, mean=pipe.split.mean.reshape(1, -1, 1, 1)).fraction


def context_of(process: str, pool: torch.Tensor, n: int) -> BuildContext:
    context = BuildContext(make_split(pool, n, len(pool) - n))
    return context.with_process(PROCESSES.build(process, context=context))


@pytest.fixture(scope="module")
def correlated() -> torch.Tensor:
    """200 + 16 images of 1x4x4 with correlated pixels, in [0, 1]-ish."""
    g = torch.Generator().manual_seed(0)
    mix = 0.3 * torch.randn(16, 16, generator=g)
    return (0.5 * torch.randn(216, 16, generator=g) @ mix).reshape(-1, 1, 4, 4) + 0.5


@pytest.mark.parametrize("process", PROCESS_NAMES)
def test_empirical_samples_are_training_images(process: str) -> None:
    assert copies("empirical", process, 256) >= 0.95


def gaussian_score_gap(process, x: torch.Tensor, level: torch.Tensor, train: torch.Tensor,
                       score: torch.Tensor) -> float:
    """||score - Gaussian score|| / ||Gaussian score - isotropic score||: the Gaussian has the training images' mean
    and covariance (in the process basis, x_t ~ N(A mu, A Sigma A + S^2)); the isotropic one ignores Sigma."""
    basis = in_basis(process, train)
    mu, sigma_data = basis.mean(0), torch.cov(basis.T, correction=0)
    flat = lambda v: rearrange(v.expand(x.shape), "b ... -> b (...)")  # noqa: E731
    alpha, variance, xb = flat(process.alpha(level)), flat(process.sigma(level)).square(), flat(process.to_basis(x))
    covariance = alpha[:, :, None] * sigma_data * alpha[:, None, :] + torch.diag_embed(variance)
    gaussian = -torch.linalg.solve(covariance, xb - alpha * mu)
    isotropic = -(xb - alpha * mu) / variance
    in_pixels = lambda v: process.from_basis(v.reshape(x.shape))  # noqa: E731
    return float((score - in_pixels(gaussian)).norm() / (in_pixels(gaussian) - in_pixels(isotropic)).norm())


@pytest.mark.parametrize("process", PROCESS_NAMES)
def test_empirical_score_at_large_noise_is_the_data_gaussian_score(process: str, correlated: torch.Tensor) -> None:
    context = context_of(process, correlated.double(), 200)
    model, proc, train = MODELS.build("empirical", context=context), context.process.double(), context.split.train
    g = torch.Generator().manual_seed(1)
    gaps = []
    for t in (1.0, 3.0):
        level = proc.full(proc.level_at_ou_time(t), 64)
        eps = torch.randn(64, 1, 4, 4, generator=g, dtype=torch.float64)
        x = proc.add_noise(train[torch.randint(200, (64,), generator=g)], level, eps)
        score = proc.score(x, level, proc.eps_from_output(x, level, model(x, level)))
        gaps.append(gaussian_score_gap(proc, x, level, train, score))
    assert gaps[1] < 0.05 and gaps[1] < gaps[0] / 3, gaps


@pytest.mark.parametrize("process", PROCESS_NAMES)
def test_smoothed_with_sigma_zero_is_empirical_and_els_with_a_whole_image_patch_too(process: str) -> None:
    pool = torch.rand(40, 1, 8, 8, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    context = context_of(process, pool, 24)
    levels = context.process.sampling_levels(6)  # a different level per example
    x = context.process.prior(torch.randn(6, 1, 8, 8, dtype=torch.float64), levels) + 0.3 * context.split.train[:6]
    exact = MODELS.build("empirical", context=context)(x, levels)
    assert torch.equal(MODELS.build("smoothed_empirical", {"sigma": 0}, context=context)(x, levels), exact)
    whole = MODELS.build("els", {"patch": "15"}, context=context)  # 2H - 1: every window covers the whole image
    torch.testing.assert_close(whole(x, levels), exact, rtol=1e-7, atol=1e-9)
    local = MODELS.build("els", {"patch": "3"}, context=context)(x, levels)
    assert (local - exact).abs().max() > 1e-3  # a 3x3 patch is another model


@pytest.mark.parametrize("process", PROCESS_NAMES)
def test_smoothed_copies_less_as_sigma_grows(process: str) -> None:
    fractions = [copies("smoothed_empirical", process, 128, 20, sigma=s, draws="4") for s in ("0", "0.6", "1.5")]
    assert fractions[0] >= 0.95 and fractions[0] > fractions[1] > fractions[2] and fractions[2] <= 0.3, fractions


def test_subset_estimator_keeps_the_nearest_and_draws_the_rest_uniformly() -> None:
    pool = torch.rand(80, 1, 4, 4, generator=torch.Generator().manual_seed(3))
    context = context_of("ddpm", pool, 64)
    near = context.process.full(2, 8)  # small noise: the posterior sits on the nearest image
    x = context.process.add_noise(context.split.train[:8], near, torch.randn(8, 1, 4, 4))
    exact = MODELS.build("empirical", context=context)(x, near)
    subset = MODELS.build("smoothed_empirical", {"sigma": 0, "k": 4, "l": 8}, context=context)
    assert subset.subset and torch.allclose(subset(x, near), exact, atol=1e-4)
    nearest = torch.tensor([[3, 0, 9], [63, 10, 11]])
    drawn = remainder_draws(nearest, 64, 20000, torch.Generator().manual_seed(0))
    for row, excluded in zip(drawn, nearest):
        counts = torch.bincount(row, minlength=64).float()
        assert counts[excluded].sum() == 0
        others = counts[[i for i in range(64) if i not in excluded.tolist()]]
        assert others.min() > 0.7 * 20000 / 61 and others.max() < 1.3 * 20000 / 61


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = tmp_path_factory.mktemp("wrapped") / "run"
    train(tiny_config(), run)
    return run


def test_nn_projection_at_strength_zero_is_the_wrapped_model_exactly(trained_run: Path) -> None:
    pipe = build_pipeline(tiny_config())
    wrapped = MODELS.build("nn_projection", {"strength": 0, "run": str(trained_run)},
                           context=BuildContext(pipe.split, load_trained=trained_model).with_process(pipe.process))
    inner = wrapped.model
    levels = torch.tensor([999, 400, 40, 0])
    x = torch.randn(4, 1, 8, 8)
    assert torch.equal(wrapped(x, levels), inner(x, levels))
    hard = MODELS.build("nn_projection", {"strength": 1, "run": str(trained_run), "t_max": 0.05},
                        context=BuildContext(pipe.split, load_trained=trained_model).with_process(pipe.process))
    pulled = pipe.process.x0_from_output(x, levels, hard(x, levels))
    d = torch.cdist(pulled.flatten(1), pipe.split.train.flatten(1)).min(1).values
    assert d[:2].min() > 1e-2 and d[2:].max() < 1e-4  # OU times 0.010 and 0 are in range: on training images
    assert torch.equal(hard(x, levels)[:2], inner(x, levels)[:2])  # outside the range: the wrapped model's output


def test_nn_projection_refuses_an_untrained_network_and_another_training_set(trained_run: Path) -> None:
    pipe = build_pipeline(tiny_config(n="12"))
    context = BuildContext(pipe.split, load_trained=trained_model).with_process(pipe.process)
    with pytest.raises(FreqdiffError, match="trained on other images"):
        MODELS.build("nn_projection", {"run": str(trained_run)}, context=context)
    with pytest.raises(FreqdiffError, match="needs training"):
        MODELS.build("nn_projection", {"inner": "unet"}, context=context)


def test_els_refuses_an_even_patch_and_a_schedule_of_the_wrong_length() -> None:
    context = context_of("ddpm", torch.rand(40, 1, 8, 8), 24)
    with pytest.raises(FreqdiffError, match="4 is even"):
        MODELS.build("els", {"patch": "4"}, context=context)
    with pytest.raises(FreqdiffError, match="give 1"):
        MODELS.build("els", {"patch": "3,5", "ou_times": ""}, context=context)


BASELINE_FLAGS = ["--dataset", "digits", "--n", "8", "--test_size", "64", "--n_samples", "32", "--extractor", "pixels",
                  "--sampler.steps", "5", "--loss_draws", "1", "--grid_size", "4", "--spectral", "true"]


def test_baseline_run_measured_over_its_parameter_through_eval_and_report(tmp_path: Path, capsys) -> None:
    run = tmp_path / "baselines" / "smoothed"
    assert main(["baseline", "--model", "smoothed_empirical", "--axis", "sigma", "--values", "0,1.2", "--out", str(run),
                 *BASELINE_FLAGS]) == 0
    record = read_json(run / "config.json")
    assert record["axis"] == {"parameter": "sigma", "values": [0.0, 1.2]}
    assert record["model"]["name"] == "smoothed_empirical"
    with open(run / "metrics.csv") as fh:
        assert fh.readline().strip().split(",") == ["sigma", *COLUMNS[1:]]
    rows = read_csv(run / "metrics.csv")
    assert [r["sigma"] for r in rows] == ["0", "1.2"] and float(rows[0]["fmem"]) > float(rows[1]["fmem"])
    assert {r["sigma"] for r in read_csv(run / "spectral.csv")} == {"0", "1.2"}
    assert sorted(p.name for p in (run / "nearest").glob("*.npz")) == ["sigma_0.npz", "sigma_1.2.npz"]
    assert len(evaluate(run, progress=False)) == 2  # resumable: nothing left to measure
    assert main(["baseline", "--model", "smoothed_empirical", "--axis", "sigma", "--values", "0.6", "--out", str(run),
                 *BASELINE_FLAGS]) == 0
    assert [r["sigma"] for r in read_csv(run / "metrics.csv")] == ["0", "0.6", "1.2"]
    assert main(["baseline", "--model", "empirical", "--out", str(tmp_path / "baselines" / "memorizer"),
                 *BASELINE_FLAGS]) == 0
    assert main(["report", str(tmp_path / "baselines")]) == 0
    report = (tmp_path / "baselines" / "report.md").read_text()
    assert "## Closed-form baselines" in report and "| smoothed | smoothed_empirical | sigma | 0.6 |" in report
    assert "| memorizer | empirical | — | empirical |" in report and (run / "figures" / "baseline.png").stat().st_size
    capsys.readouterr()
    assert main(["window", str(run)]) == 2 and "no window" in capsys.readouterr().err


def test_baseline_command_refuses_bad_axes_before_writing(tmp_path: Path, capsys) -> None:
    out = tmp_path / "run"
    for argv, message in ((["--model", "unet"], "needs training"),
                          (["--model", "els", "--axis", "size"], "no parameter"),
                          (["--model", "els", "--axis", "patch", "--values", "3,4"], "4 is even"),
                          (["--model", "empirical", "--values", "1"], "needs --axis")):
        assert main(["baseline", *argv, "--out", str(out), *BASELINE_FLAGS]) == 2
        assert message in capsys.readouterr().err
    assert not out.exists()


def test_equivalent_sigma_by_fmem_and_by_spectral_profile() -> None:
    sigma, curve = np.array([0.0, 0.2, 0.4, 0.8]), np.array([1.0, 0.9, 0.5, 0.1])
    inside = sigma_by_fmem(0.7, sigma, curve)
    assert inside.bound == "" and math.isclose(inside.sigma, 0.3)
    assert (sigma_by_fmem(1.0, sigma, curve).sigma, sigma_by_fmem(1.0, sigma, curve).bound) == (0.0, "<=")
    assert (sigma_by_fmem(0.0, sigma, curve).sigma, sigma_by_fmem(0.0, sigma, curve).bound) == (0.8, ">=")
    noisy = sigma_by_fmem(0.55, sigma, np.array([1.0, 0.5, 0.6, 0.1]))  # a rise is read on the running minimum
    assert math.isclose(noisy.sigma, 0.18)
    profiles = {s: {(40.0, b): s * (b + 1) for b in range(3)} for s in (0.1, 0.2, 0.4)}
    assert sigma_by_profile({(40.0, b): 0.21 * (b + 1) for b in range(3)}, profiles).sigma == 0.2
    assert str(sigma_by_profile({(40.0, 0): 5.0}, profiles)) == ">= 0.4"


def test_training_a_closed_form_model_is_refused_before_writing(tmp_path: Path) -> None:
    with pytest.raises(FreqdiffError, match="nothing to train"):
        train(tiny_config(model="empirical"), tmp_path / "run")
    assert not (tmp_path / "run").exists()
