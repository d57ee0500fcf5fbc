"""report.md over hand-made run directories, the figures it embeds, and the analysis package's layering."""
from __future__ import annotations

import ast
import math
import re
from pathlib import Path

import numpy as np
import pytest
from test_window import SAMPLES, STEPS, TAU_GEN, TAU_MEM, L, copy_fraction, fd_curve, metrics, use_test_gate

import freqdiff.analysis
from freqdiff.analysis.reports.plots import fid_label
from freqdiff.analysis.reports.report import RUN_COLUMNS, write_report
from freqdiff.core.io import write_csv, write_json

CONFIG = {"dataset": {"name": "digits", "params": {}}, "process": {"name": "ddpm", "params": {}},
          "model": {"name": "unet", "params": {"width": 8}}, "regularizer": {"name": "none", "params": {}},
          "sampler": {"name": "ddim", "params": {}}, "eval": {"k": 1 / 3}}
NEAREST = STEPS[::3]  # nearest-neighbour files at some checkpoints only, as evaluate writes them


@pytest.fixture(autouse=True)
def gate_lookup(monkeypatch):
    """The hand-set gate for digits_cnn features."""
    use_test_gate(monkeypatch)


def make_run(run_dir, n, seed, tau_mem=None, nearest=(), samples=SAMPLES, **quality):
    """A run directory with config.json, metrics.csv (test_window's FD approach, tau_gen about 2117; copies from a
    logistic onset at tau_mem, never when None) and nearest-neighbour files at the given steps."""
    config = {**CONFIG, "data": {"n": n, "subset_index": 0}, "train": {"seed": seed, "steps": int(STEPS[-1])}}
    write_json(run_dir / "config.json", config)
    copies = [0.0] * len(STEPS) if tau_mem is None else copy_fraction(tau_mem, seed=seed, samples=samples)
    rows = metrics(STEPS, fd_curve(seed=seed), copies, samples=samples, **quality)
    write_csv(run_dir / "metrics.csv", rows, list(rows[0]))
    rng = np.random.default_rng(seed)
    for step in nearest:
        (run_dir / "nearest").mkdir(exist_ok=True)
        np.savez(run_dir / "nearest" / f"step_{step:08d}.npz", samples=rng.random((3, 1, 8, 8)),
                 nearest=rng.random((3, 1, 8, 8)), ratio=np.array([0.1, 0.5, 0.9]))
    return rows


def cells(text, run):
    """The runs table's cells of one run, by column."""
    line = next(line for line in text.splitlines() if line.startswith(f"| {run} |"))
    return dict(zip(RUN_COLUMNS, (cell.strip() for cell in line.strip().strip("|").split("|"))))


def interval(cell):
    """'1234 [1100, 1400]' as (1234, 1100, 1400)."""
    return tuple(float(v) for v in re.fullmatch(r"(\d+) \[(\d+), (\d+)\]", cell).groups())


def test_report_for_two_runs(tmp_path):
    rows = make_run(tmp_path / "n64", 64, 0, TAU_MEM, nearest=NEAREST)
    make_run(tmp_path / "n256", 256, 1)
    (tmp_path / "broken").mkdir()
    write_json(tmp_path / "broken" / "config.json", CONFIG)
    (tmp_path / "broken" / "metrics.csv").write_text("step,fid\n1,2\n")
    text = write_report(tmp_path).read_text()
    row64 = cells(text, "n64")
    assert row64["verdict"] == "memorized" and row64["window"] == "open"
    gen, gen_low, gen_high = interval(row64["tau_gen [95%]"])  # the FD's approach, read off the fit
    assert abs(gen / TAU_GEN - 1) < 0.15 and gen_low <= TAU_GEN <= gen_high
    mem, mem_low, mem_high = interval(row64["tau_mem (f_mem) [95%]"])
    assert abs(mem / TAU_MEM - 1) < 0.15 and mem_low <= TAU_MEM <= mem_high
    assert row64["tau_mem (robust) [95%]"] == row64["tau_mem (f_mem) [95%]"]
    assert (row64["width"], row64["ratio"]) == (str(int(mem - gen)), f"{mem / gen:.3g}")
    log_ratio = re.fullmatch(r"(\S+) \[(\S+), (\S+)\]", row64["log(tau_mem/tau_gen) [ends]"]).groups()
    assert float(log_ratio[1]) < np.log(TAU_MEM / TAU_GEN) < float(log_ratio[2])
    plateau = re.fullmatch(r"(\S+) ± 1 \(digits_cnn\)", row64["FD plateau ± 2 sigma (features)"])
    assert float(plateau.group(1)) == pytest.approx(L, abs=0.5)  # the fitted plateau level and the FD's error
    assert row64["final f_mem [95% CI]"] == f"{float(rows[-1]['fmem']):.3f} [0.000, 1.000]"
    row256 = cells(text, "n256")  # never copies: tau_mem censored past the last checkpoint, width a lower bound
    assert row256["verdict"] == "generalized" and row256["window"] == "open"
    assert interval(row256["tau_gen [95%]"])[1] <= TAU_GEN <= interval(row256["tau_gen [95%]"])[2]
    censored = re.fullmatch(r">= (\d+) \[(\d+), \.\.\]", row256["tau_mem (f_mem) [95%]"])
    assert censored and int(censored.group(1)) > STEPS[-1] / 2 and row256["width"].startswith(">= ")
    assert "broken: " in text and "fmem" in text.split("## Skipped runs")[1]
    assert "No fit" in text  # only one n has a tau_mem that is no bound
    images = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)
    assert {"n64/figures/curves.png", "n256/figures/losses.png"} <= set(images)
    assert any(p.endswith("_collapse.png") for p in images) and any(p.endswith("_scaling.png") for p in images)
    for rel in images:
        assert (tmp_path / rel).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def nearest_line(details, role):
    """(step shown, evaluated checkpoint, figure) of the nearest-image grid shown for a role."""
    found = re.search(rf"- at {role} (>= )?(\d+) \(evaluated checkpoint (\d+)\):\n\n"
                      rf"  !\[{role} (>= )?\d+\]\(([^)]+)\)", details)
    return int(found.group(2)), int(found.group(3)), found.group(5)


def closest(step):
    """The nearest-neighbour file closest to a step in log-step."""
    return min(NEAREST, key=lambda s: abs(np.log(s) - np.log(step)))


def test_every_run_shows_samples_beside_nearest_images_at_tau_gen_and_tau_mem(tmp_path):
    make_run(tmp_path / "n64", 64, 0, TAU_MEM, nearest=NEAREST)
    make_run(tmp_path / "silent", 64, 1, nearest=NEAREST, recognizable=0.1)
    text = write_report(tmp_path).read_text()
    details = text.split("### n64")[1].split("### silent")[0]
    for role, truth in (("tau_gen", TAU_GEN), ("tau_mem", TAU_MEM)):
        shown, checkpoint, figure = nearest_line(details, role)
        assert abs(shown / truth - 1) < 0.15 and checkpoint == closest(shown)
        assert figure == f"n64/figures/nearest_step_{checkpoint:08d}.png" and (tmp_path / figure).is_file()
    silent = text.split("### silent")[1]
    assert "- verdict: no generation" in silent and "- at the last checkpoint (evaluated checkpoint 12800):" in silent
    shown, checkpoint, figure = nearest_line(silent, "tau_mem")  # never copies: censored, shown at its lower end
    assert re.search(rf"- at tau_mem >= {shown} ", silent) and checkpoint == closest(shown) == STEPS[-1]
    assert cells(text, "silent")["verdict"] == cells(text, "silent")["window"] == "no generation"
    assert (tmp_path / "silent" / "figures" / "nearest_step_00012800.png").is_file()


def test_a_sweep_report_keeps_current_figures_and_redraws_stale_ones(tmp_path):
    """redraw=False keeps figures newer than the run's metrics (drawn with its window); a newer metrics.csv redraws."""
    make_run(tmp_path / "n64", 64, 0, TAU_MEM, nearest=NEAREST)
    first = write_report(tmp_path).read_text()
    curves = tmp_path / "n64" / "figures" / "curves.png"
    drawn = curves.stat().st_mtime_ns
    assert write_report(tmp_path, redraw=False).read_text() == first and curves.stat().st_mtime_ns == drawn
    metrics = tmp_path / "n64" / "metrics.csv"
    metrics.write_text(metrics.read_text())  # re-measured: the figures are now older than the data
    write_report(tmp_path, redraw=False)
    assert curves.stat().st_mtime_ns > drawn


def test_report_without_nearest_files_says_so(tmp_path):
    make_run(tmp_path / "n64", 64, 0)
    assert "No nearest-neighbour files (nearest/step_*.npz)" in write_report(tmp_path).read_text()


def test_report_fits_slope_across_n(tmp_path):
    for n in (64, 256):  # tau_mem = 25 n: 1600 and 6400
        make_run(tmp_path / f"n{n}", n, 0, 25.0 * n, samples=8192)
    text = write_report(tmp_path).read_text()
    slope = re.search(r"slope (\S+), interval undefined \(2 points\), over 2 runs whose tau_mem is no bound", text)
    assert slope and float(slope.group(1)) == pytest.approx(1.0, abs=0.1)
    assert "With the censored runs counted" not in text  # nothing censored: the least-squares fit is the whole story


def test_report_counts_censored_runs_in_a_second_slope(tmp_path):
    for n, seed in ((64, 0), (64, 1), (128, 0), (128, 1)):  # tau_mem = 25 n: 1600 and 3200
        make_run(tmp_path / f"n{n}-{seed}", n, seed, 25.0 * n, samples=8192)
    make_run(tmp_path / "n512", 512, 0)  # never copies: censored, so the least-squares fit leaves it out
    text = write_report(tmp_path).read_text()
    assert "over 4 runs whose tau_mem is no bound" in text
    counted = re.search(r"With the censored runs counted: slope (\S+), \[(\S+), (\S+)\] \(95% Wald interval of an "
                        r"interval-censored log-normal AFT regression on log n \(lifelines\), 5 runs; 1 of 5 runs "
                        r"censored\)", text)
    assert counted and float(counted.group(2)) < float(counted.group(1)) < float(counted.group(3))


def test_fid_label_names_extractor():
    assert fid_label("lenet") == "FD (lenet features)"
    assert fid_label("inception_v3") == "FID (Inception)"


LAYERS = {"statistics": 1, "inference": 1, "reading": 2, "reports": 3}


def _imported(node: ast.AST) -> list[str]:
    """The modules one import statement names."""
    if isinstance(node, ast.ImportFrom) and node.module:
        return [node.module]
    return [a.name for a in node.names] if isinstance(node, ast.Import) else []


def _type_checking_only(tree: ast.AST) -> set[int]:
    """ids of the import statements under `if TYPE_CHECKING:`: read by type checkers, never executed."""
    guarded = set()
    for node in ast.walk(tree):
        test = getattr(node, "test", None)
        if isinstance(node, ast.If) and (getattr(test, "id", None) == "TYPE_CHECKING"
                                         or getattr(test, "attr", None) == "TYPE_CHECKING"):
            guarded |= {id(inner) for stmt in node.body for inner in ast.walk(stmt)}
    return guarded


def _analysis_imports(path: Path, runtime: bool = False) -> set[str]:
    """The freqdiff.analysis modules a source file imports (at any depth in the file); with `runtime`, only those
    imported when it runs (not under `if TYPE_CHECKING:`)."""
    tree = ast.parse(path.read_text())
    skip = _type_checking_only(tree) if runtime else set()
    return {name for node in ast.walk(tree) if id(node) not in skip for name in _imported(node)
            if name.startswith("freqdiff.analysis.")}


def test_analysis_layers_import_one_way_without_cycles():
    """Layers: every import, type-only ones too, points down or sideways. Cycles: among the imports that run (an
    import under `if TYPE_CHECKING:`, for annotations only, closes no cycle)."""
    root = Path(freqdiff.analysis.__file__).parent
    modules = {".".join(("freqdiff.analysis", *p.relative_to(root).with_suffix("").parts)): p
               for p in root.rglob("*.py")}
    graph = {name.removesuffix(".__init__"): _analysis_imports(path) for name, path in modules.items()}
    for name, imports in graph.items():
        layer = LAYERS.get(name.split(".")[2], 0) if name.count(".") >= 2 else 0
        for target in imports:
            assert LAYERS[target.split(".")[2]] <= layer, f"{name} imports the upper layer {target}"
    runtime = {name.removesuffix(".__init__"): _analysis_imports(path, runtime=True) for name, path in modules.items()}
    assert runtime["freqdiff.analysis.reading.pooling"] >= {"freqdiff.analysis.reading.equivalence"}
    done: set[str] = set()

    def visit(name: str, path: tuple[str, ...]) -> None:
        assert name not in path, f"import cycle: {' -> '.join(path + (name,))}"
        if name not in done:
            for target in runtime.get(name, ()):
                visit(target, path + (name,))
            done.add(name)

    for name in graph:
        visit(name, ())


def test_the_width_slope_is_the_tau_mem_slope_minus_the_tau_gen_slope_over_exact_ratios():
    from types import SimpleNamespace

    from freqdiff.analysis.reading.scaling import fit_width
    rng = np.random.default_rng(0)
    windows = [SimpleNamespace(n=n, ratio=(300 * n ** 1.0 / (800 * n ** 0.25)) * math.exp(0.05 * rng.standard_normal()),
                               bound="") for n in (128, 256, 512) for _ in range(6)]
    windows += [SimpleNamespace(n=1024, ratio=0.5, bound=">=")]  # a bound: left out, or it would pull the slope down
    fit, count = fit_width(windows)
    assert count == 18 and fit.slope == pytest.approx(0.75, abs=0.05)
    assert fit.interval[0] < fit.slope < fit.interval[1] and fit.interval[1] - fit.interval[0] < 0.2
    assert fit_width(windows[:6]) is None
