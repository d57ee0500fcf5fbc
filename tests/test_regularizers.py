"""Regularizers: each objective against its defining property, gradients into a small model, bad choices."""
import math

import pytest
import torch
from torch import nn

from conftest import build_context, tiny_config
from freqdiff.core.registry import FreqdiffError
from freqdiff.core.spectral import MAX_RADIUS, energy_above
from freqdiff.pipeline.build import build_pipeline
from freqdiff.process import PROCESSES
from freqdiff.process.context import BuildContext
from freqdiff.process.ddpm import DDPM
from freqdiff.process.loss import DenoisingTerms, denoise
from freqdiff.regularizers import REGULARIZERS
from freqdiff.regularizers.base import OUWindow
from freqdiff.regularizers.focal_frequency import focal_frequency_loss
from freqdiff.regularizers.spectral_filter import LowpassPrediction, SpectralFilterParams
from freqdiff.train.trainer import Trainer

SHAPE = (1, 16, 16)
PROCESS = PROCESSES.build("ddpm", context=build_context(SHAPE))
CONTEXT = build_context(SHAPE, process=PROCESS)


class TinyNet(nn.Module):
    """A stand-in for the U-Net: a 3x3 conv with dropout, scaled by a learned function of t."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 1, 3, padding=1)
        self.dropout = nn.Dropout(0.1)
        self.time_scale = nn.Parameter(torch.tensor(0.5))

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.conv(x)) * (1 + self.time_scale * t.float()[:, None, None, None] / 1000)


def build(name, **params):
    return REGULARIZERS.build(name, params, context=CONTEXT)


def batch(steps=(3, 10, 25, 40), seed=0):
    """Images, steps in the small-noise end (OU time <= 0.06) and noise."""
    g = torch.Generator().manual_seed(seed)
    x0 = torch.randn(len(steps), *SHAPE, generator=g)
    return x0, torch.tensor(steps), torch.randn(len(steps), *SHAPE, generator=g)


def terms_with_prediction(eps_hat):
    """DenoisingTerms whose network output is the given image."""
    x0, t, eps = batch(steps=(10,) * len(eps_hat))
    return DenoisingTerms(PROCESS, x0, t, eps, PROCESS.add_noise(x0, t, eps), eps_hat)


def checkerboard():
    return ((-1.0) ** (torch.arange(16)[:, None] + torch.arange(16)[None, :]))[None, None]


def low_cosine():
    return torch.cos(2 * math.pi * 2 * torch.arange(16) / 16).expand(16, 16)[None, None].clone()


def test_none_is_plain_mse():
    terms = terms_with_prediction(torch.randn(2, *SHAPE))
    loss, logs = build("none").objective(terms)
    assert loss.item() == pytest.approx((terms.eps_hat - terms.eps).pow(2).mean().item())
    assert logs == {"mse": pytest.approx(loss.item())}


def test_frequency_weighted_with_unit_weights_is_mse_parseval():
    terms = terms_with_prediction(torch.randn(3, *SHAPE))
    mse = terms.mse().mean()
    loss, logs = build("frequency_weighted_loss", high_weight=1.0, power=0.0).objective(terms)
    assert loss.item() == pytest.approx(mse.item(), rel=1e-6)
    down, _ = build("frequency_weighted_loss", high_weight=0.1).objective(terms)
    assert down.item() < 0.7 * mse.item()  # white errors: most coefficients lie above 0.25
    assert set(logs) == {"mse", "frequency_weighted"}


class WeightedDDPM(DDPM):
    """DDPM with a loss weight lambda(level) != 1, to see that the Fourier-weighted loss carries it."""

    def loss_weight(self, level):
        return 1 + level.float() / 10


def test_frequency_weighted_carries_the_process_loss_weight():
    process = WeightedDDPM(PROCESS.beta.double())
    x0, t, eps = batch()
    terms = DenoisingTerms(process, x0, t, eps, process.add_noise(x0, t, eps), torch.randn(4, *SHAPE))
    loss, logs = build("frequency_weighted_loss", high_weight=1.0, power=0.0).objective(terms)
    assert loss.item() == pytest.approx(terms.mse().mean().item(), rel=1e-6)
    assert logs["mse"] == pytest.approx((1 + t / 10).mul((terms.output - eps).pow(2).flatten(1).mean(1)).mean().item())


# The processes whose network answers something else than eps (EDM, VE: the preconditioned F) are where an
# eps-space error would not be the process's loss.
LOSS_PROCESSES = ("ddpm", "edm", "ve", "equal_snr", "blurring")


@pytest.mark.parametrize("process", LOSS_PROCESSES)
def test_frequency_weighted_with_unit_weights_is_the_plain_loss_on_every_process(process):
    """One real batch (training digits, training levels) through a run's tiny network: unit weights give the
    objective of `none` and log the same value as the plain loss "mse" (Parseval); lower weights above the
    cutoff give less."""
    flags = {"process": process, "regularizer": "frequency_weighted_loss", "regularizer.high_weight": "1",
             "regularizer.power": "0"}
    torch.manual_seed(0)
    pipe = build_pipeline(tiny_config(**flags))
    context = BuildContext(pipe.split, process=pipe.process)
    g = torch.Generator().manual_seed(3)
    x0 = pipe.split.train[:8]
    level = pipe.process.sample_levels(len(x0), g, torch.device("cpu"))
    with torch.no_grad():
        terms = denoise(pipe.process, pipe.model.eval(), x0, level, torch.randn(x0.shape, generator=g))
    plain, plain_logs = REGULARIZERS.build("none", {}, context=context).objective(terms)
    weighted, logs = pipe.regularizer.objective(terms)
    assert weighted.item() == pytest.approx(plain.item(), rel=1e-6)
    assert logs["frequency_weighted"] == pytest.approx(float(logs["mse"]), rel=1e-6)
    assert logs["mse"] == pytest.approx(float(plain_logs["mse"]), rel=1e-6)
    lower, _ = REGULARIZERS.build("frequency_weighted_loss", {"high_weight": 0.3}, context=context).objective(terms)
    assert lower.item() < plain.item()


def random_terms(process: str, seed: int) -> tuple:
    """(context, process, terms): 4 training images at random levels, with a random network output."""
    context = build_context(SHAPE)
    proc = PROCESSES.build(process, context=context)
    context = build_context(SHAPE, process=proc)
    g = torch.Generator().manual_seed(seed)
    x0 = context.split.train[:4]
    level = proc.sample_levels(4, g, torch.device("cpu"))
    eps = torch.randn(x0.shape, generator=g)
    output = torch.randn(x0.shape, generator=g)
    return context, proc, DenoisingTerms(proc, x0, level, eps, proc.add_noise(x0, level, eps), output)


@pytest.mark.parametrize("process", LOSS_PROCESSES)
@pytest.mark.parametrize("name, params", [
    ("fourier_penalty", {"weight": 0.0, "target": "x0"}),
    ("focal_frequency", {"weight": 0.0}),
    ("weight_decay", {}),
    ("dropout", {"p": 0.1}),
])
def test_penalties_at_weight_zero_and_optimizer_options_leave_the_plain_loss(process, name, params):
    """What these regularizers add is their own term (or an optimizer option): the loss itself is the process's."""
    context, _, terms = random_terms(process, seed=0)
    loss, logs = REGULARIZERS.build(name, params, context=context).objective(terms)
    assert loss.item() == pytest.approx(terms.mse().mean().item(), rel=1e-6)
    assert logs["mse"] == pytest.approx(loss.item(), rel=1e-6)


@pytest.mark.parametrize("process", LOSS_PROCESSES)
def test_focal_frequency_with_alpha_zero_is_the_x0_mse_on_every_process(process):
    """Its documented identity is about its own units (pixels for target x0), which no process changes."""
    context, proc, terms = random_terms(process, seed=1)
    x0, level = terms.x0, terms.level
    inside = OUWindow(0.0, 1.0).mask(proc, level).float()
    _, logs = REGULARIZERS.build("focal_frequency", {"alpha": 0.0}, context=context).objective(terms)
    x0_mse = (inside * (terms.x0_hat - x0).pow(2).flatten(1).mean(1)).mean().item()
    assert logs["focal_frequency"] == pytest.approx(x0_mse, rel=1e-4)


@pytest.mark.parametrize("process", LOSS_PROCESSES)
@pytest.mark.parametrize("target", ["x0", "eps"])
def test_an_all_pass_spectral_filter_returns_the_process_output_on_every_process(process, target):
    """The filter converts the output to x0_hat or eps_hat and back in the process's own terms: with nothing
    filtered out (forced past passes_everything) it is the network's output, so the loss is the process's."""
    context = build_context(SHAPE)
    proc = PROCESSES.build(process, context=context)
    model = TinyNet().eval()
    wrapped = LowpassPrediction(model, proc, SpectralFilterParams(cutoff=1.0, target=target))
    g = torch.Generator().manual_seed(2)
    x0 = context.split.train[:6]
    level = proc.sample_levels(6, g, torch.device("cpu"))
    x_t = proc.add_noise(x0, level, torch.randn(x0.shape, generator=g))
    with torch.no_grad():
        assert torch.allclose(wrapped(x_t, level), model(x_t, level), rtol=1e-3, atol=1e-3)


def test_fourier_penalty_zero_for_smooth_images_and_large_for_checkerboard():
    penalty = build("fourier_penalty", weight=1.0, cutoff=0.25, target="eps")
    for smooth in (torch.full((1, *SHAPE), 0.7), low_cosine()):
        terms = terms_with_prediction(smooth)
        loss, logs = penalty.objective(terms)
        assert logs["fourier_penalty"] == pytest.approx(0, abs=1e-10)
        assert loss.item() == pytest.approx(float(logs["mse"]))
    _, logs = penalty.objective(terms_with_prediction(checkerboard()))
    assert logs["fourier_penalty"] == pytest.approx(1.0)  # all of its unit mean square is above the cutoff


def test_fourier_penalty_targets_and_time_window():
    terms = terms_with_prediction(checkerboard())
    _, eps = build("fourier_penalty", target="eps").objective(terms)
    _, score = build("fourier_penalty", target="score").objective(terms)
    ab = PROCESS.alphabar[10].item()
    assert score["fourier_penalty"] == pytest.approx(float(eps["fourier_penalty"]) / (1 - ab), rel=1e-4)
    _, x0 = build("fourier_penalty", target="x0").objective(terms)
    expected = energy_above(terms.x0_hat, 0.25).mean().item() / 256
    assert x0["fourier_penalty"] == pytest.approx(expected, rel=1e-5)
    _, outside = build("fourier_penalty", t_min=0.5).objective(terms)  # step 10 is at OU time ~0.001
    assert outside["fourier_penalty"] == 0


def test_focal_frequency_with_alpha_zero_is_mse_of_the_target():
    pred, true = torch.randn(3, *SHAPE), torch.randn(3, *SHAPE)
    assert torch.allclose(focal_frequency_loss(pred, true, 0.0), (pred - true).pow(2).flatten(1).mean(1), rtol=1e-5)
    focal = focal_frequency_loss(pred, true, 1.0)
    assert bool((focal < (pred - true).pow(2).flatten(1).mean(1)).all())  # weights <= 1, < 1 off the peak
    assert focal_frequency_loss(pred, pred, 1.0).abs().max() == 0  # no NaN from 0/0 weights


def test_focal_frequency_objective_on_x0():
    terms = terms_with_prediction(torch.randn(2, *SHAPE))
    loss, logs = build("focal_frequency", weight=2.0, alpha=0.0).objective(terms)
    x0_mse = (terms.x0_hat - terms.x0).pow(2).flatten(1).mean(1).mean().item()
    assert logs["focal_frequency"] == pytest.approx(x0_mse, rel=1e-4)
    assert loss.item() == pytest.approx(float(logs["mse"]) + 2 * x0_mse, rel=1e-4)


def test_spectral_filter_identity_above_the_corner_and_filters_below():
    model = TinyNet().eval()
    assert build("spectral_filter", cutoff=MAX_RADIUS).wrap_model(model) is model
    assert build("spectral_filter", cutoff=1.0).wrap_model(model) is model
    x0, t, eps = batch()
    x_t = PROCESS.add_noise(x0, t, eps)
    low_eps = build("spectral_filter", cutoff=0.25, target="eps").wrap_model(model)(x_t, t)
    assert energy_above(low_eps, 0.25).max() < 1e-8
    assert energy_above(model(x_t, t), 0.25).min() > 1e-2
    eps_hat = build("spectral_filter", cutoff=0.25, target="x0").wrap_model(model)(x_t, t)
    assert energy_above(PROCESS.x0_from_eps(x_t, t, eps_hat), 0.25).max() < 1e-6
    high_x_t = x_t - build("spectral_filter", cutoff=0.25, target="eps").wrap_model(lambda x, _: x)(x_t, t)
    sigma = (1 - PROCESS.alphabar[t]).sqrt()[:, None, None, None]
    assert torch.allclose(eps_hat, low_eps + high_x_t / sigma, rtol=1e-4, atol=1e-3)  # DDPM closed form


def test_spectral_filter_butterworth_is_never_identity():
    model = TinyNet().eval()
    wrapped = build("spectral_filter", cutoff=MAX_RADIUS, kind="butterworth", order=4, target="eps").wrap_model(model)
    x0, t, eps = batch()
    x_t = PROCESS.add_noise(x0, t, eps)
    assert not torch.allclose(wrapped(x_t, t), model(x_t, t).detach(), atol=1e-4)


def test_weight_decay_and_dropout():
    assert build("weight_decay", value=3e-4).optimizer_options() == {"weight_decay": 3e-4}
    model = build("dropout", p=0.35).wrap_model(TinyNet())
    assert model.dropout.p == 0.35
    with pytest.raises(FreqdiffError, match="no dropout layer"):
        build("dropout").wrap_model(nn.Conv2d(1, 1, 3))
    with pytest.raises(FreqdiffError, match="p must be in"):
        build("dropout", p=1.0)


@pytest.mark.parametrize("name, params", [
    ("none", {}),
    ("fourier_penalty", {"target": "eps"}),
    ("fourier_penalty", {"target": "score", "weight": 1e-3}),
    ("fourier_penalty", {"target": "x0"}),
    ("spectral_filter", {"target": "x0"}),
    ("spectral_filter", {"target": "eps", "kind": "butterworth"}),
    ("frequency_weighted_loss", {}),
    ("focal_frequency", {}),
    ("weight_decay", {}),
    ("dropout", {}),
])
def test_gradients_reach_every_parameter(name, params):
    torch.manual_seed(0)
    regularizer = build(name, **params)
    model = regularizer.wrap_model(TinyNet())
    loss, logs = regularizer.objective(denoise(PROCESS, model, *batch()))
    loss.backward()
    assert "mse" in logs and all(math.isfinite(v) for v in logs.values())
    if name in ("fourier_penalty", "frequency_weighted_loss", "focal_frequency"):
        assert len(logs) == 2 and next(v for k, v in logs.items() if k != "mse") > 0
    for param in model.parameters():
        assert param.grad is not None and torch.isfinite(param.grad).all() and param.grad.abs().sum() > 0


def test_penalty_gradient_differs_from_mse_gradient():
    grads = []
    for name in ("none", "fourier_penalty", "frequency_weighted_loss", "focal_frequency"):
        torch.manual_seed(1)
        model = TinyNet().eval()
        build(name).objective(denoise(PROCESS, model, *batch()))[0].backward()
        grads.append(model.conv.weight.grad.clone())
    for other in grads[1:]:
        assert not torch.allclose(grads[0], other)


@pytest.mark.parametrize("name, params, match", [
    ("fourier_penalty", {"target": "logits"}, "'logits'.*eps, score, x0"),
    ("focal_frequency", {"target": "noise"}, "'noise'.*eps, score, x0"),
    ("spectral_filter", {"kind": "gaussian"}, "'gaussian'.*hard, butterworth"),
    ("spectral_filter", {"target": "score"}, "'score'.*x0, eps"),
    ("fourier_penalty", {"cutoff": 0.0}, "cutoff must be > 0"),
    ("fourier_penalty", {"weight": -1.0}, "weight must be >= 0"),
    ("fourier_penalty", {"t_min": 2.0, "t_max": 1.0}, "t_min"),
    ("weight_decay", {"value": -1.0}, ">= 0"),
])
def test_bad_parameters_name_the_value(name, params, match):
    with pytest.raises(FreqdiffError, match=match):
        build(name, **params)


def test_swapping_the_regularizer_on_the_command_line_changes_what_the_trainer_optimizes(tmp_path) -> None:
    """Same seed, same batch, same noise: only `--regularizer` differs, so only the objective can differ."""
    plain = Trainer([(tiny_config(), tmp_path / "none")])
    penalized = Trainer([(tiny_config(**{"regularizer": "fourier_penalty", "regularizer.weight": "100"}), tmp_path / "fp")])
    [(loss_plain, parts_plain)] = plain.train_step()
    [(loss_pen, parts_pen)] = penalized.train_step()
    assert "fourier_penalty" not in parts_plain and parts_pen["fourier_penalty"] > 0
    assert parts_plain["mse"] == pytest.approx(parts_pen["mse"])  # identical first forward pass
    assert float(loss_pen) == pytest.approx(parts_pen["mse"] + 100 * parts_pen["fourier_penalty"], rel=1e-5)
    after_plain, after_pen = plain.stack.state_dict(), penalized.stack.state_dict()
    assert any(not torch.equal(after_plain[k], after_pen[k]) for k in after_plain)


@pytest.mark.parametrize("name, params", [("none", {}), ("fourier_penalty", {"weight": 2.0, "target": "x0"}),
                                          ("frequency_weighted_loss", {"high_weight": 0.3, "t_max": 0.02}),
                                          ("focal_frequency", {})])
def test_an_objective_over_k_members_batches_is_each_members_own(name, params):
    """Terms of K members' batches laid end to end (members=K): the loss and every part are (K,), member k's at k."""
    regularizer, outputs = build(name, **params), torch.randn(3, 4, *SHAPE, generator=torch.Generator().manual_seed(9))
    batches = [batch(seed=k) for k in range(3)]
    alone = [regularizer.objective(DenoisingTerms(PROCESS, x0, t, eps, PROCESS.add_noise(x0, t, eps), out))
             for (x0, t, eps), out in zip(batches, outputs)]
    x0, t, eps = (torch.cat(v) for v in zip(*batches))
    loss, parts = regularizer.objective(DenoisingTerms(PROCESS, x0, t, eps, PROCESS.add_noise(x0, t, eps),
                                                       outputs.flatten(0, 1), members=3))
    assert loss.shape == (3,) and set(parts) == set(alone[0][1]) and all(v.shape == (3,) for v in parts.values())
    for k, (own, logged) in enumerate(alone):
        assert loss[k].item() == pytest.approx(own.item(), rel=1e-6)
        mine = {name: value.item() for name, value in logged.items()}
        assert {name: value[k].item() for name, value in parts.items()} == pytest.approx(mine, rel=1e-6)


def test_frequency_weights_and_the_filter_act_only_inside_their_ou_time_window():
    """Step 10 is at OU time ~0.001: a window from t = 0.5 leaves it plain, one up to t = 0.1 catches it."""
    terms = terms_with_prediction(torch.randn(2, *SHAPE))
    outside, _ = build("frequency_weighted_loss", high_weight=0.1, t_min=0.5).objective(terms)
    inside, _ = build("frequency_weighted_loss", high_weight=0.1, t_max=0.1).objective(terms)
    assert outside.item() == pytest.approx(terms.mse().mean().item()) and inside.item() < 0.7 * outside.item()
    model = TinyNet().eval()
    x0, t, eps = batch()
    x_t = PROCESS.add_noise(x0, t, eps)
    late = build("spectral_filter", cutoff=0.25, target="eps", t_min=0.5).wrap_model(model)(x_t, t)
    assert torch.allclose(late, model(x_t, t), atol=1e-6)
    early = build("spectral_filter", cutoff=0.25, target="eps", t_max=0.1).wrap_model(model)(x_t, t)
    assert energy_above(early, 0.25).max() < 1e-8
