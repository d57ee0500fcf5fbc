"""Baselines that are never trained and project onto the training set, on the same axes as trained models.

optimal_score: the streamed empirical posterior (the exact memorizer) that every baseline builds on;
closed_form/: the registered models (empirical, smoothed_empirical, els, nn_projection; freqdiff.models imports it);
runs: baseline runs, a model measured over one of its own parameters (`freqdiff baseline`, `freqdiff eval`);
study: the projection-baselines study beside a trained U-Net (recipes/projection_baselines.py).
"""
from freqdiff.baselines.optimal_score import OptimalScore, in_basis, optimal_x0

__all__ = ["OptimalScore", "in_basis", "optimal_x0"]
