"""The exactly solvable random-features model of Bonnaire et al. 2025, sec. 4.

    from freqdiff.theory import TheoryConfig, run_study
    run_study(TheoryConfig(d=40, psi_p=(64.0,), psi_n=(2.0, 4.0), t=(0.1,), gap_level=(0.5,), exact_draws=0,
                           out="runs/rf"))

Modules: constants (a_t, b_t, v_t, s_t, mu_1), features (U, V, U~, V~ of the exact model), equivalent (the
Gaussian-equivalent model in n + d dimensions), dynamics (closed-form A(tau) and the losses), spectrum (bulk edges,
predicted timescales), compute (one setting: run, save, load), readouts (tau_gen and four readouts of tau_mem),
slopes (slopes against psi_n with intervals over draws), simulate (GD check), config (TheoryConfig: the study's
settings), results (Setting, StudyResult), tables / plots / report (read a StudyResult), study (runs it), cli.
"""
from freqdiff.theory.config import TheoryConfig
from freqdiff.theory.constants import GEConstants, ge_constants
from freqdiff.theory.dynamics import (A_closed_form, A_star, LossCurves, Modes, denoising_loss, gradient_flow_rhs,
                                      loss_curves, mode_timescales, modes, score_error)
from freqdiff.theory.equivalent import equivalent_matrices, equivalent_modes, gram_increments, wishart
from freqdiff.theory.features import RFProblem, U_V_empirical, U_V_monte_carlo, U_V_population, make_problem
from freqdiff.theory.readouts import Readouts, read_all
from freqdiff.theory.results import StudyResult
from freqdiff.theory.simulate import GDTrace, gradient_descent
from freqdiff.theory.slopes import DrawSlope, draw_slope, local_slopes
from freqdiff.theory.spectrum import (BulkEdges, Timescales, numerical_edges, predicted_edges, predicted_timescales,
                                      tau_gen_bulk)
from freqdiff.theory.study import run_study

__all__ = ["GEConstants", "ge_constants", "A_closed_form", "A_star", "LossCurves", "Modes", "denoising_loss",
           "gradient_flow_rhs", "loss_curves", "mode_timescales", "modes", "score_error", "equivalent_matrices",
           "equivalent_modes", "gram_increments", "wishart", "RFProblem", "U_V_empirical", "U_V_monte_carlo",
           "U_V_population", "make_problem", "Readouts", "read_all", "GDTrace", "gradient_descent", "DrawSlope",
           "draw_slope", "local_slopes", "BulkEdges", "Timescales", "numerical_edges", "predicted_edges",
           "predicted_timescales", "tau_gen_bulk", "StudyResult", "TheoryConfig", "run_study"]
