"""What the report and summary files show, computed from a StudyResult: slopes over draws, phase cells, tables."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from freqdiff.theory.readouts import first_crossing
from freqdiff.theory.results import Setting, StudyResult
from freqdiff.theory.slopes import Cell, DrawSlope, draw_slope, local_slopes
from freqdiff.theory.spectrum import tau_from_lambda

# Every time whose growth with psi_n is measured; "theorem" is Theorem 3.2's psi_p / (Delta_t lambda_min).
READOUTS: dict[str, Callable[[Setting], float | None]] = {
    "theorem": lambda s: s.tau_predicted.tau_mem,
    "spectral": lambda s: s.readouts.spectral,
    "gap": lambda s: s.readouts.gap,
    "onset": lambda s: s.readouts.onset,
    "half": lambda s: s.readouts.half,
    "tau_gen": lambda s: s.readouts.tau_gen,
}
Family = tuple[str, float, float]  # (model, psi_p, t)


def families(result: StudyResult) -> list[Family]:
    """Every (model, psi_p, t) of the study, exact model last."""
    keys = {(s.model, s.psi_p, s.t) for s in result.settings}
    return sorted(keys, key=lambda k: (k[0] == "exact", k[1], k[2]))


def draw_matrix(rows: list[Setting], value: Callable[[Setting], float | None]) -> tuple[list[float], list[list]]:
    """psi_n values and value[k][i] for draw k at psi_n[i], from the settings of one family."""
    psi_n = sorted({s.psi_n for s in rows})
    draws = sorted({s.draw for s in rows})
    table = {(s.draw, s.psi_n): value(s) for s in rows}
    return psi_n, [[table.get((k, x)) for x in psi_n] for k in draws]


def geometric_mean(values: list[float | None]) -> float | None:
    """Geometric mean over draws, None if any draw did not reach the readout."""
    if not values or any(v is None or v <= 0 for v in values):
        return None
    return float(np.exp(np.mean(np.log(np.asarray(values, float)))))


@dataclass
class Analysis:
    """Slopes over the whole psi_n range and the local cells, per family and readout."""

    slopes: dict[tuple[Family, str], DrawSlope | None]
    cells: dict[tuple[Family, str], list[Cell]]

    def slopes_json(self) -> list[dict[str, Any]]:
        out = []
        for (family, name), law in self.slopes.items():
            model, psi_p, t = family
            cells = [{"psi_n": c.psi_n, "ratio": c.ratio, "slope": None if c.slope is None else c.slope.to_dict()}
                     for c in self.cells[(family, name)]]
            out.append({"model": model, "psi_p": psi_p, "t": t, "readout": name,
                        "slope": None if law is None else law.to_dict(), "cells": cells})
        return out


def analyze(result: StudyResult) -> Analysis:
    """Slopes of every readout against psi_n per family, over draws, and between neighbouring psi_n."""
    slopes, cells = {}, {}
    for family in families(result):
        rows = result.select(family[0], family[1], family[2])
        for name, value in READOUTS.items():
            psi_n, tau = draw_matrix(rows, value)
            slopes[(family, name)] = draw_slope(psi_n, tau)
            cells[(family, name)] = local_slopes(family[1], psi_n, tau)
    return Analysis(slopes=slopes, cells=cells)


def gap_slopes(result: StudyResult, family: Family, factors: tuple[float, ...]) -> dict[float, DrawSlope | None]:
    """Slope of the gap readout at `factors` times the configured level: how the readout depends on its level."""
    rows = result.select(*family)
    level = result.config.level(family[2])
    out = {}
    for f in factors:
        psi_n, tau = draw_matrix(rows, lambda s: first_crossing(s.curves.tau, s.curves.L_gen, f * level))
        out[f] = draw_slope(psi_n, tau)
    return out


def mean_readouts(rows: list[Setting]) -> dict[float, dict[str, float | None]]:
    """Per psi_n, the geometric mean over draws of every readout (and L_gen's final value)."""
    out: dict[float, dict[str, float | None]] = {}
    for psi_n in sorted({s.psi_n for s in rows}):
        at = [s for s in rows if s.psi_n == psi_n]
        out[psi_n] = {name: geometric_mean([value(s) for s in at]) for name, value in READOUTS.items()}
        out[psi_n]["L_gen_final"] = geometric_mean([s.readouts.L_gen_final for s in at])
        out[psi_n]["tau_test_min"] = geometric_mean([s.readouts.tau_test_min for s in at])
    return out


def tau_gen_rows(result: StudyResult, family: Family) -> list[dict[str, float | None]]:
    """tau_gen per psi_n, geometric means over draws: the former prediction, the same at the loss's constant, the
    numerical and predicted rho_2 bulk, and the measurement."""
    out = []
    c = result.constants[family[2]]
    for psi_n, at in _by_psi_n(result.select(*family)).items():
        edge = tau_from_lambda(at[0].predicted.rho_2[0], c.Delta_t, family[1])
        out.append({"psi_n": psi_n, "edge_paper_constant": edge, "edge_loss_90": edge * math.log(10) / 4,
                    "bulk_numerical": geometric_mean([s.readouts.tau_gen_bulk for s in at]),
                    "bulk_predicted": at[0].tau_predicted.tau_gen,
                    "measured": geometric_mean([s.readouts.tau_gen for s in at])})
    return out


def _by_psi_n(rows: list[Setting]) -> dict[float, list[Setting]]:
    out: dict[float, list[Setting]] = {}
    for s in rows:
        out.setdefault(s.psi_n, []).append(s)
    return dict(sorted(out.items()))


def edge_gaps(rows: list[Setting]) -> dict[float, dict[str, float]]:
    """Per psi_n, the mean relative gap (numerical / predicted - 1, %) of each bulk edge over draws."""
    out = {}
    for psi_n, at in _by_psi_n(rows).items():
        gaps = {}
        for group in ("rho_2", "rho_1", "rho_x"):
            for i, side in enumerate(("low", "high")):
                gaps[f"{group}_{side}"] = float(np.mean([100 * (getattr(s.numerical, group)[i]
                                                                / getattr(s.predicted, group)[i] - 1) for s in at]))
        out[psi_n] = gaps
    return out


EDGES = [f"{g}_{side}_{kind}" for g in ("rho_2", "rho_1", "rho_x") for side in ("low", "high")
         for kind in ("numerical", "predicted")]
CSV_COLUMNS = ["model", "psi_p", "t", "psi_n", "draw", "d", "n", "p", "theorem", "spectral", "gap", "onset", "half",
               "tau_gen", "tau_gen_bulk", "tau_gen_predicted", "tau_test_min", "L_gen_final", "E_score_min", *EDGES,
               "seconds"]


def csv_rows(result: StudyResult) -> list[dict[str, Any]]:
    """summary.csv: one row per setting and draw."""
    rows = []
    for s in result.settings:
        row: dict[str, Any] = {"model": s.model, "psi_p": s.psi_p, "t": s.t, "psi_n": s.psi_n, "draw": s.draw,
                               "d": s.d, "n": s.n, "p": s.p, "tau_gen_bulk": s.readouts.tau_gen_bulk,
                               "tau_gen_predicted": s.tau_predicted.tau_gen, "tau_test_min": s.readouts.tau_test_min,
                               "L_gen_final": s.readouts.L_gen_final, "E_score_min": s.readouts.E_score_min,
                               "seconds": round(s.seconds, 2)}
        for g in ("rho_2", "rho_1", "rho_x"):
            for i, side in enumerate(("low", "high")):
                row[f"{g}_{side}_numerical"] = getattr(s.numerical, g)[i]
                row[f"{g}_{side}_predicted"] = getattr(s.predicted, g)[i]
        row.update({name: value(s) for name, value in READOUTS.items()})
        rows.append(row)
    return rows
