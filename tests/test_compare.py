"""`freqdiff compare` over hand-made recipes: the table, the factors between recipes, outputs, bad input."""
from __future__ import annotations

import csv
import io
import json
import math

import pytest

from freqdiff.analysis.reports.compare import compare_main, render
from freqdiff.analysis.reading.comparison import compare
from freqdiff.io import write_csv, write_json
from freqdiff.registry import FreqdiffError

STEPS = [25, 50, 100, 250, 500, 1000, 1500, 2000, 3000, 4000, 6000, 8000, 12000, 16000]
# running median over 3: 250 200 21 20 ... -> plateau 20, band 22: tau_gen = 100 (FID 21 there)
FID = [300, 200, 21] + [20] * 11


def config(n, seed, regularizer="none", params=None, **data):
    """A config.json as a sweep writes it."""
    return {"dataset": {"name": "digits", "params": {"resize": 8}}, "process": {"name": "ddpm", "params": {}},
            "model": {"name": "unet", "params": {"width": 8}},
            "regularizer": {"name": regularizer, "params": params or {}}, "sampler": {"name": "ddim", "params": {}},
            "data": {"n": n, "test_size": 256, "subset": "nested", "subset_index": 0, "data_seed": 0,
                     "center": True, **data},
            "train": {"steps": STEPS[-1], "seed": seed}, "eval": {"k": 1 / 3}}


def make_run(run_dir, cfg, onset, fid=FID):
    """metrics.csv whose f_mem 95% lower bound is > 0 from step `onset` on (never when None)."""
    write_json(run_dir / "config.json", cfg)
    rows = []
    for step, f in zip(STEPS, fid):
        low = 0.05 if onset is not None and step >= onset else 0.0
        rows.append({"step": step, "fid": f, "kid": "", "fmem": low + 0.02 * (low > 0), "fmem_low": low,
                     "fmem_high": low + 0.04, "loss_train": 0.05, "loss_test": 0.06, "extractor": "lenet",
                     "n_samples": 64})
    write_csv(run_dir / "metrics.csv", rows, list(rows[0]))


def make_recipe(root, base, regularizer="none", params=None, seeds=(0, 1), censor=(), fid=FID, **data):
    """Runs at n = 16, 64: tau_mem = base * n/16 * (1 + seed/2); (n, seed) in `censor` never memorizes."""
    for n in (16, 64):
        for seed in seeds:
            onset = None if (n, seed) in censor else int(base * n / 16 * (1 + seed / 2))
            make_run(root / f"n{n:05d}-seed{seed}", config(n, seed, regularizer, params, **data), onset, fid)
    return root


@pytest.fixture
def two(tmp_path):
    """Reference 'plain' (tau_mem = 1000 n/16) and 'wide' (2000 n/16, n=64 seed 1 censored at 16000)."""
    plain = make_recipe(tmp_path / "plain", 1000)
    wide = make_recipe(tmp_path / "wide", 2000, "fourier_penalty", {"weight": 0.1}, censor={(64, 1)})
    return plain, wide


def test_table_values_and_censoring(two):
    c = compare(two)
    plain, wide = c.recipes
    assert c.reference == "plain" and wide.regularizer == "fourier_penalty(weight=0.1)"
    row = plain.rows[0]
    assert row.group.n == 16 and str(row.group.tau_gen) == "100 ± 0 [100, 100]"
    assert str(row.group.tau_mem) == "1250 ± 354 [1000, 1500]"
    assert str(row.width) == "1150 ± 354 [900, 1400]" and str(row.ratio) == "12.5 ± 3.54 [10, 15]"
    assert str(row.fid_at_gen) == "21 ± 0 [21, 21]" and row.extractor == "lenet"
    censored = wide.rows[1]
    assert censored.group.censored == 1 and str(censored.group.tau_mem).startswith(">= 12000")
    assert str(censored.width) == ">= 11900 ± 5657 [7900, 15900]"
    text = render(c)
    assert "| wide (fourier_penalty(weight=0.1)) | 64 | 2 | 100 ± 0 [100, 100] | >= 12000" in text
    assert "21 ± 0 [21, 21] (lenet)" in text
    assert plain.fit.slope == pytest.approx(1.0) and wide.fit_runs == 3


def test_width_factor_interval_and_verdict(two):
    (v,) = compare(two).versus
    n16, n64 = v.width
    # geometric means sqrt(1900*2900) / sqrt(900*1400); two seeds each: the bootstrap spans every pairing
    assert n16.estimate == pytest.approx(math.sqrt(1900 * 2900 / (900 * 1400)))
    assert n16.interval == pytest.approx((1900 / 1400, 2900 / 900)) and n16.bound == ""
    assert n64.bound == ">=" and n64.interval[1] is None
    assert n64.estimate == pytest.approx(math.sqrt(7900 * 15900 / (3900 * 5900)))
    assert n64.interval[0] == pytest.approx(7900 / 5900)
    assert v.tau_mem[0].estimate == pytest.approx(2.0)
    assert v.pooled_width is None  # per-n intervals exist: no fallback
    assert v.verdict.startswith("wide widens the window against plain: width >= 2.34 times the reference's at n = 64")
    assert "excludes 1; a lower bound: the recipe has censored runs" in v.verdict and "At equal quality" in v.verdict
    assert all(q.worse is False for q in v.quality)


def test_reference_flag_reverses_direction(two):
    (v,) = compare(two, reference="wide").versus
    assert v.width[1].bound == "<=" and v.width[1].interval[0] is None
    assert v.verdict.startswith("plain narrows the window against wide: width <= 0.428 times")


def test_worse_quality_is_flagged(tmp_path):
    plain = make_recipe(tmp_path / "plain", 1000)
    blurry = make_recipe(tmp_path / "blurry", 2000, fid=[300, 200, 31] + [30] * 11)
    (v,) = compare([plain, blurry]).versus
    assert [q.worse for q in v.quality] == [True, True]
    assert v.quality[0].difference == pytest.approx(10) and v.quality[0].tolerance == pytest.approx(2.1)
    assert "Not at equal quality" in v.verdict and "n = 16 (+10" in v.verdict


def test_one_seed_falls_back_to_pooled_t_interval(tmp_path):
    plain = make_recipe(tmp_path / "plain", 1000, seeds=(0,))
    wide = make_recipe(tmp_path / "wide", 3000, seeds=(0,))
    (v,) = compare([plain, wide]).versus
    assert all(f.interval is None and "one seed" in f.note for f in v.width)
    factors = [2900 / 900, 11900 / 3900]
    pooled = v.pooled_width
    assert pooled.estimate == pytest.approx(math.sqrt(factors[0] * factors[1]))
    logs = [math.log(f) for f in factors]
    half = 12.7062 * abs(logs[0] - logs[1]) / math.sqrt(2) / math.sqrt(2)  # t(0.975, 1) * sd / sqrt(2)
    assert pooled.interval == pytest.approx((math.exp(sum(logs) / 2 - half), math.exp(sum(logs) / 2 + half)), rel=1e-4)
    assert "geometric mean over n = 16, 64 (95% t-interval over n [2.22, 4.43], excludes 1)" in v.verdict


def test_single_seed_single_n_interval_undefined(tmp_path):
    plain, wide = tmp_path / "plain", tmp_path / "wide"
    make_run(plain / "r", config(16, 0), 1000)
    make_run(wide / "r", config(16, 0), 3000)
    (v,) = compare([plain, wide]).versus
    assert v.pooled_width.estimate is None and "need 2" in v.pooled_width.note
    assert "one seed" in v.verdict and "no confidence can be given" in v.verdict


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
    assert float(factor["value"]) == pytest.approx(2.0906, rel=1e-3)
    window = next(r for r in rows if r["kind"] == "window" and r["recipe"] == "wide" and r["n"] == "64"
                  and r["quantity"] == "tau_mem")
    assert window["bound"] == ">=" and float(window["max"]) == 16000
    assert compare_main([str(d) for d in two] + ["--out", str(out), "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["reference"] == "plain" and data["versus"][0]["width"][1]["bound"] == ">="
    assert data["recipes"][1]["rows"][1]["group"]["censored"] == 1
    with pytest.raises(FreqdiffError, match="not from a comparison of these DIRs"):
        compare_main([str(two[0]), "--out", str(out)])


def test_bad_input(two, tmp_path):
    plain, wide = two
    with pytest.raises(FreqdiffError, match="no such directory"):
        compare([plain, tmp_path / "missing"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(FreqdiffError, match="empty: holds no runs"):
        compare([plain, tmp_path / "empty"])
    other = make_recipe(tmp_path / "other", 1000, test_size=512)
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
