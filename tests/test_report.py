"""report.md over hand-made run directories, the figures it embeds, and the analysis package's layering."""
from __future__ import annotations

import ast
import re
from pathlib import Path

import numpy as np
import pytest

import freqdiff.analysis
from freqdiff.analysis.reports.plots import fid_label
from freqdiff.analysis.reports.report import write_report
from freqdiff.io import write_csv, write_json
from test_window import metrics, use_test_gate

STEPS = [100, 200, 400, 800, 1600, 3200, 6400, 12800]
CONFIG = {"dataset": {"name": "digits", "params": {}}, "process": {"name": "ddpm", "params": {}},
          "model": {"name": "unet", "params": {"width": 8}}, "regularizer": {"name": "none", "params": {}},
          "sampler": {"name": "ddim", "params": {}}, "eval": {"k": 1 / 3}}


@pytest.fixture(autouse=True)
def gate_lookup(monkeypatch):
    """The hand-set gate for digits_cnn features."""
    use_test_gate(monkeypatch)


def make_run(run_dir, n, seed, low, nearest=(), **quality):
    """A run directory with config.json, metrics.csv and nearest-neighbour files at the given steps."""
    config = {**CONFIG, "data": {"n": n, "subset_index": 0}, "train": {"seed": seed, "steps": STEPS[-1]}}
    write_json(run_dir / "config.json", config)
    rows = metrics(STEPS, [300, 150, 60, 21, 20, 20.5, 21, 22], low, **quality)
    write_csv(run_dir / "metrics.csv", rows, list(rows[0]))
    rng = np.random.default_rng(seed)
    for step in nearest:
        (run_dir / "nearest").mkdir(exist_ok=True)
        np.savez(run_dir / "nearest" / f"step_{step:08d}.npz", samples=rng.random((3, 1, 8, 8)),
                 nearest=rng.random((3, 1, 8, 8)), ratio=np.array([0.1, 0.5, 0.9]))


def test_report_for_two_runs(tmp_path):
    make_run(tmp_path / "n64", 64, 0, [0, 0, 0, 0, 0, 0.05, 0.2, 0.4], nearest=STEPS)
    make_run(tmp_path / "n256", 256, 1, [0] * 8)
    (tmp_path / "broken").mkdir()
    write_json(tmp_path / "broken" / "config.json", CONFIG)
    (tmp_path / "broken" / "metrics.csv").write_text("step,fid\n1,2\n")
    text = write_report(tmp_path).read_text()
    row64 = next(line for line in text.splitlines() if line.startswith("| n64 |"))
    assert "| memorized | 800 | 3200 | 3200 | 2400 | 4 | 20.5 ± 0.5 (digits_cnn) | 0.420 [0.400, 0.440] |" in row64
    row256 = next(line for line in text.splitlines() if line.startswith("| n256 |"))
    assert "| generalized | 800 | >= 12800 | >= 12800 | >= 12000 | >= 16 |" in row256
    assert "broken: " in text and "fmem" in text.split("## Skipped runs")[1]
    assert "No fit" in text  # only one n has a tau_mem that is no bound
    images = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)
    assert {"n64/figures/curves.png", "n256/figures/losses.png"} <= set(images)
    assert any(p.endswith("_collapse.png") for p in images) and any(p.endswith("_scaling.png") for p in images)
    for rel in images:
        assert (tmp_path / rel).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_every_run_shows_samples_beside_nearest_images_at_tau_gen_and_tau_mem(tmp_path):
    make_run(tmp_path / "n64", 64, 0, [0, 0, 0, 0, 0, 0.05, 0.2, 0.4], nearest=STEPS)
    make_run(tmp_path / "silent", 64, 1, [0] * 8, nearest=STEPS, recognizable=0.1)
    text = write_report(tmp_path).read_text()
    details = text.split("### n64")[1].split("### silent")[0]
    assert "- at tau_gen 800 (evaluated checkpoint 800):" in details
    assert "![tau_gen 800](n64/figures/nearest_step_00000800.png)" in details
    assert "- at tau_mem 3200 (evaluated checkpoint 3200):" in details
    assert "![tau_mem 3200](n64/figures/nearest_step_00003200.png)" in details
    silent = text.split("### silent")[1]
    assert "- verdict: no generation" in silent and "- at tau_gen >= 12800 (evaluated checkpoint 12800):" in silent
    assert "| silent | " in text and "| no generation | >= 12800 |" in text
    assert (tmp_path / "silent" / "figures" / "nearest_step_00012800.png").is_file()


def test_report_without_nearest_files_says_so(tmp_path):
    make_run(tmp_path / "n64", 64, 0, [0] * 8)
    assert "No nearest-neighbour files (nearest/step_*.npz)" in write_report(tmp_path).read_text()


def test_report_fits_slope_across_n(tmp_path):
    for n in (64, 256):
        onset = STEPS.index(25 * n)
        make_run(tmp_path / f"n{n}", n, 0, [0.0] * onset + [0.1] * (8 - onset))
    text = write_report(tmp_path).read_text()
    assert "slope 1.00, interval undefined (2 points), over 2 runs whose tau_mem is no bound" in text


def test_fid_label_names_extractor():
    assert fid_label("lenet") == "FD (lenet features)"
    assert fid_label("inception_v3") == "FID (Inception)"


LAYERS = {"statistics": 1, "reading": 2, "reports": 3}


def _analysis_imports(path: Path) -> set[str]:
    """The freqdiff.analysis modules a source file imports (at any depth in the file)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names = [node.module] if isinstance(node, ast.ImportFrom) and node.module else \
            [a.name for a in node.names] if isinstance(node, ast.Import) else []
        found |= {name for name in names if name.startswith("freqdiff.analysis.")}
    return found


def test_analysis_layers_import_one_way_without_cycles():
    root = Path(freqdiff.analysis.__file__).parent
    modules = {".".join(("freqdiff.analysis", *p.relative_to(root).with_suffix("").parts)): p
               for p in root.rglob("*.py")}
    graph = {name.removesuffix(".__init__"): _analysis_imports(path) for name, path in modules.items()}
    for name, imports in graph.items():
        layer = LAYERS.get(name.split(".")[2], 0) if name.count(".") >= 2 else 0
        for target in imports:
            assert LAYERS[target.split(".")[2]] <= layer, f"{name} imports the upper layer {target}"
    done: set[str] = set()

    def visit(name: str, path: tuple[str, ...]) -> None:
        assert name not in path, f"import cycle: {' -> '.join(path + (name,))}"
        if name not in done:
            for target in graph.get(name, ()):
                visit(target, path + (name,))
            done.add(name)

    for name in graph:
        visit(name, ())
