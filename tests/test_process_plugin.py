"""Adding a process touches no other file: a toy process written and registered here passes the contract suite and
is trained, sampled, evaluated and read by the window machinery like a built-in one."""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import pytest
import test_process as contract
import torch
from torch import Tensor

from conftest import tiny_config
from freqdiff.analysis.reading.curves import load_run
from freqdiff.analysis.reading.window import read_window
from freqdiff.core.registry import param
from freqdiff.metrics.evaluate import evaluate_run, read_metrics
from freqdiff.process import PROCESSES, DenoiserProcess
from freqdiff.process.base import per_example
from freqdiff.process.context import BuildContext
from freqdiff.train.trainer import train


@dataclass(frozen=True)
class TrigParams:
    t_min: float = param(0.002, gt=0, lt=0.5)


class Trig(DenoiserProcess):
    """x_t = cos(pi t / 2) x_0 + sin(pi t / 2) eps for t in [t_min, 1 - t_min]; the network predicts x_0 itself."""

    def __init__(self, t_min: float) -> None:
        super().__init__()
        self.register_buffer("t_range", torch.tensor([t_min, 1 - t_min]))

    def alpha(self, level: Tensor) -> Tensor:
        return per_example(torch.cos(math.pi * level / 2))

    def sigma(self, level: Tensor) -> Tensor:
        return per_example(torch.sin(math.pi * level / 2))

    def snr(self, level: Tensor) -> Tensor:
        return torch.tan(math.pi * level.double() / 2) ** -2

    def level_at_snr(self, snr: float) -> Tensor:
        return torch.tensor(2 / math.pi * math.atan(snr**-0.5))

    def sample_levels(self, batch: int, generator: torch.Generator, device: torch.device) -> Tensor:
        low, high = self.t_range.tolist()
        return low + (high - low) * torch.rand(batch, generator=generator, device=device)

    def sampling_levels(self, steps: int) -> Tensor:
        low, high = self.t_range.tolist()
        return torch.linspace(high, low, steps, device=self.device)

    def c_skip(self, level: Tensor) -> Tensor:
        return per_example(torch.zeros_like(level))

    def c_out(self, level: Tensor) -> Tensor:
        return per_example(torch.ones_like(level))

    def c_noise(self, level: Tensor) -> Tensor:
        return 1000 * level


def trig(params: TrigParams, context: BuildContext) -> Trig:
    """A toy trigonometric VP process with x0 prediction."""
    return Trig(params.t_min)


@pytest.fixture
def registered(monkeypatch: pytest.MonkeyPatch) -> str:
    """`trig` in the process registry for one test (the registry's table is restored afterwards)."""
    monkeypatch.setattr(PROCESSES, "_entries", dict(PROCESSES._entries))
    PROCESSES.register("trig", TrigParams)(trig)
    return "trig"


def test_a_process_from_a_test_module_passes_the_contract_suite(registered: str) -> None:
    contract.test_forward_marginal_matches_its_closed_form_per_coefficient(registered)
    contract.test_conversions_invert_each_other(registered)
    contract.test_schedules_are_monotone_and_in_range(registered)
    contract.test_the_empirical_score_sampled_with_the_process_sampler_returns_training_images(registered)


def test_a_process_from_a_test_module_trains_samples_and_evaluates(registered: str, tmp_path: Path) -> None:
    cfg = tiny_config(process=registered, model="mlp", steps="12", n_checkpoints="2", **{"model.width": "32"})
    run = train(cfg, tmp_path / "run")
    rows = evaluate_run(run, progress=False, cache_dir=tmp_path)
    assert rows and len(read_metrics(run)) == len(rows)
    for row in read_metrics(run):
        assert all(math.isfinite(float(row[key])) for key in ("fid", "fmem", "loss_train", "loss_test"))
    config, curves = load_run(run)
    assert config["process"]["name"] == registered
    assert read_window(curves, n=config["data"]["n"]).tau_mem.step is not None  # f_mem read (censored or not)
