"""freqdiff: measure when a diffusion model starts to copy its training set, and what delays it."""
__version__ = "0.1.0"
