"""K networks of one architecture as one batched network: parameters stacked on a leading axis, the members' batches
run as one batch of K*B examples through folded layers (models/folded.py), or by vmap where a network has layers of
other kinds.

Each member computes exactly what it would compute alone (up to float re-association inside the batched
kernels; a stack of one runs unbatched unless told to keep the batched arithmetic): `forward(x, t)` maps x (K, B, ...)
and t (K, B) to member k's output on x[k]. Member weights move in and out as ordinary state dicts, so an ensemble
member's run directory is an ordinary run.
"""
from __future__ import annotations

import copy
from typing import Sequence

import torch
from einops import rearrange
from torch import Tensor, nn
from torch.func import functional_call, stack_module_state, vmap

from freqdiff.core.registry import FreqdiffError
from freqdiff.models.dropout import keyed_dropout
from freqdiff.models.folded import fold


class StackedModel(nn.Module):
    """The members' parameters (K, ...) and buffers (K, ...) and one template module that defines the forward."""

    def __init__(self, members: Sequence[nn.Module], batched: bool = False) -> None:
        super().__init__()
        self.batched = batched or len(members) > 1  # batch even a single member (keeps a run's arithmetic)
        if not members:
            raise FreqdiffError("StackedModel: needs at least one member")
        self._template = [copy.deepcopy(members[0])]  # a list, so its own weights are not registered
        self._folded = [fold(self.template) if self.batched else None]  # None: vmap (or a lone member, unbatched)
        vmapped = self.batched and self.folded is None
        for network in filter(None, (self.template, self.folded)):
            for module in network.modules():  # layers with two forms (models/unet.py SelfAttention): vmap's is plain
                if hasattr(module, "fused"):
                    module.fused = not vmapped
        params, buffers = stack_module_state(list(members))
        self.param_names, self.buffer_names = list(params), list(buffers)
        self.stacked = nn.ParameterList(nn.Parameter(params[n], requires_grad=params[n].requires_grad)
                                        for n in self.param_names)
        for i, name in enumerate(self.buffer_names):
            self.register_buffer(f"buffer{i}", buffers[name])
        self.persistent = set(self.template.state_dict())

    @property
    def template(self) -> nn.Module:
        return self._template[0]

    @property
    def members(self) -> int:
        return self.stacked[0].shape[0]

    @property
    def folded(self) -> nn.Module | None:
        """The template with folded layers, or None where the stack runs by vmap (or a lone member, unbatched)."""
        return self._folded[0]

    def stacked_buffers(self) -> list[Tensor]:
        return [getattr(self, f"buffer{i}") for i in range(len(self.buffer_names))]

    def _apply(self, fn, recurse: bool = True):  # noqa: ANN001 - nn.Module's signature
        super()._apply(fn, recurse)
        for network in filter(None, (self.template, self.folded)):
            network._apply(fn, recurse)
        return self

    def train(self, mode: bool = True) -> "StackedModel":
        super().train(mode)
        for network in filter(None, (self.template, self.folded)):
            network.train(mode)
        return self

    def _member_forward(self, params: list[Tensor], buffers: list[Tensor], x: Tensor, t: Tensor,
                        keys: Tensor | None) -> Tensor:
        with keyed_dropout(keys):
            return functional_call(self.template, ({**dict(zip(self.param_names, params)),
                                                    **dict(zip(self.buffer_names, buffers))},), (x, t))

    def forward(self, x: Tensor, t: Tensor, keys: Tensor | None = None) -> Tensor:
        """Member k on (x[k], t[k]), with dropout masks keyed by keys[k] (K, B) when given. A lone member that is
        not `batched` runs without vmap: faster, equal up to float re-association."""
        if not self.batched:
            out = self._member_forward([p[0] for p in self.stacked], [b[0] for b in self.stacked_buffers()], x[0], t[0],
                                       None if keys is None else keys[0])
            return out[None]
        if self.folded is not None:
            return self._folded_forward(x, t, keys)
        try:
            in_dims = (0, 0, 0, 0, None if keys is None else 0)
            return vmap(self._member_forward, in_dims, randomness="error")(list(self.stacked), self.stacked_buffers(),
                                                                           x, t, keys)
        except RuntimeError as err:
            if "randomness" not in str(err):
                raise
            raise self._random_draws() from None

    def _folded_forward(self, x: Tensor, t: Tensor, keys: Tensor | None) -> Tensor:
        """The members' batches laid end to end through the folded network. A draw from the global generator is
        refused, as vmap refuses it: it would not be the draw a member makes alone."""
        x, t, keys = (None if v is None else rearrange(v, "k b ... -> (k b) ...") for v in (x, t, keys))
        before = generator_state(x.device)
        weights = {**dict(zip(self.param_names, self.stacked)), **dict(zip(self.buffer_names, self.stacked_buffers()))}
        with keyed_dropout(keys):
            out = functional_call(self.folded, (weights,), (x, t))
        if not torch.equal(before, generator_state(x.device)):
            raise self._random_draws()
        return rearrange(out, "(k b) ... -> k b ...", k=self.members)

    def _random_draws(self) -> FreqdiffError:
        return FreqdiffError(f"ensemble: {type(self.template).__name__} draws random numbers in its forward; "
                             "use freqdiff.models.dropout.KeyedDropout for dropout")

    def member_state(self, k: int) -> dict[str, Tensor]:
        """Member k's weights as the state_dict its own single network would have."""
        tensors = zip(self.param_names + self.buffer_names, list(self.stacked) + self.stacked_buffers())
        return {name: value[k].detach().clone() for name, value in tensors if name in self.persistent}

    def select(self, ks: Sequence[int]) -> "StackedModel":
        """A new stack of members ks (copies of their weights), e.g. to sample a few of them."""
        members = []
        for k in ks:
            member = copy.deepcopy(self.template)
            member.load_state_dict(self.member_state(k))
            members.append(member)
        return StackedModel(members, self.batched)

    def load_member(self, k: int, state: dict[str, Tensor]) -> None:
        """Overwrite member k's weights from a single network's state_dict (missing keys are refused)."""
        missing = sorted(self.persistent - set(state))
        if missing:
            raise FreqdiffError(f"ensemble: a member's weights lack {', '.join(missing[:3])}")
        with torch.no_grad():
            for name, value in zip(self.param_names + self.buffer_names, list(self.stacked) + self.stacked_buffers()):
                if name in state:
                    value[k].copy_(state[name])


class FlatStack(nn.Module):
    """A StackedModel seen as one network on a batch of K*B images: member k owns rows k*B..(k+1)*B-1.

    Samplers call model(x, t) on one batch; this lets them draw from every member at once.
    """

    def __init__(self, stack: StackedModel) -> None:
        super().__init__()
        self.stack = stack

    def forward(self, x: Tensor, t: Tensor) -> Tensor:
        k = self.stack.members
        out = self.stack(rearrange(x, "(k b) ... -> k b ...", k=k), rearrange(t, "(k b) -> k b", k=k))
        return rearrange(out, "k b ... -> (k b) ...")


def generator_state(device: torch.device) -> Tensor:
    """The state of the global random generator that draws on `device`."""
    return torch.cuda.get_rng_state(device) if device.type == "cuda" else torch.get_rng_state()
