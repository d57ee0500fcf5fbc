"""The noise-level contract, for every registered process; DDPM against the paper; samplers on known answers."""
from __future__ import annotations

import math

import pytest
import torch

from conftest import build_context
from freqdiff.metrics import fmem
from freqdiff.models.optimal_score import OptimalScore
from freqdiff.process import PROCESSES
from freqdiff.samplers import SAMPLERS, draw_samples

SHAPE = (1, 8, 8)


def process_of(name: str, **params: str):
    context = build_context(SHAPE)
    return PROCESSES.build(name, params, context=context), context


def levels_of(process, count: int = 6) -> torch.Tensor:
    """Levels spread over the process's grid, noisiest first."""
    grid = process.sampling_levels(50)
    return grid[torch.linspace(0, len(grid) - 1, count).round().long()]


# ---- every registered process -------------------------------------------------------------------------

@pytest.mark.parametrize("name", PROCESSES.names())
def test_forward_marginal_matches_its_closed_form_per_coefficient(name: str) -> None:
    """On many draws x_t = A x0 + S eps has mean alpha * x0 and variance sigma^2 in the process's basis."""
    process, _ = process_of(name)
    x0 = torch.randn(1, *SHAPE, generator=torch.Generator().manual_seed(0)).expand(4000, -1, -1, -1)
    for level in levels_of(process, 3):
        at = process.full(level, len(x0))
        eps = torch.randn(x0.shape, generator=torch.Generator().manual_seed(1))
        coefficients = process.to_basis(process.add_noise(x0, at, eps))
        alpha, sigma = process.alpha(at[:1]), process.sigma(at[:1])
        mean, std = coefficients.mean(0, keepdim=True), coefficients.std(0, keepdim=True)
        expected = alpha * process.to_basis(x0[:1])
        assert torch.allclose(mean, expected, atol=4 * float(sigma.max()) / math.sqrt(len(x0)) + 1e-6)
        assert torch.allclose(std, sigma.expand_as(std), rtol=0.08)


@pytest.mark.parametrize("name", PROCESSES.names())
def test_conversions_invert_each_other(name: str) -> None:
    """In float64: x0 from x_t divides by alpha, down to a_1 d_min ~ 7e-6 for blurring at t = 1, below float32's reach."""
    process, _ = process_of(name)
    g = torch.Generator().manual_seed(2)
    x0, eps = (torch.randn(6, *SHAPE, generator=g, dtype=torch.float64) for _ in range(2))
    level = levels_of(process)
    level = level.double() if level.is_floating_point() else level  # c_skip = 1/alpha, c_out = -sigma/alpha: ~1e5
    x_t = process.add_noise(x0, level, eps)
    assert torch.allclose(process.x0_from_eps(x_t, level, eps), x0, atol=2e-3, rtol=1e-3)
    assert torch.allclose(process.eps_from_x0(x_t, level, x0), eps, atol=2e-3, rtol=1e-3)
    output = process.target(x0, eps, x_t, level)
    assert torch.allclose(process.x0_from_output(x_t, level, output), x0, atol=2e-3, rtol=1e-3)
    assert torch.allclose(process.eps_from_output(x_t, level, output), eps, atol=2e-3, rtol=1e-3)
    assert torch.allclose(process.output_from_x0(x_t, level, x0), output, atol=2e-3, rtol=1e-3)
    c_skip, c_out, c_in, _ = process.preconditioning(level)
    assert torch.allclose(process.scale(c_skip, x_t) + process.scale(c_out, output), x0, atol=2e-3, rtol=1e-3)
    # the score of q(x_t | x_0) is -(S S^T)^-1 (x_t - A x_0)
    residual = x_t - process.scale(process.alpha(level), x0)
    assert torch.allclose(process.score(x_t, level, eps), -process.unscale(process.sigma(level) ** 2, residual),
                          atol=1e-2, rtol=1e-3)


@pytest.mark.parametrize("name", PROCESSES.names())
def test_schedules_are_monotone_and_in_range(name: str) -> None:
    process, _ = process_of(name)
    grid = process.sampling_levels(40)
    snr = process.snr(grid)
    assert bool((snr[1:] > snr[:-1]).all()), "the grid goes from the noisiest level to the cleanest"
    assert bool((process.sigma(grid) > 0).all()) and bool((process.alpha(grid) > 0).all())
    t = process.ou_time(grid)
    assert bool((t[1:] < t[:-1]).all()) and bool((t > 0).all())
    drawn = process.sample_levels(512, torch.Generator().manual_seed(3), torch.device("cpu"))
    drawn_snr = process.snr(drawn)
    assert bool((drawn_snr >= snr.min() * 0.999).all()) and bool((drawn_snr <= process.snr(grid[-1:]) * 1.001).all())
    assert float(process.ou_time(process.level_at_ou_time(0.01).reshape(1))) == pytest.approx(0.01, rel=0.15)


@pytest.mark.parametrize("name", PROCESSES.names())
def test_the_empirical_score_sampled_with_the_process_sampler_returns_training_images(name: str) -> None:
    """Process, sampler and optimal score agree: the exact memorizer's samples are training images."""
    process, context = process_of(name)
    train = context.split.train[:6]
    sampler = SAMPLERS.build(process.default_sampler, {"steps": "40"}, context=context)
    samples = draw_samples(sampler, OptimalScore(train, process), process, 64, SHAPE, seed=0)
    assert fmem(samples, train).fraction >= 0.95


# ---- DDPM, the paper's process --------------------------------------------------------------------------

def test_linear_schedule_matches_the_paper() -> None:
    process, _ = process_of("ddpm")
    assert process.T == 1000
    assert math.isclose(float(process.beta[0]), 1e-4, rel_tol=1e-6) and math.isclose(float(process.beta[-1]), 2e-2, rel_tol=1e-6)
    step = int(process.level_at_ou_time(0.01))  # the paper: t = 0.01 is DDPM index ~40, alphabar ~ 0.980
    assert step == 40 and abs(float(process.alphabar[step]) - 0.980) < 2e-3
    t = float(process.ou_time(torch.tensor([step])))
    assert math.isclose(t, -0.5 * math.log(float(process.alphabar64[step])), rel_tol=1e-12)


def test_cosine_schedule_is_monotone() -> None:
    alphabar = process_of("ddpm", schedule="cosine")[0].alphabar
    assert bool((alphabar[1:] < alphabar[:-1]).all()) and alphabar[-1] < 1e-3


def test_posterior_is_the_exact_gaussian_conditional() -> None:
    """q(x_{t-1}|x_t,x0) against Bayes on one coordinate (Ho's eq. 7), and the general formula agrees."""
    process, _ = process_of("ddpm")
    t, s = torch.tensor([300]), torch.tensor([299])
    x0, x_t = torch.full((1, 1, 1, 1), 0.7), torch.full((1, 1, 1, 1), -0.2)
    ab_prev, beta = process.alphabar[299].double(), process.beta[300].double()
    # prior x_{t-1} ~ N(sqrt(ab_prev) x0, 1 - ab_prev); likelihood x_t ~ N(sqrt(1-beta) x_{t-1}, beta)
    precision = 1 / (1 - ab_prev) + (1 - beta) / beta
    mean = (ab_prev.sqrt() * 0.7 / (1 - ab_prev) + (1 - beta).sqrt() * -0.2 / beta) / precision
    got_mean, got_std = process.posterior(x_t, x0, t, s)
    assert math.isclose(float(got_mean), float(mean), rel_tol=1e-4)
    assert math.isclose(float(got_std) ** 2, float(1 / precision), rel_tol=1e-3)
    general_mean, general_std = super(type(process), process).posterior(x_t, x0, t, s)
    assert math.isclose(float(general_mean), float(mean), rel_tol=1e-3)
    assert math.isclose(float(general_std) ** 2, float(1 / precision), rel_tol=2e-2)


def test_ddim_grid_spans_the_chain() -> None:
    steps = process_of("ddpm")[0].sampling_levels(100)
    assert int(steps[0]) == 999 and int(steps[-1]) == 0 and len(steps) == 100 and steps.dtype == torch.long


# ---- samplers -------------------------------------------------------------------------------------------

class PointMass(torch.nn.Module):
    """The exact model of data that is a single point a, for any process: it outputs what stands for x0 = a."""

    closed_form = True

    def __init__(self, process, a: torch.Tensor) -> None:
        super().__init__()
        self.process, self.a = process, a

    def forward(self, x_t: torch.Tensor, level: torch.Tensor) -> torch.Tensor:
        return self.process.output_from_x0(x_t, level, self.a.expand_as(x_t))


def test_every_sampler_recovers_a_point_mass() -> None:
    process, context = process_of("ddpm", T="50")
    a = context.split.train[:1]  # inside the data range, where DDIM's clamp leaves it alone
    for name in SAMPLERS.names():
        sampler = SAMPLERS.build(name, {"steps": "20"}, context=context)
        x = draw_samples(sampler, PointMass(process, a), process, 3, SHAPE, seed=7)
        assert torch.allclose(x, a.expand(3, -1, -1, -1), atol=1e-3), name


class TimeFree(torch.nn.Module):
    """A network that ignores the level."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(1, 1, 1)

    def forward(self, x: torch.Tensor, level: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


def test_ddim_is_seeded_and_its_callback_sees_every_step() -> None:
    process, context = process_of("ddpm")
    ddim = SAMPLERS.build("ddim", {"steps": "10"}, context=context)
    seen: list[int] = []
    model = TimeFree()
    first = draw_samples(ddim, model, process, 4, SHAPE, seed=3, callback=lambda state: seen.append(state["i"]))
    again, other = (draw_samples(ddim, model, process, 4, SHAPE, seed=s) for s in (3, 4))
    assert torch.equal(first, again) and not torch.equal(first, other)
    assert seen == list(range(10))


def test_ddim_clamps_x0_hat_to_the_data_range_only_when_asked() -> None:
    process, context = process_of("ddpm", T="50")
    clamped = SAMPLERS.build("ddim", {"steps": "10"}, context=context)
    free = SAMPLERS.build("ddim", {"steps": "10", "clip_x0": "false"}, context=context)
    low, high = context.x0_range
    model = TimeFree()
    x = draw_samples(clamped, model, process, 8, SHAPE, seed=0)
    assert x.min() >= low and x.max() <= high
    y = draw_samples(free, model, process, 8, SHAPE, seed=0)
    assert y.min() < low or y.max() > high
