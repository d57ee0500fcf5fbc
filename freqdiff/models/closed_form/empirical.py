"""`empirical`: the closed-form optimal score of the training subset, streamed over it in chunks."""
from __future__ import annotations

from dataclasses import dataclass

from freqdiff.core.registry import param
from freqdiff.models import MODELS
from freqdiff.models.optimal_score import DEFAULT_CHUNK, OptimalScore
from freqdiff.process.context import BuildContext


@dataclass(frozen=True)
class EmpiricalParams:
    chunk_size: int = param(DEFAULT_CHUNK, ge=1)  # training images per step: bounds the memory, whatever n is


@MODELS.register("empirical", EmpiricalParams)
def empirical(params: EmpiricalParams, context: BuildContext) -> OptimalScore:
    """The exact optimal score of the training subset (a memorizer: its samples are training images)."""
    return OptimalScore(context.split.train, context.require_process("model 'empirical'"), params.chunk_size)
