"""Stacks run folded (members in the batch axis, models/folded.py): each member computes what it computes alone;
networks with other layers keep vmap; random draws in a forward are refused either way."""
from __future__ import annotations

import pytest
import torch
from torch import Tensor, nn

from conftest import tiny_config
from freqdiff.core.registry import FreqdiffError
from freqdiff.models.dropout import KeyedDropout, keyed_dropout
from freqdiff.models.stack import StackedModel
from freqdiff.pipeline.build import build_pipeline

K, B = 3, 4


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny networks, as the trainer runs them (train.threads 1): a second thread would wait for a busy core."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def members(**flags: str) -> tuple[list[nn.Module], Tensor]:
    """K networks of one run's pipeline with their seeds' weights, and training levels for them (K, B)."""
    networks = []
    for seed in range(K):
        torch.manual_seed(seed)
        pipe = build_pipeline(tiny_config(**flags))
        networks.append(pipe.model.train())
    g = torch.Generator().manual_seed(5)
    return networks, torch.stack([pipe.process.sample_levels(B, g, torch.device("cpu")) for _ in range(K)])


def alone_and_stacked(networks: list[nn.Module], level: Tensor) -> tuple[list[list[Tensor]], list[list[Tensor]]]:
    """[output, gradients...] of each member, alone and in a stack, on the same inputs and dropout keys."""
    g = torch.Generator().manual_seed(7)
    x, keys = torch.randn(K, B, 1, 8, 8, generator=g), torch.randint(0, 2**40, (K, B), generator=g)
    alone = []
    for k, network in enumerate(networks):
        network.zero_grad()
        with keyed_dropout(keys[k]):
            out = network(x[k], level[k])
        out.square().sum().backward()
        alone.append([out.detach(), *(p.grad.clone() for p in network.parameters() if p.requires_grad)])
    stack = StackedModel(networks)
    out = stack(x, level, keys)
    out.square().sum().backward()
    grads = [p.grad for p in stack.parameters() if p.requires_grad]
    return alone, [[out[k].detach(), *(g[k] for g in grads)] for k in range(K)]


@pytest.mark.parametrize("flags", [{"model": "unet", "model.multipliers": "1,2", "model.dropout": "0.1"},
                                   {"model": "unet", "model.multipliers": "1,2", "process": "edm"},
                                   {"model": "mlp", "model.width": "32"}])
def test_a_folded_stack_gives_each_member_its_lone_output_and_gradients(flags: dict[str, str]) -> None:
    """Conv2d (3x3, strided and 1x1), GroupNorm, Linear on 2-D and 3-D inputs, LayerNorm, the DDPM step table
    (Embedding) and keyed dropout: every layer with weights takes member k's weights for member k's rows."""
    networks, level = members(**flags)
    assert StackedModel(networks).folded is not None
    alone, stacked = alone_and_stacked(networks, level)
    for mine, theirs in zip(alone, stacked):
        assert len(mine) > 10
        scale = max(a.abs().max().item() for a in mine)  # a gradient that is 0 but for rounding is compared to it
        assert all(torch.allclose(a, b, rtol=1e-4, atol=1e-5 * scale) for a, b in zip(mine, theirs))


class Net(nn.Module):
    """x + a per-pixel MLP of x: foldable, or not with a Conv1d (no folded form), or drawing random numbers."""

    def __init__(self, extra: nn.Module) -> None:
        super().__init__()
        self.inner, self.extra = nn.Linear(8, 8), extra

    def forward(self, x: Tensor, level: Tensor) -> Tensor:
        return x + self.extra(self.inner(x.flatten(0, -2))).reshape(x.shape)


class Noisy(nn.Module):
    def forward(self, x: Tensor) -> Tensor:
        return x + torch.randn_like(x)


def test_a_layer_without_a_folded_form_keeps_the_stack_on_vmap() -> None:
    networks = [Net(nn.Sequential(nn.Unflatten(1, (1, 8)), nn.Conv1d(1, 1, 3, padding=1), nn.Flatten()))
                for _ in range(K)]
    assert StackedModel(networks).folded is None
    alone, stacked = alone_and_stacked(networks, torch.zeros(K, B))
    for mine, theirs in zip(alone, stacked):
        assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(mine, theirs))


@pytest.mark.parametrize("extra, folded", [(Noisy(), True), (nn.Dropout(0.5), False), (KeyedDropout(0.5), True)])
def test_random_draws_in_a_forward_are_refused_folded_or_by_vmap(extra: nn.Module, folded: bool) -> None:
    """Unkeyed randomness would not be the draw a member makes alone: refused, naming the cure (KeyedDropout
    without keys falls back to torch's dropout, refused the same way)."""
    stack = StackedModel([Net(extra) for _ in range(K)]).train()
    assert (stack.folded is not None) == folded
    with pytest.raises(FreqdiffError, match="draws random numbers in its forward; use .*KeyedDropout"):
        stack(torch.randn(K, B, 1, 8, 8), torch.zeros(K, B))
