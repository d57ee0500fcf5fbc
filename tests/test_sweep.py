"""freqdiff sweep: end to end on a tiny grid, skip finished runs, resume unfinished ones, clear errors."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from conftest import TINY
from freqdiff.commands.sweep import job_command, parse_sweep_argv, plan, sweep_main
from freqdiff.core.registry import FreqdiffError

FAST = {k: v for k, v in TINY.items() if k not in ("n", "steps")}


def argv(out: Path, **extra: str) -> list[str]:
    flags = {"recipe": "baseline", "n": "8,12", "seeds": "0", "steps": "16", "steps_per_n": "0",
             "out": str(out), **FAST, **extra}
    return [token for key, value in flags.items() for token in (f"--{key}", value)]


def test_tiny_sweep_end_to_end_then_skips_finished_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "sweep"
    assert sweep_main(argv(out)) == 0
    runs = sorted(p.name for p in out.iterdir() if (p / "config.json").exists())
    assert runs == ["n00008-seed0", "n00012-seed0"]
    for run in runs:
        window = json.loads((out / run / "window.json").read_text())
        assert {"tau_gen", "tau_mem", "width", "ratio", "n"} <= set(window)
    assert (out / "report.md").exists()
    assert json.loads((out / runs[0] / "config.json").read_text())["data"]["test_size"] == 64

    def must_not_train(*args, **kwargs):
        raise AssertionError("a finished run was trained again")

    monkeypatch.setattr("freqdiff.commands.sweep.train_runs", must_not_train)
    assert sweep_main(argv(out)) == 0


def test_interrupted_sweep_redoes_only_the_unfinished_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "sweep"
    assert sweep_main(argv(out, report="false")) == 0
    (out / "n00012-seed0" / "window.json").unlink()  # as if killed during its last stage
    trained: list[str] = []
    import freqdiff.commands.sweep as sweep_module

    real_train = sweep_module.train_runs

    def recording(runs):
        trained.extend(Path(run_dir).name for _, run_dir in runs)
        return real_train(runs)

    monkeypatch.setattr(sweep_module, "train_runs", recording)
    assert sweep_main(argv(out, report="false")) == 0
    assert trained == ["n00012-seed0"]
    assert (out / "n00012-seed0" / "window.json").exists()


@pytest.mark.parametrize("n, words", [("8,8,16", ["duplicate", "8"]), ("8,5000", ["5000", "outside"])])
def test_bad_n_grids(tmp_path: Path, n: str, words: list[str]) -> None:
    options, flags = parse_sweep_argv(argv(tmp_path, n=n))
    with pytest.raises(FreqdiffError) as err:
        plan(options, flags)
    assert all(w in str(err.value) for w in words)


def test_bad_recipe_and_launcher(tmp_path: Path) -> None:
    with pytest.raises(FreqdiffError, match="baseline"):
        plan(*parse_sweep_argv(argv(tmp_path, recipe="baselin")))
    with pytest.raises(FreqdiffError, match="submitit"):
        parse_sweep_argv(argv(tmp_path, launcher="pbs"))


def test_steps_grow_with_n_and_runs_share_the_test_set(tmp_path: Path) -> None:
    runs = plan(*parse_sweep_argv(argv(tmp_path, n="8,16,32", seeds="0,1", steps_per_n="100")))
    assert [(r.n, r.seed) for r in runs] == [(n, s) for n in (8, 16, 32) for s in (0, 1)]
    assert [r.config().train.steps for r in runs[::2]] == [800, 1600, 3200]
    assert len({(r.config().data.test_size, r.config().data.data_seed) for r in runs}) == 1


def test_cluster_jobs_are_accelerate_launches_in_one_array(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Job generation without a cluster: a fake submitit executor records what would be submitted."""
    import submitit

    recorded: dict = {"jobs": []}

    class FakeExecutor:
        def __init__(self, folder: str, cluster=None) -> None:
            recorded["folder"] = folder

        def update_parameters(self, **params) -> None:
            recorded["params"] = params

        def batch(self):
            recorded["batched"] = True
            return __import__("contextlib").nullcontext()

        def submit(self, fn):
            recorded["jobs"].append(fn)
            return type("Job", (), {"job_id": f"42_{len(recorded['jobs'])}"})()

    monkeypatch.setattr(submitit, "AutoExecutor", FakeExecutor)
    assert sweep_main(argv(tmp_path / "s", launcher="submitit", slurm_gpus="4")) == 0
    assert recorded["batched"] and len(recorded["jobs"]) == 2
    assert recorded["params"]["gpus_per_node"] == 4
    command = recorded["jobs"][0].command[-1]
    assert command.startswith("accelerate launch --multi_gpu --num_processes 4 -m freqdiff.cli train --out ")
    assert "--n 8" in command and "freqdiff eval" in command and "freqdiff window" in command
    run = plan(*parse_sweep_argv(argv(tmp_path / "s")))[0]
    assert job_command(run, 1).startswith("accelerate launch --num_processes 1 ")


def test_swapping_the_regularizer_writes_under_its_own_name(tmp_path: Path) -> None:
    tokens = [t for t in argv(tmp_path) if t not in ("--out", str(tmp_path))]
    options, flags = parse_sweep_argv([*tokens, "--regularizer", "fourier_penalty", "--regularizer.cutoff", "0.3"])
    runs = plan(options, flags)
    assert runs[0].run_dir.parent == Path("results/baseline-fourier_penalty")
    assert runs[0].config().to_dict()["regularizer"]["params"]["cutoff"] == 0.3
    options, flags = parse_sweep_argv(tokens)
    assert plan(options, flags)[0].run_dir.parent == Path("results/baseline")


def test_one_and_two_workers_give_identical_runs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The default uses every core (worker processes sharing the runs out): the numbers must not depend on it."""
    flags = {"n": "8,12", "seeds": "0,1", "report": "false"}
    assert sweep_main([*argv(tmp_path / "one", **flags), "--workers", "1"]) == 0
    assert "worker processes" not in capsys.readouterr().out
    assert sweep_main([*argv(tmp_path / "two", **flags), "--workers", "2"]) == 0
    assert "sweep: 2 worker processes" in capsys.readouterr().out
    runs = sorted(p.name for p in (tmp_path / "one").iterdir() if (p / "config.json").exists())
    assert len(runs) == 4
    for run in runs:
        one, two = tmp_path / "one" / run, tmp_path / "two" / run
        weights = [torch.load(d / "state.pt", weights_only=True)["model"] for d in (one, two)]
        assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0]), f"{run}: weights differ"
        assert (one / "metrics.csv").read_text() == (two / "metrics.csv").read_text()
        window = [json.loads((d / "window.json").read_text()) for d in (one, two)]
        assert window[0] == window[1]
