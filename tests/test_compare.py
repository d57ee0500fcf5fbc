"""`freqdiff compare` over hand-made recipes: generation and quality first, then factors, outputs, bad input.

Every run's curves have a known window: the FD approaches its plateau (test_window's shape) so that it comes
within its error of it at TAU_GEN at every n, and copies are drawn from a logistic onset in log-step that
reaches q = 0.01 at a chosen tau_mem, counted over many samples. Runs of two recipes at the same (n, seed)
share the FD noise and the draws of the copies, as runs from one training seed would: their tau_gen agree.
"""
from __future__ import annotations

import csv
import io
import json
import math

import numpy as np
import pytest
from test_window import BETA, ERR, A, L, copy_fraction, inside, metrics, use_test_gate

import freqdiff.analysis.reading.pooling as pooling
from freqdiff.analysis.inference.aft import aft_factor
from freqdiff.analysis.inference.permutation import permutation_test
from freqdiff.analysis.reading.comparison import compare
from freqdiff.analysis.reading.onsets import tau_of
from freqdiff.analysis.reading.window import read_window
from freqdiff.analysis.reports.compare import compare_main, render
from freqdiff.analysis.reports.comparison_figure import comparison_figure
from freqdiff.core.io import write_csv, write_json
from freqdiff.core.registry import FreqdiffError


@pytest.fixture(autouse=True)
def gate_lookup(monkeypatch):
    """Every run here has the hand-set gate of its digits_cnn features; lenet runs have none."""
    use_test_gate(monkeypatch)


_WINDOWS: dict = {}


@pytest.fixture(autouse=True)
def read_each_curve_once(monkeypatch, gate_lookup):
    """Read a run's window once per identical metrics table, n and options (read_window is deterministic: its
    bootstrap is seeded), so the recipes that many tests rebuild are not refitted each time (about 1 s a run).
    Every test that uses it looks the gate up with use_test_gate, so the gate needs no place in the key."""
    def cached(curves, n=None, **options):
        key = (curves.step.tobytes(), tuple((c, v.tobytes()) for c, v in sorted(curves.values.items())),
               curves.extractor, curves.absent, n, tuple(sorted(options.items())))
        if key not in _WINDOWS:
            _WINDOWS[key] = read_window(curves, n=n, **options)
        return _WINDOWS[key]

    monkeypatch.setattr(pooling, "read_window", cached)


STEPS = [int(s) for s in np.unique(np.round(np.geomspace(50, 25600, 16)))]  # 50 .. 25600, about 1.5 apart
TAU_GEN = 400.0  # the FD comes within its 2-sigma error ERR of its plateau L here, at every n
COPY_SLOPE, SAMPLES = 4.0, 100_000  # copy curves steep in log-step, counted over many samples: tau_mem to ~1%


def config(n, seed, regularizer="none", params=None, **data):
    """A config.json as a sweep writes it."""
    return {"dataset": {"name": "digits", "params": {"resize": 8}}, "process": {"name": "ddpm", "params": {}},
            "model": {"name": "unet", "params": {"width": 8}},
            "regularizer": {"name": regularizer, "params": params or {}}, "sampler": {"name": "ddim", "params": {}},
            "data": {"n": n, "test_size": 256, "subset": "nested", "subset_index": 0, "data_seed": 0,
                     "center": True, **data},
            "train": {"steps": STEPS[-1], "seed": seed}, "eval": {"k": 1 / 3}}


def fd_approach(tau_gen=TAU_GEN, level=L, seed=0, noise=0.05):
    """FD(s) = level + A / (1 + (s/s_c)^BETA) with s_c set so that FD - level = ERR at tau_gen, plus small noise."""
    s_c = tau_gen / (A / ERR - 1) ** (1 / BETA)
    steps = np.asarray(STEPS, float)
    return level + A / (1 + (steps / s_c) ** BETA) + np.random.default_rng(seed).normal(0, noise, len(steps))


def make_run(run_dir, cfg, onset, tau_gen=TAU_GEN, fd_level=L, recall=0.8, coverage=0.8, file="metrics.csv",
             **quality):
    """metrics.csv (or `file`: refine/metrics.csv) whose FD reaches its plateau `fd_level` at `tau_gen` and whose copy
    fraction reaches q at step `onset` (tau_mem; never when None), with recall and coverage (± 0.02) at every
    checkpoint beside the FD and recognizable, for the quality equivalence test. The noise is drawn from the run's
    (n, seed)."""
    write_json(run_dir / "config.json", cfg)
    (run_dir / file).parent.mkdir(exist_ok=True)
    draw = 1000 * cfg["data"]["n"] + cfg["train"]["seed"]
    copies = [0.0] * len(STEPS) if onset is None else copy_fraction(onset, STEPS, COPY_SLOPE, draw, SAMPLES)
    rows = metrics(STEPS, fd_approach(tau_gen, fd_level, draw), copies, samples=SAMPLES, **quality)
    for row in rows:
        row.update(recall=str(recall), recall_err="0.02", coverage=str(coverage), coverage_err="0.02")
    write_csv(run_dir / file, rows, list(rows[0]))


def onset_of(base, n, seed, spread=0.5):
    """The tau_mem make_recipe gives (n, seed): base * n/16 * (1 + seed * spread)."""
    return base * n / 16 * (1 + seed * spread)


def make_recipe(root, base, regularizer="none", params=None, seeds=(0, 1), censor=(), data=None, spread=0.5,
                **run):
    """Runs at n = 16, 64: copies from onset_of(base, n, seed) on; (n, seed) in `censor` never copies."""
    for n in (16, 64):
        for seed in seeds:
            onset = None if (n, seed) in censor else onset_of(base, n, seed, spread)
            make_run(root / f"n{n:05d}-seed{seed}", config(n, seed, regularizer, params, **(data or {})), onset,
                     **run)
    return root


@pytest.fixture
def two(tmp_path):
    """Reference 'plain' (tau_mem = 1000 n/16) and 'wide' (2000 n/16, n=64 seed 1 never copies)."""
    plain = make_recipe(tmp_path / "plain", 1000)
    wide = make_recipe(tmp_path / "wide", 2000, "fourier_penalty", {"weight": 0.1}, censor={(64, 1)})
    return plain, wide


def test_table_values_and_censoring(two):
    c = compare(two)
    plain, wide = c.recipes
    assert c.reference == "plain" and wide.regularizer == "fourier_penalty(weight=0.1)"
    row = plain.rows[0]
    windows = plain.at(16)
    assert row.group.n == 16 and row.group.tau_gen.count == 2 and row.group.tau_gen.bound == ""
    assert abs(row.group.tau_gen.mean / TAU_GEN - 1) < 0.15  # the FD's own tau_gen, not a checkpoint
    assert all(abs(w.tau_gen.estimate / TAU_GEN - 1) < 0.15 and inside(w.tau_gen, TAU_GEN, slack=0.05)
               for w in windows)
    assert row.group.tau_mem.bound == "" and (row.group.tau_mem.low, row.group.tau_mem.high) == pytest.approx(
        (onset_of(1000, 16, 0), onset_of(1000, 16, 1)), rel=0.03)
    # width and ratio: the seeds' tau_mem - tau_gen and tau_mem / tau_gen, near the truth
    assert row.width.mean == pytest.approx(np.mean([w.tau_mem_earlier.step - w.tau_gen.step for w in windows]))
    assert row.width.mean == pytest.approx(1250 - TAU_GEN, rel=0.1) and row.ratio.mean == pytest.approx(
        1250 / TAU_GEN, rel=0.15)
    # quality at tau_gen: on the FD's plateau; the 2-sigma error of the mean over the 4 folds (fid_err / sqrt(4)),
    # over 2 seeds
    fd, recognizable = row.at_gen["fid"], row.at_gen["recognizable"]
    assert L - 0.2 <= fd.value <= L + ERR + 0.2 and fd.err >= math.hypot(ERR / 2, ERR / 2) / 2 - 1e-9
    assert str(recognizable) == "0.95 ± 0.0071" and set(row.at_gen) >= {"fid", "recognizable", "recall", "coverage"}
    censored = wide.rows[1]  # seed 1 never copies: tau_mem >= the lower end its counts allow, past the last step
    mem = censored.group.tau_mem
    assert censored.group.n == 64 and censored.group.censored == 1 and mem.bound == ">="
    assert mem.low == pytest.approx(onset_of(2000, 64, 0), rel=0.03) and mem.high >= STEPS[-1]
    assert str(mem).startswith(">= ") and str(censored.width).startswith(">= ")
    text = render(c)
    assert (f"| wide (fourier_penalty(weight=0.1)) | 64 | 2 | 2 of 2 | {censored.group.tau_gen} | >= "
            f"{mem.mean:.0f} ± ") in text
    assert f"FD (digits_cnn features) {fd}; recognizable 0.95 ± 0.0071" in text
    assert "digits_cnn features: recognizable - recognizable_err >= 0.8" in text
    assert plain.fit.slope == pytest.approx(1.0, abs=0.03) and wide.fit_runs == 3


def ends(recipe, n):
    """Per seed (by seed id) at n: (tau_gen, tau_mem) as the comparison reads them (estimate or checkpoint)."""
    runs = sorted((r for r in recipe.runs if r.window.n == n), key=lambda r: str(r.seed))
    return [(tau_of(r.window.tau_gen).point, tau_of(r.window.tau_mem_earlier).point) for r in runs]


def brackets(recipe, n):
    """Per seed: tau_mem as the interval-censored (low, high) the AFT model gets."""
    return [(t.low, t.high) for t in (tau_of(w.tau_mem_earlier) for w in recipe.at(n))]


def paired_t(a, r, t):
    """exp of the mean paired difference of logs a - r and of its 95% t-interval (t: Student's quantile)."""
    d = [x - y for x, y in zip(a, r)]
    mean = sum(d) / len(d)
    half = t * math.sqrt(sum((x - mean) ** 2 for x in d) / (len(d) - 1)) / math.sqrt(len(d))
    return math.exp(mean), (math.exp(mean - half), math.exp(mean + half))


def test_width_factor_interval_and_verdict_at_matched_quality(two):
    c = compare(two)
    plain, wide = c.recipes
    (v,) = c.versus
    assert [m.status for m in v.matches] == ["matched", "matched"]
    for n, width, absolute, mem in zip((16, 64), v.width, v.absolute_width, v.tau_mem):
        a, r = ends(wide, n), ends(plain, n)
        # primary: the scale-free width, paired by seed: t-interval on the per-seed log(tau_mem/tau_gen) differences
        estimate, interval = paired_t([math.log(m / g) for g, m in a], [math.log(m / g) for g, m in r], 12.7062)
        assert width.estimate == pytest.approx(estimate) and width.log_difference == pytest.approx(math.log(estimate))
        if width.interval is None:  # tau_mem is read on a log grid: equal per-seed ratios leave no spread
            assert "zero spread" in width.note and width.bound == ""
        else:
            assert [end is None for end in width.interval] == [width.bound == "<=", width.bound == ">="]
            assert all(end is None or end == pytest.approx(t, rel=1e-4) for end, t in zip(width.interval, interval))
        assert width.method == "95% paired t-interval on per-seed differences of log(tau_mem/tau_gen), 2 vs 2 seeds"
        # second: the absolute width tau_mem - tau_gen, the same way
        estimate, _ = paired_t([math.log(m - g) for g, m in a], [math.log(m - g) for g, m in r], 12.7062)
        assert absolute.estimate == pytest.approx(estimate) and absolute.bound == width.bound
        # tau_mem: the interval-censored AFT factor, the exact permutation p beside it
        assert mem.estimate == pytest.approx(aft_factor(brackets(wide, n), brackets(plain, n)).estimate)
        assert mem.p == pytest.approx(permutation_test(brackets(wide, n), brackets(plain, n)).p)
        assert "interval-censored log-normal AFT (lifelines)" in mem.method and "2 vs 2 seeds" in mem.method
    # the truth at n = 16: each seed's tau_mem doubled, its tau_gen the same, so both factors are 2
    assert v.width[0].estimate == pytest.approx(2, rel=0.05) and v.tau_mem[0].estimate == pytest.approx(2, rel=0.05)
    n64 = v.width[1]  # wide's seed 1 never copies: its width is a lower bound, so is the factor
    assert n64.bound == ">=" and n64.interval[1] is None and "wide's width is a lower bound (tau_mem censored)" in n64.note
    assert v.pooled_width is None  # per-n intervals exist: no fallback
    basis = next(f for f in reversed(v.width) if f.interval)
    low, high = basis.interval
    clear = (low or 0) > 1 or (high or math.inf) < 1
    claim = "widens the window" if clear else "does not clearly change the window"
    assert v.verdict.startswith(f"wide {claim} against plain: tau_mem/tau_gen (scale-free width) "
                                f"{basis.bound + ' ' if basis.bound else ''}{basis.estimate:.3g} times the reference's "
                                f"at n = {basis.n} (log(tau_mem/tau_gen) {basis.log_difference:+.3g}")
    assert (f"(95% paired t-interval on per-seed differences of log(tau_mem/tau_gen), 2 vs 2 seeds [{low:.3g}, "
            f"{'∞)' if high is None else f'{high:.3g}]'}, {'excludes' if clear else 'includes'} 1") in v.verdict
    assert f"exact permutation p = {basis.p:.3g} (two-sided, Gehan score, all 6 relabelings of 2 vs 2 seeds" in v.verdict
    assert f"Absolute width (tau_mem - tau_gen): {basis.bound} " in v.verdict and "bootstrap" not in v.verdict
    assert "At matched quality at n = 16, 64 (equivalence test at tau_gen on FD (digits_cnn features)" in v.verdict


def test_a_clear_width_factor_names_its_method_and_seeds(tmp_path):
    """Three seeds, four times the reference's copy onset with some scatter: the window is clearly wider."""
    plain = make_recipe(tmp_path / "plain", 1000, seeds=(0, 1, 2))
    wide = make_recipe(tmp_path / "wide", 4000, "fourier_penalty", {"weight": 0.1}, seeds=(0, 1, 2), spread=0.25)
    c = compare([plain, wide])
    (v,) = c.versus
    n16 = v.width[0]
    a, r = ends(c.recipes[1], 16), ends(c.recipes[0], 16)
    estimate, interval = paired_t([math.log(m / g) for g, m in a], [math.log(m / g) for g, m in r], 4.30265)
    assert n16.estimate == pytest.approx(estimate) and n16.interval == pytest.approx(interval, rel=1e-4)
    truth = (4000 / 1000 * 5000 / 1500 * 6000 / 2000) ** (1 / 3)  # per-seed tau_mem ratios; tau_gen cancels
    assert n16.estimate == pytest.approx(truth, rel=0.05) and n16.interval[0] < truth < n16.interval[1]
    assert n16.interval[0] > 1 and "3 vs 3 seeds" in n16.method and n16.p == pytest.approx(0.1)  # 3 vs 3: p >= 0.1
    basis = next(f for f in reversed(v.width) if f.interval)
    assert v.verdict.startswith(f"wide widens the window against plain: tau_mem/tau_gen (scale-free width) "
                                f"{basis.bound + ' ' if basis.bound else ''}{basis.estimate:.3g} times the reference's "
                                f"at n = {basis.n}")
    assert "(95% paired t-interval on per-seed differences of log(tau_mem/tau_gen), 3 vs 3 seeds [" in v.verdict
    assert ("excludes 1" in v.verdict and "exact permutation p = 0.1 (two-sided, Gehan score, all 20 relabelings of "
            "3 vs 3 seeds; smallest attainable p 0.1)") in v.verdict
    assert v.tau_mem[0].interval[0] > 1 and "3 vs 3 seeds" in v.tau_mem[0].method  # tau_mem clearly later too


def test_a_closed_window_in_one_seed_has_a_scale_free_width_but_no_absolute_one(two, tmp_path):
    plain, _ = two
    early = tmp_path / "early"
    for n in (16, 64):
        for seed, onset in ((0, TAU_GEN / 4), (1, 1000 * n / 16)):  # seed 0 copies before the FD's plateau
            make_run(early / f"n{n:05d}-seed{seed}", config(n, seed, "fourier_penalty", {"weight": 3.0}), onset)
    c = compare([plain, early])
    (v,) = c.versus
    assert [w.state for w in c.recipes[1].at(16)] == ["closed", "open"]
    free, absolute = v.width[-1], v.absolute_width[-1]
    logs = {r.label: [math.log(tau_of(w.tau_mem_earlier).point / tau_of(w.tau_gen).point) for w in r.at(64)]
            for r in c.recipes}
    assert free.estimate == pytest.approx(math.exp(np.mean(logs["early"]) - np.mean(logs["plain"])), rel=1e-6)
    assert free.estimate < 1 and "paired t-interval" in free.method and "2 vs 2 seeds" in free.method
    assert absolute.estimate is None and "window is closed" in absolute.note
    basis = v.tau_mem[-1]  # n = 64: early's tau_mem (100, 4000) against plain's (4000, 6000), geometric means
    assert basis.estimate == pytest.approx(math.sqrt(TAU_GEN / 4 * 4000 / (4000 * 6000)), rel=0.05)
    assert basis.interval[0] < 1 < basis.interval[1]  # two seeds this far apart: no clear change
    assert "interval-censored log-normal AFT (lifelines)" in basis.method and "At matched quality" in v.verdict


def test_different_seed_sets_are_named_in_the_verdict(tmp_path):
    plain = make_recipe(tmp_path / "plain", 1000)
    more = make_recipe(tmp_path / "more", 2000, "fourier_penalty", {"weight": 0.1}, seeds=(0, 1, 2))
    (v,) = compare([plain, more]).versus
    assert v.verdict.endswith("Caution: different seeds (n = 16: seeds 0, 1, 2 against 0, 1; n = 64: seeds 0, 1, 2 "
                              "against 0, 1); compare over the same seeds to separate the recipe from the seeds.")
    (same,) = compare([plain, make_recipe(tmp_path / "same", 2000, "fourier_penalty", {"weight": 0.1})]).versus
    assert "Caution" not in same.verdict


def test_a_strength_study_dir_is_read_as_one_recipe_per_strength(two, tmp_path):
    plain, _ = two
    study = tmp_path / "study"
    make_recipe(study / "weight-0", 1000, "fourier_penalty", {"weight": 0.0})
    make_recipe(study / "weight-1", 2000, "fourier_penalty", {"weight": 1.0})
    c = compare([plain, study])
    assert [r.label for r in c.recipes] == ["plain", "weight-0", "weight-1"]
    assert c.versus[1].verdict.startswith("weight-1 widens the window against plain")


def refine_at(root, n, seeds=(0, 1), later=2.0, **run):
    """RUN/refine/metrics.csv for root's runs at n: the same FD, copies from `later` x the run's onset on."""
    for seed in seeds:
        cfg = json.loads((root / f"n{n:05d}-seed{seed}" / "config.json").read_text())
        make_run(root / f"n{n:05d}-seed{seed}", cfg, later * onset_of(1000, n, seed), file="refine/metrics.csv", **run)


def test_windows_read_refined_curves_and_a_factor_reads_both_sides_alike(two):
    plain, wide = two
    before = [f.estimate for f in compare([plain, wide]).versus[0].tau_mem]
    refine_at(plain, 64)
    refine_at(plain, 16, seeds=(0,))
    mixed = compare([plain, wide])
    tau_mem = {(r.window.n, r.seed): r.window.tau_mem_earlier for r in mixed.recipes[0].runs}
    assert inside(tau_mem[(64, 0)], 2 * onset_of(1000, 64, 0), 0.05)  # every plain run at 64 refined: its windows
    assert inside(tau_mem[(16, 0)], onset_of(1000, 16, 0), 0.05)  # only seed 0 at 16: each run's own curve
    assert mixed.refined == (("plain", (64,), (16,)), ("wide", (), ()))
    (v,) = mixed.versus
    assert [f.estimate for f in v.tau_mem] == before and v.refined == ()  # wide is not refined: plain's own curve
    assert "plain at n = 64" in render(mixed) and "refined curves on both sides" not in v.verdict
    labels = comparison_figure(mixed).axes[0].get_legend_handles_labels()[1]
    assert "plain: seeds (refined at n = 64)" in labels and "wide: seeds" in labels
    refine_at(wide, 64, later=4.0)
    (both,) = compare([plain, wide]).versus
    assert both.refined == (64,) and both.verdict.endswith("Read off refined curves on both sides at n = 64.")
    factor = {f.n: f for f in both.tau_mem}
    assert factor[64].bound == "" and abs(factor[64].estimate / 2 - 1) < 0.1  # 4x / 2x the own onset, both exact
    assert factor[16].estimate == before[0]  # n = 16: plain's seed 1 and wide are not refined


def test_reference_flag_reverses_direction(two):
    (v,) = compare(two, reference="wide").versus
    (back,) = compare(two).versus
    assert v.width[1].bound == "<=" and v.width[1].interval[0] is None
    assert v.absolute_width[1].bound == "<=" and v.absolute_width[1].interval[0] is None
    assert v.width[1].estimate == pytest.approx(1 / back.width[1].estimate)
    assert v.verdict.startswith(("plain narrows the window against wide: tau_mem/tau_gen (scale-free width) <= ",
                                 "plain does not clearly change the window against wide: tau_mem/tau_gen "
                                 "(scale-free width) <= "))
    assert "Absolute width (tau_mem - tau_gen): <= " in v.verdict


def test_noise_recipe_reads_no_generation_never_wider(tmp_path):
    """Samples that never pass the gate: a late (censored) tau_mem must not read as a wider window."""
    plain = make_recipe(tmp_path / "plain", 1000)
    noise = make_recipe(tmp_path / "noise", 1000, censor={(16, 0), (16, 1), (64, 0), (64, 1)},
                        fd_level=L - 1, recognizable=0.2)
    (v,) = compare([plain, noise]).versus
    assert [m.status for m in v.matches] == ["no generation", "no generation"]
    assert all(f.estimate is None for f in (*v.width, *v.tau_mem)) and v.pooled_width is v.pooled_tau_mem is None
    assert v.verdict.startswith("noise against plain: no window factor. n = 16, 64: no generation in 2 of 2 seeds")
    assert "widen" not in v.verdict and "wider" not in v.verdict
    text = render(compare([plain, noise]))
    assert "| noise (none) | 16 | 2 | 0 of 2 |" in text
    (back,) = compare([noise, plain]).versus
    assert back.matches[0].status == "reference does not generate" and back.width[0].estimate is None


def test_lower_quality_is_named_and_gets_no_factor(tmp_path):
    plain = make_recipe(tmp_path / "plain", 1000)
    faint = make_recipe(tmp_path / "faint", 2000, recognizable=0.88)
    (v,) = compare([plain, faint]).versus
    assert [m.status for m in v.matches] == ["lower quality", "lower quality"] and v.width[0].estimate is None
    assert ("generation at lower quality (recipe - reference ± the half-width of its 90% interval, against the "
            "calibrated margin): worse on recognizable (digits_cnn) (-0.07 ± 0.0082, margin 0.0755; 0.88 ± 0.0071 vs "
            "0.95 ± 0.0071)") in v.verdict
    blurry = make_recipe(tmp_path / "blurry", 2000, fd_level=L + 10)  # the same approach to a plateau 10 higher
    (v,) = compare([plain, blurry]).versus
    assert [m.status for m in v.matches] == ["lower quality", "lower quality"]
    fd = next(q for q in v.matches[0].measures if q.measure == "fid")
    assert fd.side == "worse" and fd.difference == pytest.approx(10, abs=1) and fd.half_width < 1
    assert ("generation at lower quality (recipe - reference ± the half-width of its 90% interval, against the "
            f"calibrated margin): worse on FD (digits_cnn features) ({fd.difference:+.3g} ± {fd.half_width:.2g}, "
            f"margin 2.52; lower is better; {fd.mine} vs {fd.ref})") in v.verdict
    assert "widen" not in v.verdict


def test_better_quality_still_compares(tmp_path):
    plain = make_recipe(tmp_path / "plain", 1000, recognizable=0.85)
    sharp = make_recipe(tmp_path / "sharp", 2000)
    (v,) = compare([plain, sharp]).versus
    assert [m.status for m in v.matches] == ["better quality", "better quality"]
    assert v.verdict.startswith("sharp widens") and "At better quality at n = 16, 64" in v.verdict
    assert {q.side for m in v.matches for q in m.measures} == {"better", "matched"}


def test_without_a_gate_compare_refuses_to_judge(tmp_path):
    plain = make_recipe(tmp_path / "plain", 1000, extractor="lenet")
    late = make_recipe(tmp_path / "late", 4000, extractor="lenet")
    (v,) = compare([plain, late]).versus
    assert v.verdict == ("late against plain: no window factor. n = 16, 64: no quality gate for lenet: "
                         "cannot judge generation.")
    assert all(f.estimate is None for f in v.width)
    assert "lenet features: no calibrated quality gate" in render(compare([plain, late]))


def test_bound_notes_name_the_end_that_is_bounded(tmp_path):
    # the reference's FD comes within its error of its plateau just before the first checkpoint (tau_gen <=, width
    # >=); the recipe's tau_mem is censored (width >=)
    plain = make_recipe(tmp_path / "plain", 1000, seeds=(0,), tau_gen=0.8 * STEPS[0])
    wide = make_recipe(tmp_path / "wide", 2000, seeds=(0,), censor={(16, 0), (64, 0)})
    c = compare([plain, wide])
    (v,) = c.versus
    assert [str(w.tau_gen) for w in c.recipes[0].at(16)] == [f"<= {STEPS[0]}"]
    assert [m.status for m in v.matches] == ["matched", "matched"]
    assert v.width[0].estimate is None and "censored in both" not in v.width[0].note
    assert v.width[0].note == ("undefined: the bounds leave no direction: wide's width is a lower bound "
                               "(tau_mem censored); plain's width is a lower bound (tau_gen at the first checkpoint)")


def test_one_seed_falls_back_to_pooled_t_interval(tmp_path):
    plain, wide = tmp_path / "plain", tmp_path / "wide"
    for n, (mine, ref) in {16: (3000, 1000), 64: (8000, 4000)}.items():  # tau_mem/tau_gen factors about 3 and 2
        make_run(plain / f"n{n}", config(n, 0), ref)
        make_run(wide / f"n{n}", config(n, 0), mine)
    c = compare([plain, wide])
    (v,) = c.versus
    assert all(f.interval is None and "one seed" in f.note for f in (*v.width, *v.absolute_width))
    factors = [(m / g) / (m0 / g0) for n in (16, 64) for (g, m), (g0, m0) in [(ends(c.recipes[1], n)[0],
                                                                                  ends(c.recipes[0], n)[0])]]
    assert [f.estimate for f in v.width] == pytest.approx(factors) and factors == pytest.approx([3, 2], rel=0.05)
    pooled = v.pooled_width
    assert pooled.estimate == pytest.approx(math.sqrt(factors[0] * factors[1]))
    logs = [math.log(f) for f in factors]
    half = 12.7062 * abs(logs[0] - logs[1]) / math.sqrt(2) / math.sqrt(2)  # t(0.975, 1) * sd / sqrt(2)
    low, high = math.exp(sum(logs) / 2 - half), math.exp(sum(logs) / 2 + half)
    assert pooled.interval == pytest.approx((low, high), rel=1e-4)
    assert (f"geometric mean over n = 16, 64 (95% t-interval of the mean log-factor over 2 n (assumes the factor does "
            f"not depend on n), 1 vs 1 seeds at each n [{low:.3g}, {high:.3g}], "
            f"{'excludes' if low > 1 or high < 1 else 'includes'} 1)") in v.verdict


def test_single_seed_single_n_interval_undefined(tmp_path):
    plain, wide = tmp_path / "plain", tmp_path / "wide"
    make_run(plain / "r", config(16, 0), 1000)
    make_run(wide / "r", config(16, 0), 3000)
    (v,) = compare([plain, wide]).versus
    assert v.pooled_width.estimate is None and "need 2" in v.pooled_width.note
    assert "no confidence can be given" in v.verdict


def test_cli_text_csv_json_and_overwrite(two, tmp_path, capsys):
    out = tmp_path / "cmp"
    assert compare_main([str(d) for d in two] + ["--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "## Verdict" in text and "overwrote" not in text
    assert (out / "comparison.png").read_bytes()[:4] == b"\x89PNG" and (out / "report.md").is_file()
    assert compare_main([str(d) for d in two] + ["--out", str(out), "--format", "csv"]) == 0
    captured = capsys.readouterr()
    rows = list(csv.DictReader(io.StringIO(captured.out)))
    assert "overwrote the earlier comparison" in captured.err
    factor = next(r for r in rows if r["kind"] == "factor" and r["n"] == "16" and r["quantity"] == "width_factor")
    c = compare(two)
    (v,) = c.versus
    assert float(factor["value"]) == pytest.approx(v.width[0].estimate, rel=1e-3)  # the scale-free width
    assert factor["method"] == "95% paired t-interval on per-seed differences of log(tau_mem/tau_gen), 2 vs 2 seeds"
    window = next(r for r in rows if r["kind"] == "window" and r["recipe"] == "wide" and r["n"] == "64"
                  and r["quantity"] == "tau_mem")
    assert window["bound"] == ">=" and float(window["max"]) >= STEPS[-1]  # the never-copying seed: past the last step
    match = next(r for r in rows if r["kind"] == "match" and r["n"] == "16" and r["quantity"] == "fid_at_tau_gen_difference")
    # the same FD curves at each (n, seed): no difference; err: the combined 2-sigma error of the difference of
    # the two recipes' seed means, each at least the fold means' sqrt(2 (ERR/2)^2) / 2
    plain, wide = (r.row(16).at_gen["fid"] for r in c.recipes)
    assert match["flag"] == "matched" and float(match["value"]) == 0
    err = float(match["err"])
    assert err == pytest.approx(math.hypot(plain.err, wide.err)) and err >= ERR / 2 - 1e-9
    assert compare_main([str(d) for d in two] + ["--out", str(out), "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["reference"] == "plain" and data["versus"][0]["width"][1]["bound"] == ">="
    assert data["recipes"][1]["rows"][1]["group"]["censored"] == 1
    assert data["recipes"][0]["gate"]["threshold"] == 0.8
    with pytest.raises(FreqdiffError, match="not from a comparison of these DIRs"):
        compare_main([str(two[0]), "--out", str(out)])


def test_bad_input(two, tmp_path):
    plain, wide = two
    with pytest.raises(FreqdiffError, match="no such directory"):
        compare([plain, tmp_path / "missing"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(FreqdiffError, match="empty: holds no runs"):
        compare([plain, tmp_path / "empty"])
    other = make_recipe(tmp_path / "other", 1000, data={"test_size": 512})
    with pytest.raises(FreqdiffError, match=r"different data.*differ in data.test_size \(256 vs 512\)"):
        compare([plain, other])
    make_run(wide / "extra", config(256, 0, "fourier_penalty", {"weight": 0.1}, center=False), 4000)
    with pytest.raises(FreqdiffError, match=r"wide: runs made on different data.*extra and .*data.center \(False"):
        compare([wide])
    mixed = tmp_path / "mixed"
    make_run(mixed / "a", config(16, 0), 1000)
    make_run(mixed / "b", config(16, 1, "fourier_penalty"), 1000)
    with pytest.raises(FreqdiffError, match="several recipes.*regularizer.name"):
        compare([mixed])
    with pytest.raises(FreqdiffError, match="unknown --reference 'nope'; choices: plain"):
        compare([plain], reference="nope")
    with pytest.raises(FreqdiffError, match="given twice"):
        compare([plain, plain])
    with pytest.raises(FreqdiffError, match="--format"):
        compare_main([str(plain), "--format", "xml"])
    with pytest.raises(FreqdiffError, match="unknown parameter 'bogus'"):
        compare([plain], bogus="1")


def test_different_x0_clipping_is_named_in_the_verdict(two, tmp_path):
    """A recipe sampled with x0 clipping against one without: the verdict says the factors mix the two."""
    plain, _ = two
    clipped = tmp_path / "clipped"
    for n in (16, 64):
        for seed in (0, 1):
            cfg = config(n, seed, "fourier_penalty", {"weight": 0.1})
            cfg["sampler"] = {"name": "ddim", "params": {"clip_x0": True}}
            make_run(clipped / f"n{n:05d}-seed{seed}", cfg, onset_of(2000, n, seed, 0.5))
    (v,) = compare([plain, clipped]).versus
    assert "Caution: sampled differently (clipped: ddim, x0 clipped; plain: ddim, x0 not clipped)" in v.verdict
    (same,) = compare(two).versus
    assert "sampled differently" not in same.verdict


def test_the_width_panel_draws_a_mean_only_where_every_seed_has_an_exact_width():
    from types import SimpleNamespace

    from matplotlib.figure import Figure

    from freqdiff.analysis.reports.comparison_figure import _draw_width

    def recipe(ratios):
        runs = [SimpleNamespace(window=SimpleNamespace(n=n, ratio=r, bound=b)) for n, r, b in ratios]
        return SimpleNamespace(label="r", runs=runs, at=lambda n: [x.window for x in runs if x.window.n == n])

    exact = [(64, 3.0, ""), (64, 4.0, ""), (128, 5.0, ""), (128, 6.0, "")]
    for ratios, means in ((exact, 2), (exact + [(128, None, "")], 1), (exact + [(64, 2.0, ">=")], 1)):
        ax = Figure().subplots()
        _draw_width(ax, recipe(ratios), "C0", 1.0)
        drawn = [c for c in ax.containers]  # one errorbar container: the means joined across n
        assert len(drawn) == 1 and len(drawn[0].lines[0].get_xdata()) == means
