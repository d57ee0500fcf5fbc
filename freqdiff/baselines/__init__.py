"""Closed-form baselines that project onto the training set (the empirical optimal score)."""
from freqdiff.baselines.optimal_score import OptimalScore, in_basis, optimal_x0

__all__ = ["OptimalScore", "in_basis", "optimal_x0"]
