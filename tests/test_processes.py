"""Each process against its paper's closed forms; every regularizer and the spectral diagnostics on every process."""
from __future__ import annotations

import dataclasses
import json
import math

import pytest
import torch

from conftest import build_context, tiny_config
from freqdiff.commands.recipes import RECIPES, study_base
from freqdiff.core.config import RunConfig, apply_flags
from freqdiff.core.spectral import dct_2d, idct_2d
from freqdiff.data import make_split
from freqdiff.metrics.diagnostics import METRICS, band_errors
from freqdiff.models.optimal_score import OptimalScore
from freqdiff.pipeline.build import build_pipeline
from freqdiff.process import PROCESSES
from freqdiff.process.context import BuildContext
from freqdiff.process.equal_snr import frequency_variance
from freqdiff.process.loss import DenoisingTerms
from freqdiff.regularizers import REGULARIZERS
from freqdiff.samplers.base import Denoiser
from freqdiff.samplers.heun import heun
from freqdiff.train.trainer import Trainer

SHAPE = (1, 8, 8)
SIGMAS = torch.tensor([0.002, 0.05, 0.5, 3.0, 80.0], dtype=torch.float64)


def build(name: str, context: BuildContext | None = None, **params: str):
    return PROCESSES.build(name, params, context=context or build_context(SHAPE))


def images(n: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, *SHAPE, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def column(values: torch.Tensor) -> torch.Tensor:
    return values.reshape(-1, 1, 1, 1)


# ---- EDM ------------------------------------------------------------------------------------------------

def test_edm_preconditioning_is_the_papers_table() -> None:
    process = build("edm", sigma_data="0.4")
    s, sd = SIGMAS, 0.4
    c_skip, c_out, c_in, c_noise = process.preconditioning(s)
    assert torch.allclose(c_skip, column(sd**2 / (s**2 + sd**2)))
    assert torch.allclose(c_out, column(s * sd / (s**2 + sd**2).sqrt()))
    assert torch.allclose(c_in, column(1 / (s**2 + sd**2).sqrt()))
    assert torch.allclose(c_noise, s.log() / 4)
    # EDM's weight on ||D - x0||^2 is lambda = (s^2 + sd^2) / (s sd)^2; on the network output it is lambda c_out^2 = 1
    assert torch.allclose((s**2 + sd**2) / (s * sd) ** 2 * c_out.flatten() ** 2, torch.ones_like(s))


def test_edm_training_terms_are_edms_loss() -> None:
    """mse() on the output = EDMLoss: lambda(sigma) * mean (D(x_t) - x0)^2, for any network output."""
    process = build("edm", sigma_data="0.4")
    x0, eps, output = images(5, 0), images(5, 1), images(5, 2)
    x_t = process.add_noise(x0, SIGMAS, eps)
    terms = DenoisingTerms(process, x0, SIGMAS, eps, x_t, output)
    weight = (SIGMAS**2 + 0.16) / (SIGMAS * 0.4) ** 2
    assert torch.allclose(terms.mse(), weight * (terms.x0_hat - x0).pow(2).flatten(1).mean(1), rtol=1e-6)


def test_edm_training_levels_are_log_normal() -> None:
    log_sigma = build("edm").sample_levels(20000, torch.Generator().manual_seed(0), torch.device("cpu")).log()
    assert float(log_sigma.mean()) == pytest.approx(-1.2, abs=3 * 1.2 / math.sqrt(20000))
    assert float(log_sigma.std()) == pytest.approx(1.2, rel=0.02)


def test_edm_grid_is_rho_7_from_80_to_0002() -> None:
    grid = build("edm").sampling_levels(18).double()
    i = torch.arange(18, dtype=torch.float64)
    expected = (80 ** (1 / 7) + i / 17 * (0.002 ** (1 / 7) - 80 ** (1 / 7))) ** 7
    assert torch.allclose(grid, expected, rtol=1e-6)
    assert float(grid[0]) == pytest.approx(80) and float(grid[-1]) == pytest.approx(0.002)


def test_edm_sigma_data_defaults_to_the_training_pixels_std_and_is_recorded() -> None:
    context = build_context(SHAPE)
    process = build("edm", context)
    std = float(context.split.train.double().pow(2).mean().sqrt())  # centered pixels: their root mean square
    assert float(process.sigma_data) == pytest.approx(std, rel=1e-6)
    assert process.derived() == {"sigma_data": float(process.sigma_data)}


def edm_algorithm_1(denoise, x: torch.Tensor, sigmas: torch.Tensor) -> torch.Tensor:
    """Karras et al. 2022, Algorithm 1 (deterministic): Heun steps of dx/dsigma = (x - D) / sigma, then Euler to 0."""
    sigmas = torch.cat([sigmas, sigmas.new_zeros(1)])
    for i in range(len(sigmas) - 1):
        d = (x - denoise(x, sigmas[i])) / sigmas[i]
        x_next = x + (sigmas[i + 1] - sigmas[i]) * d
        if sigmas[i + 1] > 0:
            d_next = (x_next - denoise(x_next, sigmas[i + 1])) / sigmas[i + 1]
            x_next = x + (sigmas[i + 1] - sigmas[i]) * (d + d_next) / 2
        x = x_next
    return x


@pytest.mark.parametrize("name", ["edm", "ve"])
def test_heun_on_a_sigma_process_is_edms_algorithm_1(name: str) -> None:
    context = build_context(SHAPE)
    process = build(name, context)
    model = OptimalScore(context.split.train[:4], process)
    denoiser = Denoiser(model, process)
    levels = process.sampling_levels(8)
    x = levels[0] * torch.randn(3, *SHAPE, generator=torch.Generator().manual_seed(1))
    expected = edm_algorithm_1(lambda y, s: denoiser(y, process.full(s, len(y)))[0], x, levels)
    assert torch.allclose(heun(denoiser, x, levels), expected, atol=1e-4)


# ---- VE -------------------------------------------------------------------------------------------------

def test_ve_preconditioning_and_weight() -> None:
    process = build("ve")
    s = SIGMAS
    c_skip, c_out, c_in, c_noise = process.preconditioning(s)
    assert torch.equal(c_skip, torch.ones_like(column(s))) and torch.equal(c_out, column(s)) and c_in is None
    assert torch.allclose(c_noise, (s / 2).log())
    x0, eps = images(5, 0), images(5, 1)
    x_t = process.add_noise(x0, s, eps)
    assert torch.allclose(process.target(x0, eps, x_t, s), -eps)  # F = (x0 - x_t) / sigma
    terms = DenoisingTerms(process, x0, s, eps, x_t, images(5, 2))
    assert torch.allclose(terms.mse(), (terms.x0_hat - x0).pow(2).flatten(1).mean(1) / s**2)  # VELoss: 1/sigma^2


def test_ve_training_levels_are_log_uniform_in_range() -> None:
    sigma = build("ve").sample_levels(20000, torch.Generator().manual_seed(0), torch.device("cpu"))
    u = (sigma / 0.02).log() / math.log(100 / 0.02)
    assert bool((u >= 0).all()) and bool((u < 1).all())
    assert float(u.mean()) == pytest.approx(0.5, abs=3 * 0.2887 / math.sqrt(20000))
    assert float((u < 0.25).float().mean()) == pytest.approx(0.25, abs=0.01)
    grid = build("ve").sampling_levels(10)
    assert float(grid[0]) == pytest.approx(100) and float(grid[-1]) == pytest.approx(0.02)


# ---- blurring -------------------------------------------------------------------------------------------

def cosine_vp(t: torch.Tensor, logsnr_min: float = -10, logsnr_max: float = 10) -> tuple[torch.Tensor, torch.Tensor]:
    """Hoogeboom & Salimans 2023, appendix: a_t, sigma_t of the clipped cosine log-SNR schedule."""
    limit_max = math.atan(math.exp(-0.5 * logsnr_max))
    limit_min = math.atan(math.exp(-0.5 * logsnr_min)) - limit_max
    logsnr = -2 * torch.log(torch.tan(limit_min * t + limit_max))
    return torch.sigmoid(logsnr).sqrt(), torch.sigmoid(-logsnr).sqrt()


def frequency_scaling(t: torch.Tensor, sigma_blur_max: float, side: int = 8, d_min: float = 0.001) -> torch.Tensor:
    """The paper's d_t per frequency (appendix code), (B, 1, side, side)."""
    sigma_blur = sigma_blur_max * torch.sin(t * math.pi / 2) ** 2
    freqs = math.pi * torch.linspace(0, side - 1, side, dtype=torch.float64) / side
    labda = freqs[None, :, None] ** 2 + freqs[None, None, :] ** 2
    return (torch.exp(-labda * column(sigma_blur**2 / 2)[:, :, 0]) * (1 - d_min) + d_min)[:, None]


T_GRID = torch.tensor([0.0, 0.1, 0.35, 0.6, 0.85, 1.0], dtype=torch.float64)


def test_blurring_scales_are_the_papers() -> None:
    process = build("blurring")
    a, sigma = cosine_vp(T_GRID)
    assert torch.allclose(process.alpha(T_GRID), column(a) * frequency_scaling(T_GRID, 5.0), rtol=1e-5, atol=1e-9)
    assert torch.allclose(process.sigma(T_GRID).expand(-1, 1, 8, 8), column(sigma).expand(-1, 1, 8, 8))
    assert torch.allclose(process.c_noise(T_GRID), 1000 * T_GRID)


def test_blurring_without_blur_is_the_cosine_vp_process() -> None:
    """sigma_B,max = 0: alpha and sigma equal the scalar cosine-log-SNR VP values at every frequency."""
    process = build("blurring", sigma_blur_max="0")
    a, sigma = cosine_vp(T_GRID)
    assert torch.allclose(process.alpha(T_GRID), column(a).expand(-1, 1, 8, 8), rtol=1e-6)
    assert torch.allclose(process.sigma(T_GRID).expand(-1, 1, 8, 8), column(sigma).expand(-1, 1, 8, 8), rtol=1e-6)
    assert torch.allclose(process.snr(T_GRID), (a / sigma) ** 2, rtol=1e-6)


def test_blurring_default_blur_scales_with_the_side_as_the_papers_20_at_32() -> None:
    """The lowest frequency is attenuated by the same exp(-lambda_1 tau_max) at every side."""
    at_8 = build("blurring")
    at_28 = build("blurring", build_context((1, 28, 28)))
    assert at_8.derived() == {"sigma_blur_max": 5.0} and at_28.derived()["sigma_blur_max"] == pytest.approx(17.5)
    at_32 = (math.pi / 32) ** 2 * 20**2 / 2
    for process in (at_8, at_28):
        assert float(process.lambda_[0, 0, 0, 1]) * process.sigma_blur_max**2 / 2 == pytest.approx(at_32, rel=1e-6)
    d = at_8.dissipation(torch.tensor([1.0]))
    assert float(d[0, 0, 0, 0]) == 1.0 and float(d[0, 0, 7, 7]) == pytest.approx(0.001, rel=1e-3)


@pytest.mark.parametrize("t, s", [(0.5, 0.49), (1.0, 0.98), (0.3, 0.1)])
def test_blurring_reverse_step_is_the_papers_denoising_distribution(t: float, s: float) -> None:
    """The contract's posterior = Hoogeboom & Salimans' denoise(): coefficients on u_t and u_t - sigma_t u_eps."""
    process = build("blurring")
    level_t, level_s = torch.tensor([t], dtype=torch.float64), torch.tensor([s], dtype=torch.float64)
    x_t, eps_hat = images(1, 0), images(1, 1)
    alpha_t, sigma_t, alpha_s, sigma_s = (f(v) for v, f in ((level_t, process.alpha), (level_t, process.sigma),
                                                            (level_s, process.alpha), (level_s, process.sigma)))
    alpha_ts = alpha_t / alpha_s
    sigma2_ts = sigma_t**2 - alpha_ts**2 * sigma_s**2
    sigma2_denoise = 1 / (1 / sigma_s**2 + alpha_ts**2 / sigma2_ts)
    u_t, u_eps = dct_2d(x_t), dct_2d(eps_hat)
    coeff_term1, coeff_term2 = alpha_ts * sigma2_denoise / sigma2_ts, sigma2_denoise / (alpha_ts * sigma_s**2)
    mu = coeff_term1 * u_t + coeff_term2 * (u_t - sigma_t * u_eps)
    mean, std = process.posterior(x_t, process.x0_from_eps(x_t, level_t, eps_hat), level_t, level_s)
    assert torch.allclose(dct_2d(mean), mu, rtol=1e-6, atol=1e-9)
    assert torch.allclose(std**2, sigma2_denoise, rtol=1e-6)


# ---- equal SNR ------------------------------------------------------------------------------------------

def digits_context(n: int = 16) -> BuildContext:
    from freqdiff.commands.registries import REGISTRIES

    return BuildContext(make_split(REGISTRIES["dataset"].build("digits", {}), n, 16))


def test_equal_snr_gives_every_frequency_the_same_snr() -> None:
    context = digits_context()
    process = build("equal_snr", context)
    variance = dct_2d(context.split.train.double()).var(0, unbiased=False)  # C_f, per channel and frequency
    steps = torch.tensor([10, 40, 300, 999])  # (float32 1 - alphabar: rtol 2e-4 from step 10 on)
    snr = process.alpha(steps).double() ** 2 * variance / process.sigma(steps).double() ** 2
    ab = process.alphabar64[steps]
    floored = variance.clamp_min(0.01 * float(variance.mean()))
    assert bool((variance > floored * 0.999).all()), "digits at n = 16: no frequency is floored"
    assert torch.allclose(snr, column(ab / (1 - ab) * floored.mean()).expand_as(snr), rtol=2e-4)
    # the noise power is DDPM's: mean c_f^2 = 1, so trace(S S^T) = (1 - alphabar) d
    assert torch.allclose(process.sigma(steps).double().pow(2).mean((1, 2, 3)), 1 - ab, rtol=1e-5)
    ddpm = build("ddpm", context)
    assert torch.equal(process.alpha(steps), ddpm.alpha(steps)) and torch.equal(process.snr(steps), ddpm.snr(steps))


def test_equal_snr_floors_a_frequency_without_variance() -> None:
    """A DCT coefficient equal in every training image gets floor * mean(C) of noise variance, not zero."""
    u = dct_2d(torch.rand(24, *SHAPE, generator=torch.Generator().manual_seed(0)))
    u[..., 7, 7] = 0.3
    context = BuildContext(make_split(idct_2d(u), 8, 16))
    process = build("equal_snr", context, floor="0.05")
    variance = frequency_variance(context.split.train)
    assert float(variance[0, 7, 7]) < 1e-12
    floored = variance.clamp_min(0.05 * float(variance.mean()))
    c2 = process.noise_scale.double().square()[0, 0]
    assert float(c2[7, 7]) == pytest.approx(0.05 * float(variance.mean()) / float(floored.mean()), rel=1e-5)
    assert float(c2.mean()) == pytest.approx(1.0, rel=1e-6)


def test_equal_snr_posterior_is_ddpms_with_the_noise_shaped() -> None:
    """Between consecutive steps: DDPM's mean coefficients (ratios of variances), DDPM's std times c_f."""
    context = build_context(SHAPE)
    process, ddpm = build("equal_snr", context), build("ddpm", context)
    x_t, x0, t = images(1, 0), images(1, 1), torch.tensor([300])
    mean, std = process.posterior(x_t, x0, t, t - 1)
    ddpm_mean, ddpm_std = ddpm.posterior(x_t, x0, t, t - 1)
    assert torch.allclose(mean, ddpm_mean, atol=1e-5)
    assert torch.allclose(std, ddpm_std * process.noise_scale, rtol=1e-3)


def test_equal_snr_variances_are_recorded_in_config_json(tmp_path) -> None:
    cfg = tiny_config(process="equal_snr", model="mlp", **{"model.width": "16", "steps": "2"})
    trainer = Trainer([(cfg, tmp_path)])
    trainer.release()
    derived = json.loads((tmp_path / "config.json").read_text())["derived"]
    assert derived["signal_variance"] == frequency_variance(trainer.members[0].pipe.split.train).tolist()
    assert derived["floor"] == 0.01 and len(derived["noise_variance"][0]) == 8


# ---- every process with every regularizer and with the spectral diagnostics ----------------------------

@pytest.mark.parametrize("regularizer", REGULARIZERS.names())
@pytest.mark.parametrize("process", PROCESSES.names())
def test_one_training_step_of_every_regularizer_on_every_process(process: str, regularizer: str, tmp_path) -> None:
    cfg = tiny_config(process=process, regularizer=regularizer, batch_size="4",
                      **{"model.width": "8", "model.multipliers": "1,2"})
    trainer = Trainer([(cfg, tmp_path)])
    trainable = [p for p in trainer.stack.parameters() if p.requires_grad]
    before = [p.detach().clone() for p in trainable]
    [(loss, parts)] = trainer.train_step()
    trainer.release()
    assert math.isfinite(float(loss)) and all(math.isfinite(v) for v in parts.values())
    assert all(not torch.equal(b, p) for b, p in zip(before, trainable)), "every weight gets a gradient"


@pytest.mark.parametrize("name", PROCESSES.names())
def test_band_errors_run_on_every_process_and_the_memorizer_matches_itself(name: str) -> None:
    context = build_context(SHAPE)
    process = build(name, context)
    train, heldout = context.split.train[:6], context.split.test[:8]
    rows = band_errors(OptimalScore(train, process), process, train, heldout, bands=4)
    assert len(rows) == 3 * 4 and all(math.isfinite(row[m]) for row in rows for m in METRICS)
    for row in rows:
        assert row["model_vs_memorizer"] <= 1e-6 * max(row["memorizer_vs_eps"], 1e-6)
        assert row["model_vs_eps"] == pytest.approx(row["memorizer_vs_eps"], rel=1e-5)
    assert [row["ou_time"] for row in rows[::4]] == pytest.approx([0.01, 0.1, 1.0], rel=0.15)


# ---- recipes ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name, sampler", [("edm", "heun"), ("blurring", "ddpm"), ("equal_snr", "ddim")])
def test_process_recipes_are_the_baseline_with_the_process_and_sampler_swapped(name: str, sampler: str) -> None:
    base, recipe = study_base(), RECIPES.build(name)
    assert dataclasses.replace(recipe, flags=base.flags) == base
    changed = {key for key in base.flags.keys() | recipe.flags.keys() if base.flags.get(key) != recipe.flags.get(key)}
    assert changed <= {"process", "sampler", "sampler.steps"} and recipe.flags["process"] == name
    cfg = apply_flags(RunConfig(), {**recipe.flags, "n": "4"})
    pipe = build_pipeline(cfg)
    assert cfg.sampler.name == pipe.process.default_sampler == sampler
    evaluations = {"heun": 2 * pipe.sampler.steps - 1}.get(sampler, pipe.sampler.steps)
    assert evaluations <= int(base.flags["sampler.steps"])  # no more network evaluations than the baseline's DDIM
