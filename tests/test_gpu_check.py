"""bench/gpu.sh, the GPU check: its --cpu dry run runs every section and line on the CPU (so a first GPU run cannot
fail on a typo), and its CUDA-against-CPU comparisons fail on curves and counts that differ."""
from __future__ import annotations

import importlib.util
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("gpu_check", ROOT / "bench" / "gpu_check.py")
gpu_check = importlib.util.module_from_spec(_spec)
sys.modules["gpu_check"] = gpu_check  # its dataclasses look their module up
_spec.loader.exec_module(gpu_check)

DRY_RUN_TIMEOUT_S = 600  # about 40-70 s on 2 cores; generous for a loaded machine


def run_check(*flags: str, timeout: float = DRY_RUN_TIMEOUT_S, hide: Path | None = None) -> subprocess.CompletedProcess:
    """bash bench/gpu.sh FLAGS; `hide`: a folder put first on PYTHONPATH (stand-in modules that fail to import)."""
    env = {**os.environ, "PYTHON": sys.executable}
    if hide is not None:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(hide), env.get("PYTHONPATH", "")]))
    return subprocess.run(["bash", str(ROOT / "bench" / "gpu.sh"), *flags], capture_output=True, text=True,
                          timeout=timeout, env=env)


@pytest.fixture(scope="module")
def dry_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[subprocess.CompletedProcess, list[dict]]:
    report = tmp_path_factory.mktemp("gpu_check") / "rows.json"
    result = run_check("--cpu", "--json", str(report))
    assert result.returncode == 0, f"{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
    return result, json.loads(report.read_text())["rows"]


def rows_of(rows: list[dict], section: str) -> dict[str, dict]:
    return {r["what"]: r for r in rows if r["section"] == section}


def one(rows: dict[str, dict], prefix: str) -> dict:
    found = [r for what, r in rows.items() if what.startswith(prefix)]
    assert len(found) == 1, f"{prefix!r}: {list(rows)}"
    return found[0]


def test_dry_run_prints_every_section_in_one_table(dry_run: tuple) -> None:
    result, rows = dry_run
    assert {r["section"] for r in rows} == {*gpu_check.SECTIONS, "total"}
    assert not [r for r in rows if r["check"] == "fail"]
    lines = result.stdout.splitlines()
    columns = ["section", "what", "value", "unit", "check"]
    header = next(i for i, line in enumerate(lines) if line.split()[:5] == columns)
    assert len(lines) >= header + 2 + len(rows)  # header, rule, then one line per row
    for row in rows:
        assert any(line.startswith(row["section"]) and row["what"] in line and row["value"] in line for line in lines)
    for section in gpu_check.SECTIONS:
        assert one(rows_of(rows, section), "section wall time")["check"] == "ok"
    total = one(rows_of(rows, "total"), "wall time of the check")
    assert total["check"] == "ok" and float(total["value"]) < gpu_check.BUDGET_S


def test_dry_run_compares_cpu_with_cpu_through_the_parity_code(dry_run: tuple) -> None:
    parity = rows_of(dry_run[1], "parity")
    assert one(parity, "devices compared")["value"] == "cpu vs cpu"
    for prefix in ("loss at step 1, same draws", "loss curve, same draws", "loss curve, own RNG",
                   "f_mem of 32 samples, same noise", "mean |d1/d2 diff|", "f_mem of the exact memorizer",
                   "f_mem, own RNG"):
        assert one(parity, prefix)["check"] == "ok"
    # the same process on one device: the curves are identical, and the memorizer copies
    assert float(one(parity, "loss curve, same draws")["value"]) == 0.0
    assert one(parity, "f_mem of the exact memorizer")["value"] == "1.000 / 1.000"


def test_dry_run_measures_every_k_the_search_and_the_evaluation(dry_run: tuple) -> None:
    rows = dry_run[1]
    throughput = rows_of(rows, "throughput")
    assert one(throughput, "mixed precision in effect")["value"] == "bf16"
    assert float(one(throughput, "FLOPs of one member's step")["value"]) > 0
    for k in (1, 2, 4, 8):
        assert float(one(throughput, f"K={k}: steps/s")["value"]) > 0
        assert "NOMINAL" in one(throughput, f"K={k}: MFU")["what"]  # --cpu: no real peak, and it says so
    fmem = rows_of(rows, "fmem")
    for prefix in ("search on cpu, index built", "search on cpu, index reused", "freqdiff's search on cpu",
                   "faiss IndexFlatL2 on cpu"):
        one(fmem, prefix)
    assert one(fmem, "same nearest image: cpu / freqdiff cpu")["check"] == "ok"
    assert one(fmem, "f_mem: cpu / cpu")["check"] == "ok"
    evaluation = rows_of(rows, "eval")
    assert float(one(evaluation, "full evaluation of 1 checkpoint")["value"]) > 0
    assert one(evaluation, "evaluate_run sampled and measured on")["value"] == "cpu"
    assert one(evaluation, "metrics.csv")["check"] == "ok"


def curve(seed: int, steps: int = 300, noise: float = 0.05) -> list[float]:
    rng = np.random.default_rng(seed)
    return list(0.1 + np.exp(-np.linspace(0, 4, steps)) + noise * rng.standard_normal(steps) ** 2)


def test_same_draws_tolerances_pass_rounding_and_fail_a_perturbed_curve() -> None:
    base = curve(0)
    rng = np.random.default_rng(1)
    rounded = [v * (1 + 5e-4 * rng.standard_normal()) for v in base]  # TF32-sized noise on every step
    assert gpu_check.first_step_diff(rounded, base) <= gpu_check.TOL_FIRST
    assert gpu_check.window_rel_diff(rounded, base, 30) <= gpu_check.TOL_WINDOW
    assert gpu_check.window_rel_diff(base, base, 30) == 0.0
    assert gpu_check.first_step_diff([base[0] * 1.01, *base[1:]], base) > gpu_check.TOL_FIRST
    drifted = [v * (1 + 0.05 * i / len(base)) for i, v in enumerate(base)]  # 5% off by the end
    assert gpu_check.window_rel_diff(drifted, base, 30) > gpu_check.TOL_WINDOW
    assert gpu_check.window_rel_diff(base[:-1], base, 30) == math.inf  # a missing step is a failure


def test_own_rng_tolerance_passes_independent_noise_and_fails_a_shift() -> None:
    a, b = curve(2), curve(3)
    assert gpu_check.window_z(a, b, 30) <= gpu_check.Z_MAX
    assert gpu_check.window_z(a, a, 30) == 0.0
    shifted = [v + 0.1 for v in b]  # a bias of 1.4 per-step sd (0.05 chi2(1) noise: sd 0.07)
    assert gpu_check.window_z(a, shifted, 30) > gpu_check.Z_MAX
    with pytest.raises(ValueError):
        gpu_check.windows([1.0, 2.0], 5)


def test_fmem_tolerance() -> None:
    n = 256
    assert abs(0.5 - 0.46) <= gpu_check.fmem_tolerance(0.5, 0.46, n)
    assert abs(0.5 - 0.3) > gpu_check.fmem_tolerance(0.5, 0.3, n)
    assert gpu_check.fmem_tolerance(0.0, 0.0, n) == pytest.approx(1 / n)  # one sample apart still passes
    assert 0.1 > gpu_check.fmem_tolerance(0.0, 0.1, n)  # a model that copies on one device only


def test_peak_flops_by_device_name() -> None:
    assert gpu_check.peak_flops("NVIDIA H100 80GB HBM3", cpu=False)[0] == 989.4e12
    assert gpu_check.peak_flops("NVIDIA H100 PCIe", cpu=False)[0] == 756e12
    assert gpu_check.peak_flops("NVIDIA H200", cpu=False)[0] == 989.4e12
    assert gpu_check.peak_flops("Tesla T4", cpu=False)[0] is None
    assert "NOMINAL" in gpu_check.peak_flops("cpu", cpu=True)[1]
    assert gpu_check.peak_flops("Tesla T4", cpu=False, override_tflops=65)[0] == 65e12


def test_without_faiss_the_search_section_says_so(tmp_path: Path) -> None:
    (tmp_path / "faiss.py").write_text("raise ImportError('faiss hidden by the test')\n")
    result = run_check("--cpu", "--sections", "fmem", timeout=300, hide=tmp_path)
    assert result.returncode == 0, result.stdout[-3000:]
    assert "faiss-cpu not installed" in result.stdout
    assert "same nearest image: cpu / freqdiff cpu" in result.stdout


def test_a_section_that_raises_is_a_failed_row_with_its_traceback(tmp_path: Path) -> None:
    (tmp_path / "accelerate.py").write_text("raise ImportError('accelerate hidden by the test')\n")
    result = run_check("--cpu", "--sections", "env", timeout=120, hide=tmp_path)
    assert result.returncode == 1
    wall = next(line for line in result.stdout.splitlines() if "section wall time" in line)
    assert "exit 1" in wall and wall.rstrip().endswith("fail")
    assert "accelerate hidden by the test" in result.stdout  # the child's traceback follows the table


def test_a_section_past_its_cap_is_a_failed_row_and_the_table_still_prints() -> None:
    result = run_check("--cpu", "--sections", "parity", "--budget", "10", timeout=120)  # parity's cap: 2.5 s
    assert result.returncode == 1
    assert "ran past its cap" in result.stdout
    assert any(line.startswith("total") for line in result.stdout.splitlines())
    spent = run_check("--cpu", "--sections", "env", "--budget", "1", timeout=60)
    assert spent.returncode == 1 and "not run: the budget is spent" in spent.stdout
