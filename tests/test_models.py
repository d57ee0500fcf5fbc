"""The registered score networks: the paper's parameter counts, shapes, errors, gradients."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from conftest import build_context
from freqdiff.core.registry import FreqdiffError
from freqdiff.models import MODELS
from freqdiff.models.stack import StackedModel
from freqdiff.models.unet import SelfAttention
from freqdiff.process import PROCESSES


def build(name: str, channels: int = 1, resolution: tuple[int, int] = (8, 8),
          process: tuple[str, dict[str, str]] = ("ddpm", {}), **params) -> nn.Module:
    """The bare network (without its process's preconditioning), for the given process."""
    context = build_context((channels, *resolution))
    context = context.with_process(PROCESSES.build(*process, context=context))
    torch.manual_seed(0)
    return MODELS.build(name, params, context=context)


def count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def steps(batch: int) -> torch.Tensor:
    return torch.randint(0, 1000, (batch,))


@pytest.mark.parametrize("width, millions", [(8, 0.263), (16, 1.027), (32, 4.055)])
def test_unet_parameter_count_matches_paper(width: int, millions: float) -> None:
    assert count(build("unet", resolution=(32, 32), width=width)) / 1e6 == pytest.approx(millions, rel=0.01)


def test_unet_parameter_count_does_not_depend_on_resolution() -> None:
    assert count(build("unet", resolution=(8, 8))) == count(build("unet", resolution=(32, 32)))


def test_unet_step_table_is_frozen_and_follows_the_process() -> None:
    model = build("unet")
    frozen = [p for p in model.parameters() if not p.requires_grad]
    assert [p.shape for p in frozen] == [torch.Size([1000, 8])]
    longer = build("unet", process=("ddpm", {"T": "2000"}))
    assert [p.shape for p in longer.parameters() if not p.requires_grad] == [torch.Size([2000, 8])]


@pytest.mark.parametrize("resolution", [(8, 8), (16, 16), (28, 28), (25, 25), (9, 14)])
@pytest.mark.parametrize("channels", [1, 3])
def test_unet_output_shape_equals_input_shape(resolution: tuple[int, int], channels: int) -> None:
    model = build("unet", channels=channels, resolution=resolution)
    x = torch.randn(2, channels, *resolution)
    eps = model(x, steps(2))
    assert eps.shape == x.shape and torch.isfinite(eps).all()


def test_unet_output_depends_on_step() -> None:
    model = build("unet").eval()
    x = torch.randn(1, 1, 8, 8)
    assert not torch.allclose(model(x, torch.tensor([10])), model(x, torch.tensor([900])))


@pytest.mark.parametrize("width", [12, 4, 0, -8])
def test_unet_bad_width_is_one_line_naming_value_and_choices(width: int) -> None:
    message = rf"model 'unet'\.width: {width} is not a positive multiple of 8"
    with pytest.raises(FreqdiffError, match=message) as error:
        build("unet", width=width)
    assert "\n" not in str(error.value) and "16, 24" in str(error.value)


@pytest.mark.parametrize(
    "params, field",
    [
        ({"heads": 3}, "heads"),
        ({"attention_levels": 4}, "attention_levels"),
        ({"multipliers": "1,0,4"}, "multipliers"),
        ({"blocks": 0}, "blocks"),
        ({"dropout": 1.0}, "dropout"),
    ],
)
def test_unet_bad_parameters_raise(params: dict, field: str) -> None:
    with pytest.raises(FreqdiffError, match=rf"model 'unet'\.{field}: "):
        build("unet", **params)


def test_unet_other_layouts_build_and_run() -> None:
    model = build("unet", width=16, multipliers="1,2", attention_levels=0, heads=2, blocks=1)
    x = torch.randn(2, 1, 10, 10)
    assert model(x, steps(2)).shape == x.shape


def test_unet_gradients_reach_every_trainable_parameter() -> None:
    model = build("unet", resolution=(16, 16))
    x = torch.randn(4, 1, 16, 16)
    nn.functional.mse_loss(model(x, steps(4)), torch.randn_like(x)).backward()
    for name, p in model.named_parameters():
        if p.requires_grad:
            assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, name


def test_unet_dropout_is_plain_modules_a_regularizer_can_set() -> None:
    model = build("unet", dropout=0.1)
    dropouts = [m for m in model.modules() if isinstance(m, nn.Dropout)]
    assert len(dropouts) == 2 * 3 + 2 + 3 * 3 and all(m.p == 0.1 for m in dropouts)
    x = torch.randn(2, 1, 8, 8)
    t = steps(2)
    for m in dropouts:
        m.p = 0.0
    assert torch.equal(model.train()(x, t), model.eval()(x, t))


def attention_forms(model: nn.Module, fused: bool) -> nn.Module:
    for m in model.modules():
        if isinstance(m, SelfAttention):
            m.fused = fused
    return model


@pytest.mark.parametrize("side", [8, 32])  # attention maps of 4 and 16 tokens, 256 tokens at 32x32
def test_unet_fused_and_einsum_attention_agree_to_rounding(monkeypatch: pytest.MonkeyPatch, side: int) -> None:
    """The fused kernel (one network) and einsum + softmax (stacks) are one function: outputs and gradients."""
    monkeypatch.setattr(SelfAttention, "EINSUM_TOKENS", 10**9)  # einsum at every size, here
    model = build("unet", resolution=(side, side)).eval()
    layer = SelfAttention(32, 4)
    results = []
    for fused in (True, False):
        attention_forms(model, fused).zero_grad()
        layer.fused = fused
        x = torch.randn(3, 1, side, side, generator=torch.Generator().manual_seed(1))
        out = model(x, torch.tensor([5, 500, 999]))
        out.square().sum().backward()
        h = torch.randn(2, 32, side, side, generator=torch.Generator().manual_seed(2))
        results.append([out, layer(h), *(p.grad.clone() for p in model.parameters() if p.requires_grad)])
    assert len(results[0]) > 100
    scale = max(r.abs().max().item() for r in results[0])  # e.g. the key bias's gradient is 0 but for rounding
    for fused, einsum in zip(*results):
        assert torch.allclose(fused, einsum, rtol=1e-4, atol=1e-5 * scale)


def sdpa_calls(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts calls of the fused kernel from here on."""
    calls, fused = [], nn.functional.scaled_dot_product_attention

    def counted(*args, **kwargs):
        calls.append(1)
        return fused(*args, **kwargs)

    monkeypatch.setattr(nn.functional, "scaled_dot_product_attention", counted)
    return calls


@pytest.mark.parametrize("side, vmapped_sdpa", [(8, 0), (32, 5)])
def test_stacks_run_the_fused_kernel_alone_and_folded_and_einsum_on_small_maps_by_vmap(
        monkeypatch: pytest.MonkeyPatch, side: int, vmapped_sdpa: int) -> None:
    """11 attention layers. Alone and folded (models/folded.py): the fused kernel in each. By vmap (members with a
    buffer have no folded form): einsum on maps <= 4x4 (all at 8x8), the fused kernel on 16x16 (five at 32x32)."""
    members = [build("unet", resolution=(side, side)) for _ in range(2)]
    x, t, keys = torch.randn(2, 2, 1, side, side), torch.randint(0, 1000, (2, 2)), torch.randint(0, 2**40, (2, 2))
    calls = sdpa_calls(monkeypatch)
    alone = StackedModel(members[:1])
    assert not alone.batched and alone.folded is None
    for stack in (alone, StackedModel(members), StackedModel(members[:1], batched=True), alone.select([0, 0])):
        calls.clear()
        assert stack.batched == (stack.folded is not None)
        out = stack(x[: stack.members], t[: stack.members], keys[: stack.members])
        assert len(calls) == 11 and out.shape == x[: stack.members].shape
    for member in members:
        member.register_buffer("unused", torch.zeros(1))
    vmapped = StackedModel(members)
    assert vmapped.folded is None
    assert not any(m.fused for m in vmapped.template.modules() if isinstance(m, SelfAttention))
    calls.clear()
    vmapped(x, t, keys)
    assert len(calls) == vmapped_sdpa
    assert all(m.fused for m in members[0].modules() if isinstance(m, SelfAttention))  # the members keep theirs
    again = StackedModel([vmapped.template])  # a vmapped stack's template, stacked alone: fused again
    assert all(m.fused for m in again.template.modules() if isinstance(m, SelfAttention))


def test_mlp_matches_reference_layout_and_runs() -> None:
    model = build("mlp", resolution=(1, 8))
    assert count(model) == (8 * 128 + 128) + 3 * (2 * (128 * 128 + 128) + 2 * 128) + (128 * 8 + 8)
    x = torch.randn(5, 1, 1, 8)
    eps = model(x, steps(5))
    assert eps.shape == x.shape
    nn.functional.mse_loss(eps, torch.randn_like(x)).backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())


def test_mlp_flattens_images() -> None:
    model = build("mlp", channels=3, resolution=(5, 7), width=32, blocks=2)
    x = torch.randn(2, 3, 5, 7)
    assert model(x, steps(2)).shape == x.shape


def test_mlp_bad_width_raises() -> None:
    with pytest.raises(FreqdiffError, match=r"model 'mlp'\.width: 7 "):
        build("mlp", width=7)


@pytest.mark.parametrize("name", ["unet", "mlp"])
def test_models_are_registered_with_a_description(name: str) -> None:
    assert MODELS.entry(name).doc


def test_the_preconditioned_model_loads_its_bare_networks_weights() -> None:
    """A checkpoint of the bare network (saved without the wrapper) loads into the pipeline's model."""
    from conftest import tiny_config
    from freqdiff.pipeline.build import build_pipeline

    model = build_pipeline(tiny_config()).model
    bare = {k.removeprefix("net."): v + 1 for k, v in model.state_dict().items()}
    model.load_state_dict(bare)
    assert all(torch.equal(model.state_dict()[f"net.{k}"], v) for k, v in bare.items())
