"""The exactly solvable random-features model of Bonnaire et al. 2025, sec. 4.

    from freqdiff.theory import TheoryConfig, run_study
    run_study(TheoryConfig(d=40, psi_n=(4, 8), t=(0.1,), out="runs/rf"))

Modules: constants (a_t, b_t, v_t, s_t, mu_1), features (U, V, U~, V~), dynamics (closed-form A(tau) and the
losses), spectrum (bulk edges, tau_gen, tau_mem), simulate (GD check), study / plots / report / cli.
"""
from freqdiff.theory.constants import GEConstants, ge_constants
from freqdiff.theory.dynamics import (A_closed_form, A_star, LossCurves, Modes, denoising_loss, gradient_flow_rhs,
                                      loss_curves, mode_timescales, modes, score_error)
from freqdiff.theory.features import (RFProblem, U_V_empirical, U_V_monte_carlo, U_V_population, make_problem)
from freqdiff.theory.spectrum import (BulkEdges, Timescales, measured_timescales, numerical_edges,
                                      predicted_edges, predicted_timescales)
from freqdiff.theory.simulate import GDTrace, gradient_descent
from freqdiff.theory.study import StudyResult, TheoryConfig, run_study

__all__ = ["GEConstants", "ge_constants", "A_closed_form", "A_star", "LossCurves", "Modes", "denoising_loss",
           "gradient_flow_rhs", "loss_curves", "mode_timescales", "modes", "score_error", "RFProblem",
           "U_V_empirical", "U_V_monte_carlo", "U_V_population", "make_problem", "BulkEdges", "Timescales",
           "measured_timescales", "numerical_edges", "predicted_edges", "predicted_timescales", "GDTrace",
           "gradient_descent", "StudyResult", "TheoryConfig", "run_study"]
