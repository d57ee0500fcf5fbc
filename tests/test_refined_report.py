"""The refinement report (freqdiff.analysis.reports.refined) on hand-made runs whose refined curve is known."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
from test_report import make_run
from test_window import ERR, STEPS, TAU_MEM, copy_fraction, fd_curve, metrics, use_test_gate

from freqdiff.analysis.reports.refined import main, write_refined
from freqdiff.core.io import read_csv, write_csv


@pytest.fixture(autouse=True)
def gate_lookup(monkeypatch):
    """The hand-set gate for digits_cnn features."""
    use_test_gate(monkeypatch)


def refine_rows(run_dir: Path, seed: int, stretch: float, copies: bool = True) -> None:
    """RUN/refine/metrics.csv: the run's copies (none if not `copies`) re-measured with 4x the samples (half the FD's
    error), its FD approach `stretch` x slower."""
    fmem = copy_fraction(TAU_MEM, seed=seed) if copies else [0.0] * len(STEPS)
    rows = metrics(STEPS, fd_curve(STEPS / stretch, seed=seed), fmem, fid_err=ERR / 2, samples=2048)
    (run_dir / "refine").mkdir()
    write_csv(run_dir / "refine" / "metrics.csv", rows, list(rows[0]))


def table_row(text: str, run: str) -> list[str]:
    line = next(line for line in text.splitlines() if line.startswith(f"| {run} |"))
    return [cell.strip() for cell in line.strip().strip("|").split("|")]


def test_a_slower_refined_fd_moves_tau_gen_out_of_the_unrefined_interval(tmp_path: Path) -> None:
    for seed, stretch in ((0, 1.0), (1, 2.0), (2, 2.0)):
        make_run(tmp_path / f"n64-seed{seed}", 64, seed, TAU_MEM)
        refine_rows(tmp_path / f"n64-seed{seed}", seed, stretch)
    make_run(tmp_path / "unrefined", 64, 3, TAU_MEM)  # no refine/: left out
    text = write_refined(tmp_path).read_text()
    assert "3 refined runs" in text and "| unrefined |" not in text
    same, slower = table_row(text, "n64-seed0"), table_row(text, "n64-seed1")
    assert same[1] == "512 -> 2048" and same[6:8] == ["yes", "yes"]
    assert slower[6:8] == ["no", "yes"]  # the FD twice as slow: tau_gen out, tau_mem (same copies) in
    factor = float(re.search(r"tau_gen, refined / unrefined: (\S+)x", text).group(1))
    assert 1.4 < factor < 1.8  # exp(mean log(1, 2, 2)) = 1.59
    assert re.search(r"tau_mem_earlier, refined / unrefined: 1x", text)
    rows = read_csv(tmp_path / "refined.csv")
    assert len(rows) == 6 and (tmp_path / "refined.png").stat().st_size > 0
    assert {r["covered"] for r in rows if r["tau"] == "tau_mem_earlier"} == {"yes"}


def test_a_censored_run_is_left_out_of_the_coverage_count_and_named(tmp_path: Path) -> None:
    for seed, copies in ((0, True), (1, True), (2, False)):
        make_run(tmp_path / f"n64-seed{seed}", 64, seed, TAU_MEM if copies else None)
        refine_rows(tmp_path / f"n64-seed{seed}", seed, 1.0, copies)
    text = write_refined(tmp_path).read_text()
    assert table_row(text, "n64-seed2")[7] == "—"  # never copies: no refined tau_mem to hold
    assert ("- tau_mem_earlier: the unrefined interval covers the refined estimate in 2 of 2 runs (1 without a refined "
            "estimate or an unrefined interval)") in text
    assert "- tau_gen: the unrefined interval covers the refined estimate in 3 of 3 runs\n" in text


def test_runs_of_several_n_get_their_own_factors_and_half_widths(tmp_path: Path) -> None:
    for n in (64, 128):
        for seed, stretch in ((0, 2.0), (1, 2.0)):
            make_run(tmp_path / f"n{n}-seed{seed}", n, seed, TAU_MEM)
            refine_rows(tmp_path / f"n{n}-seed{seed}", seed, stretch if n == 64 else 1.0)
    text = write_refined(tmp_path).read_text()
    at64 = float(re.search(r"tau_gen at n = 64, refined / unrefined: (\S+)x", text).group(1))
    at128 = float(re.search(r"tau_gen at n = 128, refined / unrefined: (\S+)x", text).group(1))
    pooled = float(re.search(r"tau_gen, refined / unrefined: (\S+)x .* over 4 runs", text).group(1))
    assert at64 > 1.5 and abs(at128 - 1) < 0.1 and at128 < pooled < at64
    spread = re.search(r"tau_mem_earlier at n = 64, half-width: ±(\S+)-(\S+)% before, ±(\S+)-(\S+)% refined", text)
    before, after = float(spread.group(2)), float(spread.group(4))
    assert after < before  # 4x the samples narrow tau_mem's interval


def test_runs_of_two_strengths_are_named_by_their_folder(tmp_path: Path) -> None:
    for variant in ("a", "b"):
        make_run(tmp_path / variant / "n64-seed0", 64, 0, TAU_MEM)
        refine_rows(tmp_path / variant / "n64-seed0", 0, 1.0)
    text = write_refined(tmp_path).read_text()
    assert table_row(text, "a/n64-seed0")[0] == "a/n64-seed0" and table_row(text, "b/n64-seed0")


def test_no_refined_run_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    make_run(tmp_path / "n64", 64, 0, TAU_MEM)
    assert main([str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "no refined run" in err and not (tmp_path / "refined.md").exists()
    assert main(["--help"]) == 0 and "--out" in capsys.readouterr().out
