"""The one typed context every factory of a run's pipeline receives: the data, and the process once it is built."""
from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from freqdiff.data.split import Split
from freqdiff.process.base import DiffusionProcess


@dataclass(frozen=True)
class BuildContext:
    """What a process, model, regularizer or sampler may depend on besides its own parameters.

    Built in pipeline order: a process sees the split (equal_snr measures the training subset's spectrum);
    models, regularizers and samplers also see the process (a model's time embedding follows its levels).
    """

    split: Split
    device: torch.device = torch.device("cpu")
    process: DiffusionProcess | None = None
    load_trained: "Callable[[Path, int, BuildContext], nn.Module] | None" = None  # the pipeline's loader of a run

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return self.split.image_shape

    @property
    def x0_range(self) -> tuple[float, float]:
        """The interval the training pixels span (for DDIM's clamp)."""
        return self.split.x0_range

    def with_process(self, process: DiffusionProcess) -> "BuildContext":
        return replace(self, process=process)

    def require_process(self, who: str) -> DiffusionProcess:
        """The process, for a component built after it (a programming error otherwise, not a user one)."""
        if self.process is None:
            raise TypeError(f"{who} needs a BuildContext with its process")
        return self.process

    def trained_model(self, run_dir: Path, step: int) -> nn.Module:
        """A trained run's network at `step` (0: its last checkpoint), checked against this context's data and process
        (a model that wraps a trained one, e.g. nn_projection)."""
        if self.load_trained is None:
            raise TypeError("loading a trained run needs a BuildContext made by build_pipeline")
        return self.load_trained(run_dir, step, self)
