"""What the RF study holds once computed: one Setting per (model, psi_p, t, psi_n, draw), and the StudyResult
that tables.py, plots.py and report.py read.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from freqdiff.theory.config import TheoryConfig
from freqdiff.theory.constants import GEConstants
from freqdiff.theory.dynamics import LossCurves
from freqdiff.theory.readouts import Readouts
from freqdiff.theory.simulate import GDTrace
from freqdiff.theory.spectrum import BulkEdges, Timescales, group_shares

Array = np.ndarray


@dataclass
class Setting:
    """Everything computed at one (model, psi_p, t, psi_n, draw)."""

    model: str
    psi_p: float
    t: float
    psi_n: float
    draw: int
    d: int
    n: int
    p: int
    eigenvalues: Array  # U's eigenvalues (equivalent model: the n + d above s_t^2; the rest carry no weight)
    weights: Array  # |V^T q_k|^2 per mode
    curves: LossCurves
    readouts: Readouts
    predicted: BulkEdges
    numerical: BulkEdges
    tau_predicted: Timescales
    seconds: float
    gd: GDTrace | None = None
    gd_closed_form: LossCurves | None = None

    def summary(self) -> dict[str, Any]:
        """The numbers of this setting as JSON values."""
        out = {"model": self.model, "psi_p": self.psi_p, "t": self.t, "psi_n": self.psi_n, "draw": self.draw,
               "d": self.d, "n": self.n, "p": self.p, "seconds": round(self.seconds, 2),
               "readouts": self.readouts.to_dict(), "tau_predicted": dataclasses.asdict(self.tau_predicted),
               "edges_predicted": self.predicted.to_dict(), "edges_numerical": self.numerical.to_dict(),
               "train_drop_share": group_shares(self.eigenvalues, self.weights, self.n, self.d)}
        if self.gd is not None and self.gd_closed_form is not None:
            out["gd"] = gd_agreement(self.gd, self.gd_closed_form)
        return out


def gd_agreement(gd: GDTrace, closed: LossCurves) -> dict[str, float]:
    """Largest gaps between GD and the closed form over the checkpoints (tau > 0), in percent.

    Losses: relative to the closed form. E_score: relative to E_score(0) (it passes near 0, where a relative gap
    means little).
    """
    def worst(a: Array, b: Array, scale: Array | float) -> float:
        return float(100 * np.max(np.abs(a[1:] - b[1:]) / np.abs(scale)))

    return {"step_tau": gd.step_tau, "steps": int(round(gd.tau[-1] / gd.step_tau)), "tau_end": float(gd.tau[-1]),
            "L_train_max_rel_pct": worst(gd.L_train, closed.L_train, closed.L_train[1:]),
            "L_test_max_rel_pct": worst(gd.L_test, closed.L_test, closed.L_test[1:]),
            "E_score_max_gap_pct_of_initial": worst(gd.E_score, closed.E_score, closed.E_score[0])}


@dataclass
class StudyResult:
    """All settings of a study with the constants per t."""

    config: TheoryConfig
    settings: list[Setting]
    constants: dict[float, GEConstants] = field(default_factory=dict)
    seconds: float = 0.0

    def select(self, model: str, psi_p: float | None = None, t: float | None = None,
               draw: int | None = None) -> list[Setting]:
        """Settings of one model, optionally of one psi_p, t and draw, sorted by (psi_p, t, draw, psi_n)."""
        chosen = [s for s in self.settings if s.model == model and psi_p in (None, s.psi_p) and t in (None, s.t)
                  and draw in (None, s.draw)]
        return sorted(chosen, key=lambda s: (s.psi_p, s.t, s.draw, s.psi_n))
