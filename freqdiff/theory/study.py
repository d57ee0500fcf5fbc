"""The RF-model study behind `freqdiff theory` and recipes/random_features.py.

Two models, each over (psi_p, t, psi_n) and several independent draws of W and the data:
  equivalent  the Gaussian-equivalent model Theorem 3.2 describes, solved in n + d dimensions (equivalent.py), so
              psi_p in the hundreds or thousands costs what psi_p = 2 costs: the theorem's regime psi_p >> psi_n >> 1;
  exact       the RF model itself, noise expectation done exactly (Mehler), O(p^3) per setting: modest psi_p only.
For each setting: the closed-form losses on a log grid of tau, the spectrum (compute.py), and the readouts
(readouts.py); at one exact setting also gradient descent. Each setting is saved under OUT/settings/ as soon as it is
done, so an interrupted study resumes; a saved setting made with other parameters is an error unless --overwrite true.

This module runs the study; its settings are config.py's TheoryConfig, its results results.py's Setting and
StudyResult, which tables.py, plots.py and report.py read.
"""
from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Callable

import numpy as np
from threadpoolctl import threadpool_limits

from freqdiff.core.io import write_csv, write_json, write_text
from freqdiff.theory.compute import (EquivalentDraw, Raw, Where, load_raw, run_equivalent, run_exact, save_raw,
                                     setting_path)
from freqdiff.theory.config import MODELS, TheoryConfig
from freqdiff.theory.constants import ge_constants
from freqdiff.theory.readouts import read_all
from freqdiff.theory.report import markdown
from freqdiff.theory.results import Setting, StudyResult
from freqdiff.theory.spectrum import numerical_edges, predicted_edges, predicted_timescales
from freqdiff.theory.tables import CSV_COLUMNS, analyze, csv_rows

Array = np.ndarray


def make_setting(cfg: TheoryConfig, where: Where, raw: Raw) -> Setting:
    """A Setting from its raw results: predicted and numerical edges, predicted timescales, readouts."""
    model, psi_p, t, psi_n, draw = where
    c = ge_constants(t, float(np.mean(cfg.Sigma_levels)), cfg.sigma)
    predicted = predicted_edges(c, psi_p, psi_n)
    return Setting(model=model, psi_p=psi_p, t=t, psi_n=psi_n, draw=draw, d=cfg.d, n=raw.n, p=raw.p,
                   eigenvalues=raw.eigenvalues, weights=raw.weights, curves=raw.curves,
                   readouts=read_all(raw.curves, raw.eigenvalues, raw.n, cfg.d, raw.p, c.Delta_t, cfg.level(t)),
                   predicted=predicted, numerical=numerical_edges(raw.eigenvalues, raw.n, cfg.d),
                   tau_predicted=predicted_timescales(c, predicted, psi_p, psi_n), seconds=raw.seconds,
                   gd=raw.gd, gd_closed_form=raw.gd_closed_form)


def run_model(cfg: TheoryConfig, model: str, log: Callable[[str], object]) -> list[Setting]:
    """Every setting of one model over its draws, computed or loaded."""
    out, settings = Path(cfg.out), []
    population: dict[tuple[float, float, int], tuple[Array, Array]] = {}
    for draw in range(cfg.draw_count(model)):
        sample: EquivalentDraw | None = None
        for psi_p, t, psi_n in cfg.grid(model):
            where = (model, psi_p, t, psi_n, draw)
            key, path = cfg.setting_key(*where), setting_path(out, where)
            raw = load_raw(cfg, path, key)
            if raw is None:
                if model == "equivalent":
                    sample = sample or EquivalentDraw.make(cfg, draw)
                    raw = run_equivalent(cfg, psi_p, t, psi_n, sample)
                else:
                    raw = run_exact(cfg, psi_p, t, psi_n, draw, population)
                save_raw(path, key, raw)
                log(f"theory: {model} psi_p={psi_p:g} t={t:g} psi_n={psi_n:g} draw {draw}: {raw.seconds:.1f} s")
            settings.append(make_setting(cfg, where, raw))
        population.clear()
    return settings


def run_study(cfg: TheoryConfig, log: Callable[[str], object] = print) -> StudyResult:
    """Run (or resume) every setting, then write summary.json, summary.csv, the figures and report.md."""
    from freqdiff.theory.plots import write_figures  # matplotlib is imported only when figures are written

    cfg.validate()
    start = time.time()
    with threadpool_limits(limits=cfg.threads, user_api="blas"):
        settings = [s for model in MODELS for s in run_model(cfg, model, log)]
    sigma_x2 = float(np.mean(cfg.Sigma_levels))
    result = StudyResult(config=cfg, settings=settings,
                         constants={t: ge_constants(t, sigma_x2, cfg.sigma) for t in cfg.t})
    analysis = analyze(result)
    result.seconds = time.time() - start
    out = Path(cfg.out)
    write_json(out / "config.json", dataclasses.asdict(cfg))
    write_json(out / "summary.json", {"constants": {f"t={t:g}": c.to_dict() for t, c in result.constants.items()},
                                      "slopes": analysis.slopes_json(),
                                      "gd": [s.summary() for s in settings if s.gd is not None],
                                      "compute_seconds": round(sum(s.seconds for s in settings), 1),
                                      "seconds_this_run": round(result.seconds, 1)})
    write_csv(out / "summary.csv", csv_rows(result), CSV_COLUMNS)
    write_figures(result, analysis, out)
    write_text(out / "report.md", markdown(result, analysis))
    return result
