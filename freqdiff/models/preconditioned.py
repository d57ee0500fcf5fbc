"""A backbone seen through its process's preconditioning: forward(x_t, level) = F(c_in x_t, c_noise(level))."""
from __future__ import annotations

from torch import Tensor, nn

from freqdiff.process.base import DiffusionProcess


class Preconditioned(nn.Module):
    """The network every caller (trainer, samplers, losses, ensembles) calls with raw x_t and levels.

    The process is held by reference, not as a submodule: the weights in a checkpoint are the network's only.
    """

    def __init__(self, net: nn.Module, process: "DiffusionProcess") -> None:
        super().__init__()
        self.net = net
        self._process = [process]
        self._register_load_state_dict_pre_hook(_accept_bare_network)

    def forward(self, x_t: Tensor, level: Tensor) -> Tensor:
        process = self._process[0]
        c_in = process.c_in(level)
        return self.net(x_t if c_in is None else process.scale(c_in, x_t), process.c_noise(level))


def wrap(model: nn.Module, process: "DiffusionProcess") -> nn.Module:
    """Preconditioned(model) for a network; a closed-form model answers (x_t, level) as it is."""
    return model if getattr(model, "closed_form", False) else Preconditioned(model, process)


def _accept_bare_network(state_dict: dict, prefix: str, *_: object) -> None:
    """Let the bare network's own state_dict load too (weights saved without the wrapper, as before the contract):
    its keys gain the `net.` prefix."""
    inner = f"{prefix}net."
    for key in [k for k in state_dict if k.startswith(prefix) and not k.startswith(inner)]:
        state_dict[inner + key[len(prefix):]] = state_dict.pop(key)
