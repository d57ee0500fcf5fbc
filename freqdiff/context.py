"""The one typed context every factory of a run's pipeline receives: the data, and the process once it is built."""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from freqdiff.data import Split
    from freqdiff.process import DiffusionProcess


@dataclass(frozen=True)
class BuildContext:
    """What a process, model, regularizer or sampler may depend on besides its own parameters.

    Built in pipeline order: a process sees the split (equal_snr measures the training subset's spectrum);
    models, regularizers and samplers also see the process (a model's time embedding follows its levels).
    """

    split: "Split"
    device: torch.device = torch.device("cpu")
    process: "DiffusionProcess | None" = None

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return self.split.image_shape

    @property
    def x0_range(self) -> tuple[float, float]:
        """The interval the training pixels span (for DDIM's clamp)."""
        return self.split.x0_range

    def with_process(self, process: "DiffusionProcess") -> "BuildContext":
        return replace(self, process=process)

    def require_process(self, who: str) -> "DiffusionProcess":
        """The process, for a component built after it (a programming error otherwise, not a user one)."""
        if self.process is None:
            raise TypeError(f"{who} needs a BuildContext with its process")
        return self.process
