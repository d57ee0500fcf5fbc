"""Keyed dropout: uniform, independent across layers and keys, and a function of the example's key alone."""
from __future__ import annotations

import torch

from freqdiff.models.dropout import KeyedDropout, keyed_dropout, keyed_uniform


def test_keyed_uniforms_are_uniform_and_independent_across_salts_and_keys() -> None:
    keys = torch.randint(0, 2**62, (64,), generator=torch.Generator().manual_seed(0))
    u = keyed_uniform(keys, 1, (64, 16, 8, 8))
    n = u.numel()
    assert abs(u.mean().item() - 0.5) < 4 * (1 / 12 / n) ** 0.5
    assert abs((u < 0.1).float().mean().item() - 0.1) < 4 * (0.09 / n) ** 0.5
    for other in (keyed_uniform(keys, 2, u.shape), keyed_uniform(keys + 1, 1, u.shape)):
        assert abs(torch.corrcoef(torch.stack([u.flatten(), other.flatten()]))[0, 1].item()) < 4 / n ** 0.5


def test_a_mask_depends_only_on_its_examples_key() -> None:
    """Example 3 gets the same mask alone, in a batch, or at another position: ranks and ensembles agree."""
    layer = KeyedDropout(0.5).train()
    x = torch.ones(6, 4, 2, 2)
    keys = torch.arange(100, 106)
    with keyed_dropout(keys):
        batch = layer(x)
    with keyed_dropout(keys[3:4]):
        alone = layer(x[3:4])
    with keyed_dropout(keys.flip(0)):
        flipped = layer(x)
    assert torch.equal(batch[3], alone[0]) and torch.equal(batch[3], flipped[2])
    assert set(batch.unique().tolist()) == {0.0, 2.0}, "kept values are scaled by 1/(1-p)"


def test_each_layer_call_draws_a_new_mask_and_eval_mode_is_the_identity() -> None:
    layer = KeyedDropout(0.5).train()
    x = torch.ones(2, 64)
    with keyed_dropout(torch.tensor([7, 8])):
        first, second = layer(x), layer(x)
    assert not torch.equal(first, second)
    with keyed_dropout(torch.tensor([7, 8])):
        assert torch.equal(layer(x), first), "the same keys and call index give the same mask"
    assert torch.equal(layer.eval()(x), x)
