"""Closed-form baselines that project onto the training set (paper.md section 5)."""
from freqdiff.baselines.optimal_score import OptimalScore, optimal_eps, optimal_x0

__all__ = ["OptimalScore", "optimal_eps", "optimal_x0"]
