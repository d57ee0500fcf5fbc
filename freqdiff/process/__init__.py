"""Diffusion processes, one file each, all on the noise-level contract of process/base.py."""
from freqdiff.core.registry import Registry
from freqdiff.process.base import DenoiserProcess, DiffusionProcess

PROCESSES: Registry[DiffusionProcess] = Registry("process")

from freqdiff.core.plugins import import_submodules  # noqa: E402

import_submodules(__name__)

__all__ = ["PROCESSES", "DiffusionProcess", "DenoiserProcess"]
