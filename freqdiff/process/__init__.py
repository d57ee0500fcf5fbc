"""Diffusion processes, one file each, all on the noise-level contract of process/base.py."""
from freqdiff.process.base import DenoiserProcess, DenoisingTerms, DiffusionProcess
from freqdiff.registry import Registry

PROCESSES: Registry[DiffusionProcess] = Registry("process")

from freqdiff.plugins import import_submodules  # noqa: E402

import_submodules(__name__)

__all__ = ["PROCESSES", "DiffusionProcess", "DenoiserProcess", "DenoisingTerms"]
