"""Diffusion processes (forward noising, its inverse and posteriors), one file each."""
from freqdiff.process.base import DenoisingTerms, DiffusionProcess, denoise
from freqdiff.registry import Registry

PROCESSES: Registry[DiffusionProcess] = Registry("process")

from freqdiff.plugins import import_submodules  # noqa: E402

import_submodules(__name__)

__all__ = ["PROCESSES", "DiffusionProcess", "DenoisingTerms", "denoise"]
