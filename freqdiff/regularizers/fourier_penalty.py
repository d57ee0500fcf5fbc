"""`fourier_penalty`: the process's loss + weight * the mean-square of a prediction above a radial frequency.

The penalty is the high-passed prediction's energy divided by the number of values C*H*W, i.e. the per-pixel
mean square of its part above `cutoff`, quadratic in the output. Its units are the prediction's (eps for
target=eps, the score's, pixels for target=x0) whatever the process: for an eps-predicting process (DDPM,
equal_snr, blurring) target=eps is in the loss's units, for EDM and VE the loss is on the preconditioned output F
and eps_hat is derived from it, so a weight is not comparable across processes. A ratio to the
prediction's total energy was not used: it can be lowered by inflating the low band, and it is blind to a
per-example scale, which would make target=score the same as target=eps.
For DDPM, score = -eps_hat / sqrt(1 - alphabar), so target=score is target=eps weighted by 1/(1 - alphabar)
in time, which stresses the small-noise end (use a small weight). target=x0 pulls the high band of eps_hat
towards highpass(x_t) / sqrt(1 - alphabar), i.e. towards samples without high frequencies; its gradient grows
like 1/alphabar at the large-noise end, so bound it with t_max.
"""
from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor

from freqdiff.core.registry import param
from freqdiff.core.spectral import energy_above
from freqdiff.process.context import BuildContext
from freqdiff.process.loss import DenoisingTerms
from freqdiff.regularizers import REGULARIZERS
from freqdiff.regularizers.base import OUWindow, Regularizer, WindowedPenalty

TARGETS = ("eps", "score", "x0")


@dataclass(frozen=True)
class FourierPenaltyParams:
    weight: float = param(1.0, ge=0)  # a negative weight would reward what it should penalize
    cutoff: float = param(0.25, gt=0)  # radial frequency in cycles/pixel (axis Nyquist 0.5, corner 0.707)
    target: str = param("eps", choices=TARGETS)  # which prediction is penalized
    t_min: float = param(0.0, ge=0)  # OU time range where the penalty applies (small t resolves high frequencies)
    t_max: float | None = param(None, ge=0)  # None: no upper bound


def prediction(terms: DenoisingTerms, target: str) -> Tensor:
    """The network's eps_hat, its implied score, or its denoised estimate x0_hat."""
    return getattr(terms, {"eps": "eps_hat", "score": "score", "x0": "x0_hat"}[target])


def truth(terms: DenoisingTerms, target: str) -> Tensor:
    """What `prediction(terms, target)` estimates: eps, the score of q(x_t | x_0), or x0."""
    return getattr(terms, {"eps": "eps", "score": "true_score", "x0": "x0"}[target])


def high_band_mean_square(x: Tensor, cutoff: float) -> Tensor:
    """Energy above `cutoff` per value of x (B, C, H, W): sum_{|f| > cutoff} |F x|^2 / (C H W), shape (B,)."""
    return energy_above(x, cutoff) / x[0].numel()


class FourierPenalty(WindowedPenalty):
    """The process's loss plus weight * the high-band mean square of one prediction, inside an OU-time window."""

    name = "fourier_penalty"

    def __init__(self, params: FourierPenaltyParams) -> None:
        super().__init__(params.weight, OUWindow(params.t_min, params.t_max))
        self.params = params

    def penalty(self, terms: DenoisingTerms) -> Tensor:
        return high_band_mean_square(prediction(terms, self.params.target), self.params.cutoff)


@REGULARIZERS.register("fourier_penalty", FourierPenaltyParams)
def fourier_penalty(params: FourierPenaltyParams, context: BuildContext) -> Regularizer:
    """Loss + weight * per-pixel energy of the eps/score/x0 prediction above a radial cutoff, in an OU-time range."""
    return FourierPenalty(params)
