"""The exactly solvable random-features model (freqdiff.theory): constants, U and V, closed form, spectrum, GD, CLI."""
from __future__ import annotations

import math

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from freqdiff.core.registry import FreqdiffError
from freqdiff.theory import constants, dynamics, equivalent, features, readouts, simulate, slopes, spectrum
from freqdiff.theory.cli import QUICK, main, options_help, parse
from freqdiff.theory.config import MODELS
from freqdiff.theory.study import run_model


@pytest.fixture(scope="module", autouse=True)
def one_blas_thread():
    """These matrices are small: threaded OpenBLAS only adds contention (eigh of 640 x 640 can take 100x longer)."""
    with threadpool_limits(limits=1, user_api="blas"):
        yield


@pytest.fixture(scope="module")
def small(one_blas_thread):
    """d = 20, psi_p = 8, psi_n = 4, t = 0.1: U, V, U~, V~ and U's modes."""
    problem = features.make_problem(20, 8, 4, 0.1, seed=0)
    U, V = features.U_V_empirical(problem)
    U_pop, V_pop = features.U_V_population(problem)
    return problem, U, V, U_pop, V_pop, dynamics.modes(U, V, U_pop, V_pop)


def test_constants_obey_stein_identities():
    for t in (0.01, 0.1, 1.0):
        c = constants.ge_constants(t)
        assert c.b_t == pytest.approx(math.sqrt(c.Delta_t) * c.a_t, rel=1e-9)
        assert c.mu_1 == pytest.approx(c.Gamma_t * c.a_t, rel=1e-9)
        assert c.v_t > 0 and c.s_t > 0
        # the four parts of a feature's variance add up to ||sigma||^2
        parts = (c.a_t * math.exp(-t)) ** 2 * c.sigma_x2 + c.v_t**2 + c.b_t**2 + c.s_t**2
        assert parts == pytest.approx(c.sigma_norm2, rel=1e-9)
    assert constants.ge_constants(0.01).v_t > constants.ge_constants(1.0).v_t  # data part fades with t


def test_U_V_match_monte_carlo_over_the_noise(small):
    problem, U, V, *_ = small
    U_mc, V_mc = features.U_V_monte_carlo(problem, draws=1500, seed=1)
    error = np.abs(U - U_mc).max()
    assert error < 6e-3  # Monte Carlo std ~ 1.5e-3
    assert np.abs(V - V_mc).max() < 2e-2
    assert np.allclose(U, U.T)
    # the noise correlations between features matter: keeping only the k = 0 Mehler term is visibly wrong
    s, _, m = features.noise_statistics(problem)
    F, _ = features.hermite_coefficients(m, s, 0, "tanh", 32)
    assert np.abs(F[0].T @ F[0] / problem.n - U_mc)[~np.eye(problem.p, dtype=bool)].max() > 3 * error


def test_population_matches_monte_carlo_over_data_and_noise(small):
    problem, _, _, U_pop, V_pop, _ = small
    rng = np.random.default_rng(3)
    count = 200_000
    x = rng.standard_normal((count, problem.d)) * np.sqrt(problem.Sigma)
    xi = rng.standard_normal((count, problem.d))
    f = np.tanh((math.exp(-problem.t) * x + math.sqrt(problem.Delta_t) * xi) @ problem.W.T / math.sqrt(problem.d))
    assert np.abs(U_pop - f.T @ f / count).max() < 6e-3
    assert np.abs(V_pop - f.T @ xi / count).max() < 6e-3


def test_population_approaches_the_papers_linearization_as_d_grows():
    c = constants.ge_constants(0.1)
    gaps = []
    for d in (10, 40):
        problem = features.make_problem(d, 8, 4, 0.1, seed=0)
        U_pop, V_pop = features.U_V_population(problem)
        U_lin = features.U_population_linear(problem, c.mu_1, c.Gamma_t, c.sigma_norm2)
        V_lin = features.V_population_linear(problem, c.mu_1, c.Gamma_t)
        gaps.append((np.linalg.norm(U_pop - U_lin) / np.linalg.norm(U_pop),
                     np.linalg.norm(V_pop - V_lin) / np.linalg.norm(V_pop)))
    assert gaps[1][0] < 0.7 * gaps[0][0] and gaps[1][1] < 0.7 * gaps[0][1]  # ~ 1/sqrt(d)
    assert max(gaps[1]) < 0.12


def test_paper_tau_mem_is_linear_in_psi_n_when_psi_p_dominates():
    c = constants.ge_constants(0.1)
    for psi_n in (10, 40):
        ratio = spectrum.tau_from_lambda(spectrum.lambda_min(c, 1e6, psi_n), c.Delta_t, 1e6) * c.Delta_t * c.v_t**2
        assert ratio / psi_n == pytest.approx(1, rel=0.02)  # tau_mem ~ psi_n / (Delta_t v_t^2)


def test_closed_form_solves_the_gradient_flow(small):
    problem, U, V, *_ = small
    rng = np.random.default_rng(0)
    lam_max = np.linalg.eigvalsh(U).max()
    for A0 in (None, 0.1 * rng.standard_normal((problem.d, problem.p))):
        A = np.zeros((problem.d, problem.p)) if A0 is None else A0.copy()
        T = 50.0
        steps = int(T * dynamics.rate(problem.Delta_t, problem.psi_p) * lam_max / 0.05) + 1
        h = T / steps
        for _ in range(steps):  # RK4
            k1 = dynamics.gradient_flow_rhs(A, U, V, problem.Delta_t)
            k2 = dynamics.gradient_flow_rhs(A + h / 2 * k1, U, V, problem.Delta_t)
            k3 = dynamics.gradient_flow_rhs(A + h / 2 * k2, U, V, problem.Delta_t)
            k4 = dynamics.gradient_flow_rhs(A + h * k3, U, V, problem.Delta_t)
            A = A + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
        closed = dynamics.A_closed_form(T, U, V, problem.Delta_t, A0)
        assert np.abs(A - closed).max() < 1e-8 * np.abs(closed).max()
    # and its tau -> infinity limit is the stationary point of the flow
    A_star = dynamics.A_star(U, V, problem.Delta_t)
    assert np.abs(dynamics.gradient_flow_rhs(A_star, U, V, problem.Delta_t)).max() < 1e-8


def test_mode_sums_equal_the_losses_of_A_tau(small):
    problem, U, V, U_pop, V_pop, m = small
    tau = np.array([0.0, 3.0, 300.0, 3e5])
    curves = dynamics.loss_curves(tau, m, problem.Delta_t, problem.Sigma_t())
    for i, s in enumerate(tau):
        A = dynamics.A_closed_form(s, U, V, problem.Delta_t)
        assert curves.L_train[i] == pytest.approx(dynamics.denoising_loss(A, U, V, problem.Delta_t), abs=1e-10)
        assert curves.L_test[i] == pytest.approx(dynamics.denoising_loss(A, U_pop, V_pop, problem.Delta_t), abs=1e-10)


def test_losses_start_at_one_and_train_falls_below_test(small):
    problem, *_, m = small
    tau = np.geomspace(1e-2, 1e8, 120)
    curves = dynamics.loss_curves(np.r_[0.0, tau], m, problem.Delta_t, problem.Sigma_t())
    assert curves.L_train[0] == curves.L_test[0] == 1.0
    assert curves.E_score[0] == pytest.approx(1.0)  # s_A = 0 against the score -x of N(0, I)
    assert np.all(np.diff(curves.L_train) <= 1e-12)  # gradient flow never raises the training loss
    assert curves.L_train[-1] < curves.L_test[-1] - 0.1  # memorization: train well below test
    assert curves.L_gen[-1] == pytest.approx(curves.L_gen[-2], rel=1e-6)  # plateau reached
    low = int(np.argmin(curves.E_score))
    assert 0 < low < len(tau) and curves.E_score[low] < 0.5 < curves.E_score[-1]  # generalize, then overfit


def test_score_error_is_the_mean_squared_gap_to_the_true_score(small):
    problem, U, V, *_ = small
    A = dynamics.A_closed_form(100.0, U, V, problem.Delta_t)
    L_test = dynamics.denoising_loss(A, *features.U_V_population(problem), problem.Delta_t)
    rng = np.random.default_rng(5)
    x_t = rng.standard_normal((200_000, problem.d)) * np.sqrt(problem.Sigma_t())
    s_A = np.tanh(x_t @ problem.W.T / math.sqrt(problem.d)) @ A.T / math.sqrt(problem.p)
    mc = np.mean(np.sum((s_A + x_t / problem.Sigma_t()) ** 2, axis=1)) / problem.d
    assert dynamics.score_error(L_test, problem.Delta_t, problem.Sigma_t()) == pytest.approx(mc, rel=0.02)


def test_gradient_descent_follows_the_closed_form(small):
    problem, U, V, U_pop, V_pop, m = small
    step = simulate.gd_step_tau(m.eigenvalues, problem.Delta_t, problem.psi_p, 0.25)
    trace = simulate.gradient_descent(problem, U, V, U_pop, V_pop, step, int(3000 / step), 20, seed=1)
    closed = dynamics.loss_curves(trace.tau, m, problem.Delta_t, problem.Sigma_t())
    assert trace.tau[-1] == pytest.approx(3000, rel=0.01)
    assert np.max(np.abs(trace.L_train / closed.L_train - 1)) < 0.03
    assert np.max(np.abs(trace.L_test / closed.L_test - 1)) < 0.03
    assert closed.L_train[-1] < 0.9  # the comparison covers a real fall of the loss


def test_numerical_edges_lie_near_the_predicted_ones():
    problem = features.make_problem(30, 32, 4, 0.1, seed=1)
    lam = np.linalg.eigvalsh(features.U_V_empirical(problem)[0])
    c = constants.ge_constants(0.1)
    predicted, numerical = spectrum.predicted_edges(c, 32, 4), spectrum.numerical_edges(lam, problem.n, problem.d)
    for group, tol in (("rho_2", 0.2), ("rho_1", 0.3), ("rho_x", 0.45)):
        assert np.allclose(getattr(numerical, group), getattr(predicted, group), rtol=tol), group
    # the groups are separated as predicted: rho_x < rho_1 < rho_2, and rho_1 is far from the psi_n = 1 edges
    assert numerical.rho_x[1] < numerical.rho_1[1] < numerical.rho_2[0]
    assert not np.allclose(numerical.rho_1, spectrum.rho_1_edges(c, 32, 1.5), rtol=0.3)


def test_tau_mem_grows_with_psi_n():
    measured, predicted = [], []
    c = constants.ge_constants(0.1)
    for psi_n in (2, 4, 8):
        problem = features.make_problem(20, 32, psi_n, 0.1, seed=0)
        U, V = features.U_V_empirical(problem)
        m = dynamics.modes(U, V, *features.U_V_population(problem))
        curves = dynamics.loss_curves(np.geomspace(1e-2, 1e8, 200), m, problem.Delta_t, problem.Sigma_t())
        measured.append(readouts.read_all(curves, m.eigenvalues, problem.n, 20, problem.p, problem.Delta_t, 0.5).half)
        edges = spectrum.predicted_edges(c, 32, psi_n)
        predicted.append(spectrum.predicted_timescales(c, edges, 32, psi_n).tau_mem)
    assert all(a < b for a, b in zip(measured, measured[1:])), measured
    assert all(a < b for a, b in zip(predicted, predicted[1:])), predicted


def test_mode_timescales_and_tau_from_lambda_agree():
    lam = np.array([0.1, 1.0, 10.0])
    assert np.allclose(dynamics.mode_timescales(lam, 0.2, 64), 64 / (2 * 0.2 * lam))
    assert spectrum.tau_from_lambda(0.1, 0.2, 64) == pytest.approx(3200)


def test_equivalent_model_in_n_plus_d_dimensions_equals_its_full_closed_form():
    rng = np.random.default_rng(0)
    c = constants.ge_constants(0.1)
    d, p, n = 12, 200, 48
    W, X, Omega = rng.standard_normal((p, d)), rng.standard_normal((n, d)), rng.standard_normal((p, n))
    Sigma = np.ones(d)
    full = dynamics.modes(*equivalent.equivalent_matrices(W, Omega, X, Sigma, c))
    Z = np.hstack([W, Omega])
    reduced = equivalent.equivalent_modes(Z.T @ Z, X, Sigma, c, p)
    assert reduced.eigenvalues.size == n + d < p
    tau = np.geomspace(1e-2, 1e8, 40)
    Sigma_t = math.exp(-0.2) * Sigma + c.Delta_t
    a, b = dynamics.loss_curves(tau, full, c.Delta_t, Sigma_t), dynamics.loss_curves(tau, reduced, c.Delta_t, Sigma_t)
    assert np.abs(a.L_train - b.L_train).max() < 1e-10 and np.abs(a.L_test - b.L_test).max() < 1e-10
    assert a.L_gen[-1] > 0.1  # the comparison covers memorization
    top = np.sort(full.eigenvalues)[::-1][:n + d]
    assert np.allclose(np.sort(reduced.eigenvalues)[::-1], top)  # the other p - n - d sit at s_t^2, weight 0
    assert np.allclose(np.sort(full.eigenvalues)[:p - n - d], c.s_t**2)


def test_wishart_draws_have_the_law_of_a_gram_matrix():
    rng = np.random.default_rng(1)
    for dof in (3, 12):  # below and above m: explicit Z^T Z, then Bartlett
        H = np.array([equivalent.wishart(4, dof, rng) for _ in range(6000)])
        assert np.allclose(H.mean(0), dof * np.eye(4), atol=0.12 * dof)
        assert H[:, 0, 0].var() == pytest.approx(2 * dof, rel=0.1)  # chi^2_dof
        assert H[:, 0, 1].var() == pytest.approx(dof, rel=0.1)
    grams = equivalent.gram_increments(5, [20, 8], rng)
    assert np.linalg.eigvalsh(grams[20] - grams[8]).min() > 0  # nested: more rows only add a Gram matrix


def test_equivalent_spectrum_matches_theorem_3_2_where_psi_p_dominates():
    rng = np.random.default_rng(2)
    c = constants.ge_constants(0.1)
    d, psi_p, psi_n = 60, 500, 4
    n, p = psi_n * d, psi_p * d
    m = equivalent.equivalent_modes(equivalent.wishart(d + n, p, rng), rng.standard_normal((n, d)), np.ones(d), c, p)
    numerical, predicted = spectrum.numerical_edges(m.eigenvalues, n, d), spectrum.predicted_edges(c, psi_p, psi_n)
    assert np.allclose(numerical.rho_1, predicted.rho_1, rtol=0.1)
    assert np.allclose(numerical.rho_2, predicted.rho_2, rtol=0.2)
    spectral = readouts.lambda_min_numerical(m.eigenvalues, n)
    assert spectral == numerical.rho_1[0]


def test_equivalent_model_memorizes_like_psi_n_only_where_psi_p_over_psi_n_beats_the_floor():
    rng = np.random.default_rng(6)
    d, psi_p, psi_n = 24, 2000, (8, 16, 32)
    n_max = psi_n[-1] * d
    X, H = rng.standard_normal((n_max, d)), equivalent.wishart(d + n_max, psi_p * d, rng)
    tau = np.geomspace(1e-2, 1e10, 241)
    for t, band in ((0.1, (0.9, 1.15)), (1.0, (0.0, 0.7))):  # s_t^2/v_t^2 = 1 at t = 0.1, 500 at t = 1
        c = constants.ge_constants(t)
        half, spectral = [], []
        for x in psi_n:
            n = x * d
            block = np.r_[0:d, d:d + n]
            m = equivalent.equivalent_modes(H[np.ix_(block, block)], X[:n], np.ones(d), c, psi_p * d)
            r = readouts.read_all(dynamics.loss_curves(tau, m, c.Delta_t, np.ones(d)), m.eigenvalues, n, d,
                                  psi_p * d, c.Delta_t, 0.1)
            half.append(r.half)
            spectral.append(r.spectral)
        for values in (half, spectral):
            law = slopes.draw_slope(psi_n, [values])
            assert band[0] < law.mean < band[1], (t, law.mean)


def test_readouts_of_a_curve_shifted_in_time_shift_with_it():
    """L_gen = L_inf / (1 + (tau_0/tau)^k): half = tau_0, onset = tau_0 e^{-2/k},
    gap = tau_0 (eps / (L_inf - eps))^{1/k}; so doubling tau_0 doubles every readout."""
    tau = np.geomspace(1e-2, 1e10, 4001)
    k, L_inf, eps = 1.5, 4.0, 0.3
    for tau_0 in (1e3, 4e3):
        L_gen = L_inf / (1 + (tau_0 / tau) ** k)
        curves = dynamics.LossCurves(tau=tau, L_train=1 - L_gen, L_test=np.ones_like(tau), L_gen=L_gen,
                                     E_score=np.ones_like(tau))
        r = readouts.read_all(curves, np.array([5.0, 4.0, 3.0, 0.1]), 3, 1, 10, 0.5, eps)
        assert r.half == pytest.approx(tau_0, rel=1e-3)
        assert r.onset == pytest.approx(tau_0 * math.exp(-2 / k), rel=1e-3)
        assert r.gap == pytest.approx(tau_0 * (eps / (L_inf - eps)) ** (1 / k), rel=1e-3)
        assert r.spectral == pytest.approx(10 / (0.5 * 3.0))  # psi_p / (Delta_t lambda), lambda the n-th largest


def _lossless_modes(lam: np.ndarray, d: int, p: int) -> dynamics.Modes:
    """Modes with U~ = U and V~ = V (no finite-n error) and equal loss weight |R_k|^2 / lambda_k = 1 per mode."""
    weights = lam.copy()
    return dynamics.Modes(eigenvalues=lam, weights=weights, M=np.diag(weights * lam), g=weights, d=d, p=p)


def test_tau_gen_prediction_matches_the_closed_form_and_the_former_one_does_not():
    Delta_t, d, p = 0.1813, 20, 1280
    rng = np.random.default_rng(3)
    for lam in (np.full(d, 12.0), rng.uniform(6.0, 50.0, d)):
        curves = dynamics.loss_curves(np.r_[0.0, np.geomspace(1e-2, 1e5, 2000)], _lossless_modes(lam, d, p), Delta_t,
                                      np.ones(d))
        assert np.allclose(curves.L_gen, 0, atol=1e-12)
        measured = readouts.tau_gen_measured(curves)
        predicted = spectrum.tau_gen_bulk(lam, Delta_t, p / d)
        assert measured == pytest.approx(predicted, rel=0.01)
        former = (p / d) / (Delta_t * lam.min())  # psi_p / (Delta_t lambda_2^-)
        assert former / measured > 1.7
    assert spectrum.tau_gen_bulk(np.array([12.0]), Delta_t, 64) == pytest.approx(math.log(10) * 64 / (4 * Delta_t * 12))


def test_predicted_rho_2_law_gives_the_numerical_tau_gen():
    c = constants.ge_constants(0.1)
    rng = np.random.default_rng(4)
    d, psi_p, psi_n = 60, 256, 8
    n, p = psi_n * d, psi_p * d
    m = equivalent.equivalent_modes(equivalent.wishart(d + n, p, rng), rng.standard_normal((n, d)), np.ones(d), c, p)
    top = np.sort(m.eigenvalues)[::-1][:d]
    numerical = spectrum.tau_gen_bulk(top, c.Delta_t, psi_p)
    predicted = spectrum.predicted_timescales(c, spectrum.predicted_edges(c, psi_p, psi_n), psi_p, psi_n).tau_gen
    assert predicted == pytest.approx(numerical, rel=0.05)


def test_the_t_interval_over_draws_covers_the_true_slope():
    rng = np.random.default_rng(5)
    psi_n = [2.0, 4.0, 8.0, 16.0]
    hits, widths = 0, []
    for _ in range(1000):  # 5 draws, each with its own slope and its own noise around the line
        slopes_k = 1.0 + 0.1 * rng.standard_normal(5)
        tau = [[10 * x**a * math.exp(0.05 * rng.standard_normal()) for x in psi_n] for a in slopes_k]
        s = slopes.draw_slope(psi_n, tau)
        hits += s.interval[0] <= 1.0 <= s.interval[1]
        widths.append(s.interval[1] - s.interval[0])
    assert 0.93 <= hits / 1000 <= 0.97
    assert 0.2 < np.mean(widths) < 0.35  # ~ 2 * 2.78 * 0.1 / sqrt(5)
    censored = slopes.draw_slope(psi_n, [[1, 2, 4, 8], [1, 2, None, 8], [1, 2.2, 4, 8]])
    assert censored.censored == 1 and len(censored.per_draw) == 2
    assert slopes.draw_slope(psi_n, [[1, 2, None, 8]]) is None
    assert slopes.verdict(censored) in {"~ psi_n", "undecided"}
    cells = slopes.local_slopes(64, psi_n, [[1, 2, 4, 8], [1, 2, 4, 8]])
    assert [c.ratio for c in cells] == [(32, 16), (16, 8), (8, 4)] and cells[0].slope.mean == pytest.approx(1)


def test_cli_parses_lists_quick_and_rejects_bad_flags():
    cfg = parse(["--psi_n", "4,8", "--t", "0.1", "--gap_level", "0.5", "--exact_t", "0.1", "--d", "24"])
    assert cfg.psi_n == (4.0, 8.0) and cfg.t == (0.1,) and cfg.d == 24
    quick = parse(["--quick", "--draws", "3"])
    assert quick.draws == 3 and quick.out == QUICK["out"] and quick.psi_p == (32.0, 1024.0)
    with pytest.raises(FreqdiffError, match="unknown parameter 'psin'"):
        parse(["--psin", "4"])
    with pytest.raises(FreqdiffError, match="expected int"):
        parse(["--d", "ten"])
    with pytest.raises(FreqdiffError, match="GD setting"):
        parse(["--exact_psi_n", "8", "--gd_psi_n", "4"])
    with pytest.raises(FreqdiffError, match="gap_level"):
        parse(["--gap_level", "1,2"])
    with pytest.raises(FreqdiffError, match="out of range"):
        parse(["--draws", "0"])
    text = options_help()
    assert "--quick" in text and "--exact_draws" in text and "independent draws" in text
    assert main(["--help"]) == 0


def test_study_writes_results_resumes_and_refuses_stale_settings(tmp_path):
    flags = ["--d", "10", "--psi_p", "6,50", "--psi_n", "2,3", "--t", "0.1", "--draws", "2", "--gap_level", "0.2",
             "--exact_psi_p", "6", "--exact_psi_n", "2,3", "--exact_t", "0.1", "--exact_draws", "2", "--gd_psi_n", "2",
             "--gd_tau_end", "200", "--tau_points", "60", "--out", str(tmp_path / "rf")]
    assert main(flags) == 0
    out = tmp_path / "rf"
    for name in ("report.md", "summary.json", "summary.csv", "config.json", "losses.png", "gen.png", "spectrum.png",
                 "tau_mem.png", "phase.png", "gd_check.png"):
        assert (out / name).stat().st_size > 0, name
    report = (out / "report.md").read_text()
    assert "theorem's regime" in report and "interval over draws" in report
    assert len(list((out / "settings").glob("*.npz"))) == 2 * 4 + 2 * 2  # equivalent: 2 draws x 4; exact: 2 x 2
    computed: list[str] = []
    loaded = {model: run_model(parse(flags), model, computed.append) for model in MODELS}
    assert computed == [] and len(loaded["exact"]) == 4  # a rerun loads every setting
    with pytest.raises(FreqdiffError, match="other parameters"):
        run_model(parse(flags[:-2] + ["--seed", "1", "--out", str(out)]), "equivalent", computed.append)
    again = run_model(parse(flags + ["--seed", "1", "--overwrite", "true"]), "exact", computed.append)
    assert len(computed) == len(again) == 4 and again[0].readouts != loaded["exact"][0].readouts
