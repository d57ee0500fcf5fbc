"""Window reading on synthetic curves with known ends: estimates and intervals, the gate, censoring, the state,
the sensitivity over gate levels and tolerances, window.json, refined rows and bad run directories."""
from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
from scipy.special import expit, logit

import freqdiff.analysis.reading.window as window_module
from freqdiff.analysis.reading.curves import METRICS_COLUMNS, load_run
from freqdiff.analysis.reading.scaling import group_windows, is_open
from freqdiff.analysis.reading.window import read_window
from freqdiff.analysis.reports.run import window_main
from freqdiff.core.io import write_csv, write_json
from freqdiff.core.registry import FreqdiffError
from freqdiff.metrics.quality import Gate

GATE = Gate("recognizable", 0.8, "digits_cnn", "hand-set for the tests")  # not the calibrated one: fixed numbers
STEPS = np.unique(np.round(np.geomspace(100, 12800, 16))).astype(int)
SAMPLES = 512
L, A, S_C, BETA, ERR = 20.0, 200.0, 150.0, 2.0, 1.0  # FD(s) = L + A / (1 + (s/S_C)^BETA)
TAU_GEN = S_C * (A / ERR - 1) ** (1 / BETA)  # FD - L = ERR (tol 1): about 2117
TAU_MEM = 5000.0


def fd_curve(steps=STEPS, noise=0.05, seed=0):
    """The FD's approach to its plateau L with small checkpoint-to-checkpoint noise."""
    steps = np.asarray(steps, float)
    return L + A / (1 + (steps / S_C) ** BETA) + np.random.default_rng(seed).normal(0, noise, len(steps))


def copy_fraction(tau=TAU_MEM, steps=STEPS, b=4.0, seed=0, samples=SAMPLES):
    """Copies among `samples` drawn from p(s) = sigmoid(b log(s/tau) + logit 0.01), as fractions."""
    p = expit(b * np.log(np.asarray(steps, float) / tau) + logit(0.01))
    return np.random.default_rng(seed).binomial(samples, p) / samples


def metrics(steps=STEPS, fid=None, fmem=None, robust=None, fid_err=ERR, recognizable=0.95, recognizable_err=0.02,
            extractor="digits_cnn", samples=SAMPLES):
    """Metrics rows as evaluate.py writes them (strings; '' = not computed)."""
    count = len(steps)
    fid = fd_curve(steps) if fid is None else fid
    fmem = copy_fraction(steps=steps) if fmem is None else fmem
    robust = fmem if robust is None else robust
    per_step = {c: list(v) if np.ndim(v) else [v] * count
                for c, v in (("fid", fid), ("fid_err", fid_err), ("recognizable", recognizable),
                             ("recognizable_err", recognizable_err), ("fmem", fmem), ("fmem_robust", robust))}
    rows = []
    for i, step in enumerate(steps):
        row = {c: "" for c in METRICS_COLUMNS}
        row.update({c: "" if v[i] is None else str(v[i]) for c, v in per_step.items()})
        row.update(step=str(step), loss_train="0.05", loss_test="0.06", extractor=extractor, n_samples=str(samples),
                   folds="4", fmem_low="0", fmem_high="1", fmem_robust_low="0", fmem_robust_high="1")
        rows.append(row)
    return rows


def use_test_gate(monkeypatch):
    """Make the calibrated gate lookup answer GATE for digits_cnn features and None for any other."""
    monkeypatch.setattr(window_module, "find_gate", lambda extractor: GATE if extractor == GATE.extractor else None)


@pytest.fixture
def gate_lookup(monkeypatch):
    """The hand-set gate for digits_cnn features, none for others."""
    use_test_gate(monkeypatch)


def inside(onset, truth, slack=0.0):
    return (onset.low is None or onset.low * (1 - slack) <= truth) and \
        (onset.high is None or truth <= onset.high * (1 + slack))


def test_clean_window_estimates_both_ends_with_intervals():
    w = read_window(metrics(), n=64, gate=GATE)
    assert abs(w.tau_gen.estimate / TAU_GEN - 1) < 0.15 and inside(w.tau_gen, TAU_GEN)
    assert abs(w.tau_mem.estimate / TAU_MEM - 1) < 0.15 and inside(w.tau_mem, TAU_MEM)
    assert w.tau_gen.low < w.tau_gen.estimate < w.tau_gen.high
    assert w.state == "open" and is_open(w) and w.bound == "" and w.width == w.tau_mem_earlier.step - w.tau_gen.step
    assert w.fd_plateau == pytest.approx(L, abs=0.5) and w.fid_err == pytest.approx(ERR)
    est, low, high = w.log_ratio
    assert low < est < high and est == pytest.approx(np.log(w.tau_mem_earlier.estimate / w.tau_gen.estimate))
    assert w.verdict.startswith("memorized: samples copy training images from step")
    assert "profile-likelihood" in w.tau_mem.how and "bootstrap" in w.tau_gen.how
    assert f"tau_gen {w.tau_gen.step} [" in w.summary() and "window open" in w.summary()


def test_never_memorizes_is_censored_and_generalized():
    w = read_window(metrics(fmem=[0.0] * len(STEPS)), n=64, gate=GATE)
    assert w.tau_mem.bound == ">=" and w.tau_mem.high is None and "censored" in w.tau_mem.how
    assert w.tau_mem.low > STEPS[-1] / 2 and w.bound == ">=" and w.state == "open"
    assert w.verdict.startswith(f"generalized: generates from tau_gen {w.tau_gen.step}; copying not established by")


def test_a_stray_copy_does_not_pin_tau_mem():
    fmem = np.zeros(len(STEPS))
    fmem[-1] = 1 / SAMPLES
    assert read_window(metrics(fmem=fmem), gate=GATE).tau_mem.bound == ">="


def test_copies_from_the_first_checkpoint_are_left_censored():
    w = read_window(metrics(fmem=[0.3] * len(STEPS)), gate=GATE)
    assert str(w.tau_mem) == f"<= {STEPS[0]}" and w.tau_mem.low is None
    assert w.state == "closed" and any(f.startswith("fmem_at_first_checkpoint") for f in w.flags)


def test_the_threshold_sets_the_estimand():
    early = read_window(metrics(), gate=GATE)
    late = read_window(metrics(), gate=GATE, threshold="0.05")
    assert late.tau_mem.estimate > 1.3 * early.tau_mem.estimate and late.rule["threshold"] == 0.05


def test_the_tolerance_sets_tau_gen():
    tight = read_window(metrics(), gate=GATE, tol="0.5")
    loose = read_window(metrics(), gate=GATE, tol="2")
    assert loose.tau_gen.estimate < tight.tau_gen.estimate
    assert inside(tight.tau_gen, S_C * (A / (0.5 * ERR) - 1) ** (1 / BETA), slack=0.05)


def test_the_quality_gate_is_a_precondition_not_the_definition():
    late_gate = [0.2] * 8 + [0.95] * (len(STEPS) - 8)
    w = read_window(metrics(recognizable=late_gate), gate=GATE)
    assert w.generation.generates and inside(w.tau_gen, TAU_GEN)  # tau_gen is the FD's, wherever the gate passes


def test_noise_never_passes_the_gate_no_generation():
    w = read_window(metrics(fmem=[0.0] * len(STEPS), recognizable=0.3), n=16, gate=GATE)
    assert w.generation.generates is False and w.verdict.startswith("no generation")
    assert (w.width, w.ratio, w.width_note, w.state) == (None, None, "no generation", "no generation")
    assert "no width (no generation)" in w.summary() and w.open_range == "open at no gate level and tolerance tried"


def test_the_gate_error_counts_against_passing():
    assert read_window(metrics(recognizable=0.85, recognizable_err=0.1), gate=GATE).generation.generates is False
    assert read_window(metrics(recognizable=0.85, recognizable_err=0.02), gate=GATE).generation.generates is True


def test_sensitivity_names_the_gate_levels_where_the_window_is_open():
    w = read_window(metrics(recognizable=0.52, recognizable_err=0.01), gate=GATE)
    states = {(r.gate_level, r.tol): r.state for r in w.sensitivity}
    assert {r.tol for r in w.sensitivity} == {0.5, 1.0, 2.0} and len(states) == 18
    assert all(states[(level, tol)] == "open" for level in (0.3, 0.45, 0.5) for tol in (1.0, 2.0))
    assert all(states[(level, tol)] == "no generation" for level in (0.55, 0.6, 0.8) for tol in (0.5, 1.0, 2.0))
    # tol 0.5 puts tau_gen at ~3000, and its interval reaches tau_mem's (5000): undecided, so not named
    assert states[(0.3, 0.5)] == "undecided"
    assert w.open_range == "open at tolerances 1, 2 wherever the gate passes"


def test_without_a_gate_generation_cannot_be_judged(gate_lookup):
    w = read_window(metrics(fmem=[0.0] * len(STEPS), extractor="lenet"))
    assert w.generation.gate is None and w.generation.generates is None
    assert w.verdict == "no quality gate for lenet: cannot judge generation"
    assert inside(w.tau_gen, TAU_GEN) and any(f.startswith("no_quality_gate") for f in w.flags)
    assert read_window(metrics(fmem=[0.0] * len(STEPS))).generation.gate == GATE  # looked up for digits_cnn


def test_old_metrics_without_the_gate_measure_cannot_judge_generation():
    rows = [{k: v for k, v in r.items() if not k.startswith(("recognizable", "fmem_robust", "fid_err"))}
            for r in metrics(fmem=[0.0] * len(STEPS))]
    w = read_window(rows, gate=GATE)
    assert w.generation.generates is None and "not in metrics.csv" in w.verdict
    assert w.tau_mem_robust.step is None and w.tau_mem_earlier == w.tau_mem
    assert "fid_err not computed" in w.tau_gen.how  # no FD error: the fit's residual noise stands in, and says so
    old = next(f for f in w.flags if f.startswith("old_metrics"))
    assert "fid_err" in old and "recognizable" in old and "fmem_robust_low" in old


def test_robust_copy_measure_sets_the_earlier_end():
    robust = copy_fraction(tau=2500.0)  # noisy copies: the paper's f_mem misses them
    w = read_window(metrics(fmem=[0.0] * len(STEPS), robust=robust), gate=GATE)
    assert w.tau_mem.bound == ">=" and inside(w.tau_mem_robust, 2500.0)
    assert w.tau_mem_earlier.step == w.tau_mem_robust.step and w.tau_mem_earlier.high == w.tau_mem_robust.high
    assert w.verdict.startswith("memorized") and "seen by f_mem robust to residual noise" in w.verdict


def test_missing_fid_and_sample_counts_are_flagged():
    w = read_window(metrics(fid=[None] * len(STEPS)), gate=GATE)
    assert w.tau_gen.step is None and w.width is None and inside(w.tau_mem, TAU_MEM)
    assert any(f.startswith("no_fid") for f in w.flags)
    rows = [{**r, "n_samples": ""} for r in metrics()]
    assert any(f.startswith("no_n_samples") for f in read_window(rows, gate=GATE).flags)


def test_too_few_checkpoints_for_a_plateau_fit():
    w = read_window(metrics(STEPS[:4], fd_curve(STEPS[:4]), [0.0] * 4), gate=GATE)
    assert w.tau_gen.step is None and any(f.startswith("too_few_checkpoints") for f in w.flags)


def test_fid_still_falling_is_right_censored_and_flagged():
    steep = L + A / (1 + (STEPS / 4000.0) ** 1.5)
    w = read_window(metrics(fid=steep), gate=GATE)
    assert w.tau_gen.bound == ">=" and w.tau_gen.high is None and w.width_note == "tau_gen not reached"
    assert any(f.startswith("fid_still_falling") for f in w.flags)


def test_mixed_extractors_and_bad_options_are_errors():
    rows = metrics()
    rows[0]["extractor"] = "inception"
    with pytest.raises(FreqdiffError, match="extractors"):
        read_window(rows, gate=GATE)
    with pytest.raises(FreqdiffError, match="tol"):
        read_window(metrics(), gate=GATE, tol="-1")
    with pytest.raises(FreqdiffError, match="criterion"):
        read_window(metrics(), gate=GATE, criterion="ci")  # the first-crossing rule is gone: an unknown option
    with pytest.raises(FreqdiffError, match="'sharpness' is not a metrics column"):
        read_window(metrics(), gate=Gate("sharpness", 0.5, "digits_cnn", "x"))


def test_columns_accepted():
    rows = metrics()
    columns = {c: [r[c] for r in rows] for c in rows[0]}
    assert read_window(columns, gate=GATE).tau_mem == read_window(rows, gate=GATE).tau_mem


def write_run(run_dir, rows, n=64):
    """A run directory holding config.json and metrics.csv."""
    write_json(run_dir / "config.json", {"data": {"n": n}, "train": {"seed": 0}, "regularizer": {"name": "none"}})
    write_csv(run_dir / "metrics.csv", rows, list(rows[0]))


def test_window_main_writes_json_with_intervals_and_the_gate(tmp_path, gate_lookup):
    write_run(tmp_path, metrics())
    w = window_main(tmp_path)
    saved = json.loads((tmp_path / "window.json").read_text())
    for end in ("tau_gen", "tau_mem", "tau_mem_robust", "tau_mem_earlier"):
        assert set(saved[end]) == {"step", "bound", "how", "estimate", "low", "high"}
    assert saved["tau_mem"]["low"] == pytest.approx(w.tau_mem.low) and saved["figures"]
    assert saved["state"] == "open" and len(saved["sensitivity"]) == 18 and saved["verdict"] == w.verdict
    assert saved["generation"]["gate"] == {"measure": "recognizable", "threshold": 0.8, "extractor": "digits_cnn",
                                           "source": "hand-set for the tests"}


def test_a_metrics_table_written_elsewhere_is_read_from_fractions_and_sample_counts(tmp_path, gate_lookup):
    """Only the documented columns: fmem, fmem_robust, their bounds, n_samples (values x n_samples = copies)."""
    rows = [{k: r[k] for k in ("step", "fid", "fid_err", "fmem", "fmem_low", "fmem_high", "fmem_robust",
                               "fmem_robust_low", "fmem_robust_high", "loss_train", "loss_test", "extractor",
                               "n_samples", "recognizable", "recognizable_err")} for r in metrics()]
    write_run(tmp_path, rows)
    assert inside(window_main(tmp_path).tau_mem, TAU_MEM)


def test_refined_rows_replace_the_runs_and_tau_gen_reads_one_sample_count(tmp_path, gate_lookup):
    write_run(tmp_path, metrics())
    dense = np.unique(np.round(np.geomspace(3000, 8000, 9))).astype(int)
    refined_steps = np.union1d(STEPS, dense)
    write_csv(tmp_path / "refine" / "metrics.csv",
              rows := metrics(refined_steps, fd_curve(refined_steps, seed=1) - 0.3, copy_fraction(steps=refined_steps, samples=2048),
                              samples=2048), list(rows[0]))
    _, curves = load_run(tmp_path)
    assert set(curves.step) == set(refined_steps) and set(curves["n_samples"]) == {2048.0}
    refined, plain = window_main(tmp_path), read_window(metrics(), gate=GATE)
    width = lambda o: np.log(o.high / o.low)  # noqa: E731
    assert inside(refined.tau_mem, TAU_MEM) and width(refined.tau_mem) < width(plain.tau_mem)
    mixed = metrics() + [r for r in rows if int(r["step"]) in set(dense) - set(STEPS)]
    assert read_window(mixed, gate=GATE).tau_gen == plain.tau_gen  # the last row is the run's: its 512-sample FDs


def test_a_refined_curve_keeps_the_runs_tolerance_so_more_samples_read_the_same_tau_gen(tmp_path, gate_lookup):
    """The FD re-measured with 4x the samples: the same values, half the error; tau_gen must not move."""
    write_run(tmp_path, metrics())
    rows = metrics(fid_err=ERR / 2, samples=4 * SAMPLES)
    write_csv(tmp_path / "refine" / "metrics.csv", rows, list(rows[0]))
    _, curves = load_run(tmp_path)
    assert set(curves.own["n_samples"]) == {SAMPLES} and set(curves["n_samples"]) == {4.0 * SAMPLES}
    refined, plain, alone = window_main(tmp_path), read_window(metrics(), gate=GATE), read_window(rows, gate=GATE)
    assert refined.tau_gen == dataclasses.replace(plain.tau_gen, how=refined.tau_gen.how)
    assert "the run's own tolerance" in refined.tau_gen.how and refined.fid_err == ERR
    assert alone.tau_gen.estimate > plain.tau_gen.estimate  # read with its own, halved error it comes later


def test_missing_columns_error_names_them_and_overwrites_nothing(tmp_path, gate_lookup):
    rows = [{k: v for k, v in r.items() if k not in ("fmem_low", "loss_test")} for r in metrics()]
    write_run(tmp_path, rows)
    (tmp_path / "window.json").write_text("old")
    with pytest.raises(FreqdiffError, match="fmem_low, loss_test"):
        window_main(tmp_path)
    assert (tmp_path / "window.json").read_text() == "old"
    assert not (tmp_path / "figures").exists()


def test_empty_run_dir_errors(tmp_path):
    with pytest.raises(FreqdiffError, match="no metrics.csv"):
        window_main(tmp_path)
    write_run(tmp_path, metrics())
    (tmp_path / "metrics.csv").write_text("step,fid\n")
    with pytest.raises(FreqdiffError, match="empty"):
        window_main(tmp_path)


def test_group_windows_reports_censored_as_bound_and_open_by_intervals():
    done = read_window(metrics(), n=64, gate=GATE)
    never = read_window(metrics(fmem=[0.0] * len(STEPS)), n=64, gate=GATE)
    silent = read_window(metrics(fmem=[0.0] * len(STEPS), recognizable=0.1), n=64, gate=GATE)
    (group,) = group_windows([("r", 0, done), ("r", 1, never), ("r", 2, silent)])
    assert group.censored == 2 and group.no_generation == 1 and group.open == 2 and not group.window_open
    assert str(group.tau_mem).startswith(">= ")
    closed = read_window(metrics(fmem=[0.3] * len(STEPS)), n=64, gate=GATE)
    assert not is_open(closed) and not is_open(silent)


def test_the_window_reads_the_columns_evaluate_writes():
    from freqdiff.metrics.evaluate import COLUMNS

    assert list(METRICS_COLUMNS) == list(COLUMNS)
