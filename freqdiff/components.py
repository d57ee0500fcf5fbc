"""The registries of the pipeline, in pipeline order: data -> process -> model -> regularizer -> sampler."""
from __future__ import annotations

from typing import Any

from freqdiff.data import DATASETS
from freqdiff.metrics.extractors import EXTRACTORS
from freqdiff.models import MODELS
from freqdiff.process import PROCESSES
from freqdiff.regularizers import REGULARIZERS
from freqdiff.registry import Registry
from freqdiff.samplers import SAMPLERS

REGISTRIES: dict[str, Registry[Any]] = {
    "dataset": DATASETS,
    "process": PROCESSES,
    "model": MODELS,
    "regularizer": REGULARIZERS,
    "sampler": SAMPLERS,
    "extractor": EXTRACTORS,
}
