"""Full-batch gradient descent on the RF model with fresh noise each step: the check of the closed form.

Each step draws one noise vector per training point, forms x_t = e^{-t} x + sqrt(Delta_t) xi and takes a
gradient step on that one-draw loss, as the paper's public script does. The step advances the paper's time
tau by `step_tau` (learning rate d^2 step_tau on L_train). The losses of the current A are measured exactly:
L_train = L(A; U, V) and L_test = L(A; U~, V~), so the only difference from the closed form is the
dynamics (discrete steps and gradient noise).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from freqdiff.theory.constants import activation
from freqdiff.theory.dynamics import denoising_loss, rate, score_error
from freqdiff.theory.features import RFProblem

Array = np.ndarray


@dataclass(frozen=True)
class GDTrace:
    """Exact losses of the GD iterate at the checkpoint times tau."""

    tau: Array
    L_train: Array
    L_test: Array
    E_score: Array
    step_tau: float


def gd_step_tau(eigenvalues: Array, Delta_t: float, psi_p: float, fraction: float) -> float:
    """Step in tau: `fraction` of 1 / (c lambda_max), the fastest mode's time (2 is the stability limit)."""
    return fraction / (rate(Delta_t, psi_p) * float(np.max(eigenvalues)))


def checkpoint_steps(steps: int, count: int) -> Array:
    """About `count` log-spaced step numbers in 1..steps, always including `steps`."""
    return np.unique(np.round(np.geomspace(1, steps, count)).astype(int))


def gradient_descent(problem: RFProblem, U: Array, V: Array, U_pop: Array, V_pop: Array,
                     step_tau: float, steps: int, checkpoints: int, seed: int) -> GDTrace:
    """Run `steps` GD steps from A = 0, recording the exact losses at ~`checkpoints` log-spaced steps."""
    rng = np.random.default_rng(seed)
    f = activation(problem.sigma)[0]
    d, p, n, Delta = problem.d, problem.p, problem.n, problem.Delta_t
    W = problem.W / math.sqrt(d)
    signal = math.exp(-problem.t) * problem.X @ W.T  # n x p, fixed
    A = np.zeros((d, p))
    lr = d**2 * step_tau
    record = set(checkpoint_steps(steps, checkpoints).tolist())
    tau, train, test = [0.0], [1.0], [1.0]
    for step in range(1, steps + 1):
        xi = rng.standard_normal((n, d))
        features = f(signal + math.sqrt(Delta) * xi @ W.T)  # n x p
        residual = math.sqrt(Delta / p) * features @ A.T + xi  # sqrt(Delta_t) s_A(x_t) + xi
        A -= lr * (2.0 * math.sqrt(Delta / p) / (d * n)) * (residual.T @ features)
        if step in record:
            tau.append(step * step_tau)
            train.append(denoising_loss(A, U, V, Delta))
            test.append(denoising_loss(A, U_pop, V_pop, Delta))
    test_arr = np.asarray(test)
    return GDTrace(tau=np.asarray(tau), L_train=np.asarray(train), L_test=test_arr,
                   E_score=score_error(test_arr, Delta, problem.Sigma_t()), step_tau=step_tau)
