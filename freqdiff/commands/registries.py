"""Every registry, in pipeline order: data -> process -> model -> regularizer -> sampler, then the extractor that
measures the samples (`freqdiff list`, and the names a config's settings are checked against). Each is keyed by its own kind, which is also the name of its setting: the
RunConfig field (config.COMPONENTS) for the five components, EvalConfig.extractor for the extractor."""
from __future__ import annotations

from typing import Any

from freqdiff.core.registry import Registry
from freqdiff.data import DATASETS
from freqdiff.metrics.extractors import EXTRACTORS
from freqdiff.models import MODELS
from freqdiff.process import PROCESSES
from freqdiff.regularizers import REGULARIZERS
from freqdiff.samplers import SAMPLERS

REGISTRIES: dict[str, Registry[Any]] = {
    registry.kind: registry for registry in (DATASETS, PROCESSES, MODELS, REGULARIZERS, SAMPLERS, EXTRACTORS)
}
