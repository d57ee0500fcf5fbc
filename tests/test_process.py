"""The DDPM process: schedule, OU time, inverses, posterior; samplers."""
from __future__ import annotations

import math

import torch

from freqdiff.process import PROCESSES
from freqdiff.samplers import SAMPLERS, draw_samples
from freqdiff.samplers.ddim import ddim_steps


def test_linear_schedule_matches_the_paper() -> None:
    process = PROCESSES.build("ddpm")
    assert process.T == 1000
    assert math.isclose(float(process.beta[0]), 1e-4, rel_tol=1e-6) and math.isclose(float(process.beta[-1]), 2e-2, rel_tol=1e-6)
    step = process.step_at_time(0.01)  # the paper: t = 0.01 is DDPM index ~40, alphabar ~ 0.980
    assert 38 <= step <= 42 and abs(float(process.alphabar[step]) - 0.980) < 2e-3
    assert math.isclose(process.ou_time(step), -0.5 * math.log(float(process.alphabar[step])), rel_tol=1e-6)


def test_cosine_schedule_is_monotone() -> None:
    alphabar = PROCESSES.build("ddpm", {"schedule": "cosine"}).alphabar
    assert bool((alphabar[1:] < alphabar[:-1]).all()) and alphabar[-1] < 1e-3


def test_x0_inverts_add_noise_and_score_is_minus_eps_over_sigma() -> None:
    process = PROCESSES.build("ddpm")
    x0, eps = torch.randn(4, 1, 8, 8), torch.randn(4, 1, 8, 8)
    t = torch.tensor([1, 40, 500, 999])
    x_t = process.add_noise(x0, t, eps)
    assert torch.allclose(process.x0_from_eps(x_t, t, eps), x0, atol=1e-3)
    sigma = (1 - process.alphabar[t]).sqrt().reshape(-1, 1, 1, 1)
    assert torch.allclose(process.score_from_eps(x_t, t, eps), -eps / sigma)


def test_posterior_is_the_exact_gaussian_conditional() -> None:
    """Check q(x_{t-1}|x_t,x0) against Bayes on one coordinate: product of two Gaussians."""
    process = PROCESSES.build("ddpm")
    t = torch.tensor([300])
    x0, x_t = torch.full((1, 1, 1, 1), 0.7), torch.full((1, 1, 1, 1), -0.2)
    ab_prev, beta = process.alphabar[299].double(), process.beta[300].double()
    # prior x_{t-1} ~ N(sqrt(ab_prev) x0, 1 - ab_prev); likelihood x_t ~ N(sqrt(1-beta) x_{t-1}, beta)
    precision = 1 / (1 - ab_prev) + (1 - beta) / beta
    mean = (ab_prev.sqrt() * 0.7 / (1 - ab_prev) + (1 - beta).sqrt() * -0.2 / beta) / precision
    got_mean, got_std = process.posterior(x_t, x0, t)
    assert math.isclose(float(got_mean), float(mean), rel_tol=1e-4)
    assert math.isclose(float(got_std) ** 2, float(1 / precision), rel_tol=1e-3)


def test_ddim_schedule_spans_the_chain() -> None:
    steps = ddim_steps(1000, 100)
    assert steps[0] == 999 and steps[-1] == 0 and len(steps) == 100


class Oracle(torch.nn.Module):
    """The exact noise predictor for data that is a single point a: eps = (x_t - sqrt(ab) a) / sqrt(1 - ab)."""

    def __init__(self, process, a: torch.Tensor) -> None:
        super().__init__()
        self.process, self.a, self.dummy = process, a, torch.nn.Parameter(torch.zeros(1))

    def forward(self, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        ab = self.process.alphabar[t].reshape(-1, 1, 1, 1)
        return (x_t - ab.sqrt() * self.a) / (1 - ab).sqrt()


def test_both_samplers_recover_a_point_mass() -> None:
    process = PROCESSES.build("ddpm", {"T": "50"})
    a = torch.randn(1, 1, 4, 4)
    oracle = Oracle(process, a)
    for name, params in (("ddim", {"steps": "20"}), ("ddpm", {})):
        sampler = SAMPLERS.build(name, params)
        x = draw_samples(sampler, oracle, process, 3, (1, 4, 4), seed=7)
        assert torch.allclose(x, a.expand(3, -1, -1, -1), atol=1e-3)


def test_ddim_is_seeded() -> None:
    process, ddim = PROCESSES.build("ddpm"), SAMPLERS.build("ddim", {"steps": "10"})
    model = TimeFree()
    first, again, other = (draw_samples(ddim, model, process, 4, (1, 4, 4), seed=s) for s in (3, 3, 4))
    assert torch.equal(first, again) and not torch.equal(first, other)


class TimeFree(torch.nn.Module):
    """A noise predictor that ignores t."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(1, 1, 1)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


def test_ddim_clamps_x0_hat_to_the_data_range_only_when_asked() -> None:
    process = PROCESSES.build("ddpm", {"T": "50"})
    clamped = SAMPLERS.build("ddim", {"steps": "10"}, x0_range=(-0.3, 0.7))
    free = SAMPLERS.build("ddim", {"steps": "10", "clip_x0": "false"}, x0_range=(-0.3, 0.7))
    model = TimeFree()
    x = draw_samples(clamped, model, process, 8, (1, 4, 4), seed=0)
    assert x.min() >= -0.3 and x.max() <= 0.7
    y = draw_samples(free, model, process, 8, (1, 4, 4), seed=0)
    assert y.min() < -0.3 or y.max() > 0.7
