"""Strengths of a regularizer against strength 0: the sweep's directories, the Pareto table and its one verdict."""
from __future__ import annotations

import re

import pytest
from test_compare import config, make_recipe, make_run, read_each_curve_once  # noqa: F401 (a fixture)
from test_window import L, use_test_gate

from freqdiff.analysis.reading.comparison import compare
from freqdiff.analysis.reports.pareto import verdict, write_pareto
from freqdiff.commands.sweep import parse_sweep_argv, plan
from freqdiff.core.registry import FreqdiffError


@pytest.fixture(autouse=True)
def gate_lookup(monkeypatch):
    use_test_gate(monkeypatch)


def strengths(root, **variants):
    """weight-0 (tau_mem = 1000 n/16) and the given variants: name -> (base tau_mem, extra quality kwargs)."""
    dirs = [make_recipe(root / "weight-0", 1000, "fourier_penalty", {"weight": 0.0}, seeds=(0, 1, 2))]
    for name, (base, quality) in variants.items():
        dirs.append(make_recipe(root / name, base, "fourier_penalty", {"weight": float(name.split("-")[1])},
                                seeds=(0, 1, 2), **quality))
    return dirs


def test_a_matched_strength_that_delays_memorization_reads_wider(tmp_path):
    # weight-1's seeds scatter (spread 0.25 against 0.5): its scale-free widths vary, so a t-interval exists
    dirs = strengths(tmp_path, **{"weight-0.1": (1200, {}), "weight-1": (4000, {"spread": 0.25})})
    sentence = write_pareto(dirs, tmp_path)
    assert sentence.startswith("Wider at matched quality: weight-1 widens the window over weight-0: tau_mem/tau_gen "
                               "(scale-free width)")
    # the truth at every n: the geometric mean of the per-seed tau_mem ratios 4000/1000, 5000/1500, 6000/2000
    factor = float(re.search(r"\(scale-free width\) (\S+) times", sentence).group(1))
    assert factor == pytest.approx((4 * 5 / 1.5 * 3) ** (1 / 3), rel=0.05)
    assert "95% paired t-interval on per-seed differences of log(tau_mem/tau_gen), 3 vs 3 seeds [" in sentence
    assert "exact permutation p = 0.1" in sentence and "bootstrap" not in sentence
    assert (tmp_path / "pareto.png").stat().st_size > 5000
    table = (tmp_path / "pareto.csv").read_text()
    assert "weight-1,16,matched" in table and "weight-0.1,64,matched" in table
    assert "interval-censored log-normal AFT (lifelines)" in table and "absolute_width_factor" in table
    assert "Intervals: Width: the scale-free width" in (tmp_path / "pareto.md").read_text()


def test_a_strength_that_only_loses_quality_never_reads_wider(tmp_path):
    worse = {"fd_level": L + 40}  # the same approach to an FD plateau 40 higher: lower quality
    dirs = strengths(tmp_path, **{"weight-1": (4000, worse), "weight-3": (8000, {"recognizable": 0.2})})
    sentence = verdict(compare(dirs))
    assert sentence.startswith("No setting at matched quality against weight-0")
    assert "generation at lower quality" in sentence and "no generation" in sentence
    assert "wider" not in sentence.replace("No setting", "")


def test_matched_but_unchanged_reads_not_wider(tmp_path):
    # per-seed tau_mem 1050, 1470, 1890 (x n/16) against 1000, 1500, 2000: ratios scatter about 1
    dirs = strengths(tmp_path, **{"weight-0.01": (1050, {"spread": 0.4})})
    sentence = verdict(compare(dirs))
    assert sentence.startswith("Not wider at matched quality: no strength that matches weight-0's quality widens")
    largest = re.search(r"\(largest: weight-0.01 at n = \d+, (\S+), 95% paired t-interval .* \[(\S+), (\S+)\], "
                        r"includes 1", sentence)
    truth = (1.05 * 1.47 / 1.5 * 1.89 / 2) ** (1 / 3)
    assert float(largest.group(1)) == pytest.approx(truth, rel=0.05)
    assert float(largest.group(2)) < 1 < float(largest.group(3).rstrip("]"))


def test_a_strength_identical_to_the_reference_is_flagged(tmp_path):
    """The same runs under another setting (a floor that never binds): pareto says the setting changed nothing."""
    dirs = strengths(tmp_path, **{"weight-0.5": (1000, {}), "weight-1": (4000, {})})
    sentence = write_pareto(dirs, tmp_path)
    assert ("Caution: weight-0 and weight-0.5 have byte-identical metrics.csv in all 6 shared runs: the varied "
            "setting changed nothing") in sentence
    assert "weight-1 have byte-identical" not in sentence and sentence in (tmp_path / "pareto.md").read_text()


def test_a_closed_reference_window_still_has_a_scale_free_width_and_tau_mem_speaks(tmp_path):
    """The reference copies before its FD plateau in one seed: no absolute width there, but the scale-free width
    log(tau_mem/tau_gen) (negative for that seed) is compared, and the tau_mem factor is measured."""
    dirs = strengths(tmp_path, **{"weight-1": (3000, {})})
    late = 8000.0  # seed 0's FD reaches its plateau here, after its tau_mem (1000 at n = 16, 4000 at n = 64)
    make_run(dirs[0] / "n00016-seed0", config(16, 0, "fourier_penalty", {"weight": 0.0}), 1000, tau_gen=late)
    make_run(dirs[0] / "n00064-seed0", config(64, 0, "fourier_penalty", {"weight": 0.0}), 4000, tau_gen=late)
    c = compare(dirs)
    assert [w.state for w in c.recipes[0].at(16)] == ["closed", "open", "open"]
    assert [m.status for m in c.versus[0].matches] == ["matched", "matched"]
    (v,) = c.versus
    free, absolute = v.width[-1], v.absolute_width[-1]
    assert free.estimate is not None and "3 vs 3 seeds" in free.method
    assert absolute.estimate is None and "window is closed" in absolute.note
    assert v.tau_mem[-1].estimate == pytest.approx(3, rel=0.05)  # every seed's tau_mem tripled
    assert "interval-censored log-normal AFT (lifelines)" in v.tau_mem[-1].method
    sentence = verdict(c)
    assert sentence.split(":")[0] in ("Not wider at matched quality", "Wider at matched quality")
    assert "tau_mem/tau_gen, the scale-free width" in sentence and "exact permutation p = 0.1" in sentence


def test_a_vary_recipe_plans_one_directory_per_value_and_refuses_the_flag_twice():
    options, flags = parse_sweep_argv(["--recipe", "baseline", "--n", "16", "--seeds", "0,1", "--out", "study",
                                       "--regularizer", "fourier_penalty",
                                       "--vary", "regularizer.weight=0,0.1,1"])
    runs = plan(options, flags)
    assert [str(r.run_dir) for r in runs[:2]] == ["study/weight-0/n00016-seed0", "study/weight-0/n00016-seed1"]
    assert sorted({r.run_dir.parent.name for r in runs}) == ["weight-0", "weight-0.1", "weight-1"]
    assert {r.flags["regularizer.weight"] for r in runs} == {"0", "0.1", "1"}
    options, flags = parse_sweep_argv(["--recipe", "baseline", "--n", "16", "--regularizer.weight", "2",
                                       "--regularizer", "fourier_penalty", "--vary", "regularizer.weight=0,1"])
    with pytest.raises(FreqdiffError, match="--regularizer.weight is varied by the sweep"):
        plan(options, flags)
