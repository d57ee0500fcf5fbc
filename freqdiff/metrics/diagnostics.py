"""Spectral diagnostics: in which radial frequency bands a model's noise prediction copies the training set.

On noisy held-out images x_t = A x_0 + S eps (x_0 never trained on), at the levels of a few OU times, each radial
band of three errors is measured (mean power per Fourier coefficient, the units
of a per-pixel MSE, so a white error is flat across bands):
- model_vs_memorizer: eps_hat against the training set's empirical optimal eps (baselines.optimal_score),
  the exact memorizer; it falls towards 0 in the bands the model has memorized.
- model_vs_eps: eps_hat against the true eps of the held-out image: the test denoising loss per band. It equals
  the band's error to the population-optimal eps plus an irreducible floor that no model changes (the
  unitary FFT keeps the bias-variance split per frequency), so its changes across checkpoints are the model's.
  The optimal score of the held-out set is not used as the reference: on its own noisy images it is a
  memorizer of them, which copies the very x_0 it is asked about rather than estimating the population score.
- memorizer_vs_eps: the same for the memorizer, a model-independent scale: model_vs_memorizer well below it
  means the model is closer to the memorizer than the memorizer is to the truth in that band.
For a process with one noise scale per example (DDPM) the score error is the eps error / sigma^2, the same for every
band, so eps is enough; processes shaped per frequency weight the bands of the score differently.
"""
from __future__ import annotations

import os
from typing import Any, Sequence

import torch
from torch import Tensor, nn

from freqdiff.core.figures import save_figure
from freqdiff.core.registry import check_choice
from freqdiff.core.spectral import band_edges, radial_band_power
from freqdiff.models.optimal_score import in_basis, optimal_x0
from freqdiff.process import DiffusionProcess

DEFAULT_OU_TIMES = (0.01, 0.1, 1.0)  # t = 0.01 is the paper's fixed-t loss (DDPM step ~40)
METRICS = ("model_vs_memorizer", "model_vs_eps", "memorizer_vs_eps")


def band_power_sum(error: Tensor, bands: int | Sequence[float]) -> Tensor:
    """Sum over images of the channel-mean band power of `error` (B, C, H, W): shape (K,)."""
    return radial_band_power(error, bands).mean(1).sum(0)


def level_band_errors(model: nn.Module, process: DiffusionProcess, train_basis: Tensor, heldout: Tensor,
                      level: Tensor, bands: int | Sequence[float], generator: torch.Generator, batch_size: int,
                      chunk_size: int) -> dict[str, Tensor]:
    """Mean band power (K,) of each error in METRICS on held-out images noised to `level`."""
    device = generator.device
    totals = {metric: torch.zeros(len(band_edges(bands)) - 1, device=device) for metric in METRICS}
    for x0 in heldout.split(batch_size):
        x0 = x0.to(device)
        at = process.full(level, len(x0))
        eps = torch.randn(x0.shape, generator=generator, device=device)
        x_t = process.add_noise(x0, at, eps)
        eps_hat = process.eps_from_output(x_t, at, model(x_t, at))
        eps_memorizer = process.eps_from_x0(x_t, at, optimal_x0(x_t, at, process, train_basis, chunk_size))
        totals["model_vs_memorizer"] += band_power_sum(eps_hat - eps_memorizer, bands)
        totals["model_vs_eps"] += band_power_sum(eps_hat - eps, bands)
        totals["memorizer_vs_eps"] += band_power_sum(eps_memorizer - eps, bands)
    return {metric: total / len(heldout) for metric, total in totals.items()}


@torch.no_grad()
def band_errors(model: nn.Module, process: DiffusionProcess, train: Tensor, heldout: Tensor,
                ou_times: Sequence[float] = DEFAULT_OU_TIMES, bands: int | Sequence[float] = 8,
                seed: int = 0, batch_size: int = 256, chunk_size: int = 4096) -> list[dict[str, Any]]:
    """Tidy rows (one per OU time and band) of the METRICS errors; the same noise at every call with one seed.

    The model is evaluated in eval mode on the process's device; train and heldout are (n, C, H, W) in the
    model's pixel space. Add a 'tau' key to each row to log it per checkpoint.
    """
    device = process.device
    edges = band_edges(bands).tolist()
    train_basis = in_basis(process, train.to(device))
    was_training = model.training
    model.eval()
    rows = []
    for i, ou_time in enumerate(ou_times):
        level = process.level_at_ou_time(ou_time)
        generator = torch.Generator(device=device).manual_seed(seed * 1_000_003 + i)
        errors = level_band_errors(model, process, train_basis, heldout, level, bands, generator, batch_size,
                                   chunk_size)
        for k in range(len(edges) - 1):
            rows.append({"level": float(level), "ou_time": float(process.ou_time(level.reshape(1))), "band": k,
                         "f_low": edges[k], "f_high": edges[k + 1],
                         **{metric: float(errors[metric][k]) for metric in METRICS}})
    model.train(was_training)
    return rows


def plot_band_errors(rows: Sequence[dict[str, Any]], path: str | os.PathLike[str],
                     metric: str = "model_vs_memorizer") -> None:
    """Band error against training step tau (log-log), one panel per diffusion level and one line per band."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    check_choice(metric, METRICS, "plot_band_errors.metric")
    levels = sorted({row["level"] for row in rows}, reverse=True)
    bands = sorted({(row["band"], row["f_low"], row["f_high"]) for row in rows})
    fig, axes = plt.subplots(1, len(levels), figsize=(4.2 * len(levels), 3.4), squeeze=False, sharey=True)
    for ax, level in zip(axes[0], levels):
        for band, f_low, f_high in bands:
            points = sorted((row["tau"], row[metric]) for row in rows if row["level"] == level and row["band"] == band)
            ax.plot(*zip(*points), marker="o", markersize=3, color=plt.cm.viridis(band / max(len(bands) - 1, 1)),
                    label=f"|f| {f_low:.2f}-{f_high:.2f}")
        ou_time = next(row["ou_time"] for row in rows if row["level"] == level)
        ax.set(xscale="log", yscale="log", xlabel="training step tau", title=f"level {level:g} (OU t={ou_time:.3g})")
    axes[0][0].set_ylabel(f"{metric} (mean power per coefficient)")
    axes[0][-1].legend(fontsize=7, title="radial band (cycles/px)", title_fontsize=7)
    save_figure(fig, path)
