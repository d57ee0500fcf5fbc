"""K networks as one on K*B examples: members ride in the batch axis, and only the layers with weights know them.

A stack's members differ in their weights only, and every other operation of a network acts on each example alone,
so K networks run as one network on the members' batches laid end to end (rows k*B..(k+1)*B-1 are member k's)
once each layer with weights takes member k's weights for member k's rows. These folded layers hold stacked weights
(K, ...) under their usual names, so a stack's parameters load into them as they are. They replace vmap for the
networks made of them (models/stack.py): an operation on K*B examples is one plain call, where vmap moves the member
axis around every operation and splits each normalization into several (bench/README.md, "Ensembles"). Layers of
other kinds, buffers, or dropout not keyed by the example (models/dropout.py) keep a stack on vmap.
"""
from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

from freqdiff.models.dropout import DROPOUT_LAYERS, KeyedDropout


def members(weight: Tensor) -> int:
    """K, the leading axis of a folded layer's stacked weight."""
    return weight.shape[0]


class FoldedLinear(nn.Linear):
    """Linear on (K*B, ..., C): member k's rows times its weight (K, O, C), one batched matmul."""

    def forward(self, x: Tensor) -> Tensor:
        rows = x.reshape(members(self.weight), -1, x.shape[-1])  # (K, B*..., C)
        weight = self.weight.transpose(1, 2)
        out = torch.bmm(rows, weight) if self.bias is None else torch.baddbmm(self.bias.unsqueeze(1), rows, weight)
        return out.reshape(*x.shape[:-1], out.shape[-1])


class FoldedConv2d(nn.Conv2d):
    """Conv2d on (K*B, C, H, W): a grouped convolution with the members as groups; a 1x1 kernel as a batched matmul
    (single-threaded torch runs a small grouped 1x1 convolution one group at a time, 1.6-2.7x slower)."""

    def forward(self, x: Tensor) -> Tensor:
        k, (h, w) = members(self.weight), x.shape[-2:]
        if self.kernel_size == (1, 1) and self.stride == (1, 1) and self.padding == (0, 0) and self.groups == 1:
            pixels, weight = rearrange(x, "(k b) c h w -> k c (b h w)", k=k), self.weight.flatten(2)
            bias = None if self.bias is None else self.bias.unsqueeze(2)
            out = torch.bmm(weight, pixels) if bias is None else torch.baddbmm(bias, weight, pixels)
            return rearrange(out, "k o (b h w) -> (k b) o h w", h=h, w=w)
        bias = None if self.bias is None else self.bias.flatten()
        grouped = F.conv2d(rearrange(x, "(k b) c h w -> b (k c) h w", k=k),
                           rearrange(self.weight, "k o c i j -> (k o) c i j"), bias, self.stride, self.padding,
                           self.dilation, k * self.groups)
        return rearrange(grouped, "b (k o) h w -> (k b) o h w", k=k)


def affine(normalized: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
    """normalized (K*B, ...) * weight + bias of member k on its rows; weight and bias (K, ...) align from the right."""
    k = members(weight)
    rows = normalized.reshape(k, -1, *normalized.shape[1:])  # (K, B, ...): a view
    shape = (k,) + (1,) * (rows.dim() - weight.dim()) + weight.shape[1:]
    weight = weight.reshape(shape)
    out = rows * weight if bias is None else torch.addcmul(bias.reshape(shape), rows, weight)
    return out.reshape(normalized.shape)


class FoldedGroupNorm(nn.GroupNorm):
    """GroupNorm on (K*B, C, ...): the normalization is per example; the affine is member k's."""

    def forward(self, x: Tensor) -> Tensor:
        trailing = (1,) * (x.dim() - 2)  # the weight (K, C) broadcast over the spatial axes
        weight, bias = (v.reshape(*v.shape, *trailing) for v in (self.weight, self.bias))
        return affine(F.group_norm(x, self.num_groups, eps=self.eps), weight, bias)


class FoldedLayerNorm(nn.LayerNorm):
    """LayerNorm on (K*B, ..., *normalized_shape): the normalization is per example; the affine is member k's."""

    def forward(self, x: Tensor) -> Tensor:
        return affine(F.layer_norm(x, self.normalized_shape, eps=self.eps), self.weight, self.bias)


class FoldedEmbedding(nn.Embedding):
    """Embedding of (K*B, ...) indices into member k's table (K, N, D), looked up in the K tables laid end to end."""

    def forward(self, index: Tensor) -> Tensor:
        k, rows = self.weight.shape[:2]
        offset = torch.arange(k, device=index.device) * rows  # where member k's table starts
        shifted = rearrange(index, "(k b) ... -> k b ...", k=k) + offset.reshape(k, *[1] * index.dim())
        return F.embedding(rearrange(shifted, "k b ... -> (k b) ..."), self.weight.flatten(0, 1))


FOLDED = {nn.Linear: FoldedLinear, nn.Conv2d: FoldedConv2d, nn.GroupNorm: FoldedGroupNorm,
          nn.LayerNorm: FoldedLayerNorm, nn.Embedding: FoldedEmbedding}


def foldable(module: nn.Module) -> bool:
    """Whether a layer with weights has a folded form: exactly one of FOLDED's kinds, in the settings it covers."""
    if type(module) not in FOLDED:
        return False
    if isinstance(module, nn.Conv2d):
        return module.padding_mode == "zeros"
    if isinstance(module, nn.Embedding):
        return module.padding_idx is None and module.max_norm is None and not module.sparse
    return True


def fold(network: nn.Module) -> nn.Module | None:
    """A copy of `network` whose layers with weights are folded, or None where one cannot be: a layer of another
    kind, a buffer, or dropout that is not keyed (vmap then refuses it, as it should)."""
    folded = copy.deepcopy(network)
    for module in folded.modules():
        if isinstance(module, DROPOUT_LAYERS) and not isinstance(module, KeyedDropout):
            return None
        if next(module.buffers(recurse=False), None) is not None:
            return None
        if next(module.parameters(recurse=False), None) is not None:
            if not foldable(module):
                return None
            module.__class__ = FOLDED[type(module)]  # the same layer and state; only its forward knows the members
    return folded
