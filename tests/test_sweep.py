"""freqdiff sweep: end to end on a tiny grid, skip finished runs, resume unfinished ones, clear errors."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from conftest import TINY, tiny_config
from freqdiff.cli import main
from freqdiff.commands.sweep import check_out, job_command, parse_sweep_argv, plan, sweep_main, variant_dir
from freqdiff.core.registry import FreqdiffError
from freqdiff.train.grouping import group_runs

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
    flags = {"report": "false", "batch_size": "4"}  # one batch size: n8 and n12 train as one stack
    assert sweep_main(argv(out, **flags)) == 0
    assert json.loads((out / "sweep.json").read_text())["ensemble"] == 2  # the planned stack size, for a resume
    (out / "n00012-seed0" / "window.json").unlink()  # as if killed during its last stage
    finished = {name: (out / "n00008-seed0" / name).read_bytes() for name in ("state.pt", "metrics.csv", "window.json")}
    trained: list[list[str]] = []
    evaluated: list[str] = []
    import freqdiff.commands.sweep as sweep_module

    real_train, real_evaluate = sweep_module.train_runs, sweep_module.evaluate_run

    def recording(runs, **_):
        trained.append([Path(run_dir).name for _, run_dir in runs])
        return real_train(runs, **_)

    monkeypatch.setattr(sweep_module, "train_runs", recording)
    monkeypatch.setattr(sweep_module, "evaluate_run", lambda run_dir: evaluated.append(run_dir.name) or real_evaluate(run_dir))
    assert sweep_main(argv(out, **flags)) == 0
    assert trained == [["n00008-seed0", "n00012-seed0"]]  # the planned stack, whole: its finished member only loaded
    assert evaluated == ["n00012-seed0"]
    assert (out / "n00012-seed0" / "window.json").exists()
    assert {name: (out / "n00008-seed0" / name).read_bytes() for name in finished} == finished


def test_resumed_sweeps_group_every_planned_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The stacks come from the plan, never from what is left: with n8 done, n12 still trains beside it (not with
    n16), and n16 alone, as in the uninterrupted sweep (tests/test_sweep_faults.py checks the weights)."""
    import freqdiff.commands.sweep as sweep_module

    runs = plan(*parse_sweep_argv(argv(tmp_path, n="8,12,16", batch_size="4")))
    trained: list[list[str]] = []
    monkeypatch.setattr(sweep_module, "is_done", lambda run: run.n == 8)
    monkeypatch.setattr(sweep_module, "train_runs", lambda pairs, **_: trained.append([d.name for _, d in pairs]))
    monkeypatch.setattr(sweep_module, "evaluate_run", lambda run_dir: None)
    monkeypatch.setattr(sweep_module, "window_main", lambda run_dir: None)
    sweep_module.run_local(runs, 2)
    assert trained == [["n00008-seed0", "n00012-seed0"], ["n00016-seed0"]]


def test_runs_that_cannot_share_a_stack_are_never_grouped() -> None:
    """Only n, seed, steps and numeric regularizer parameters may differ inside a stack (members.check_members)."""
    configs = [tiny_config(n="8", batch_size="4", **flags) for flags in
               ({"lr": "1e-3"}, {"lr": "2e-3"}, {"lr": "1e-3", "seed": "1"}, {"lr": "1e-3", "n_samples": "40"})]
    assert group_runs(configs, 8) == [[0, 2], [1], [3]]


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


def test_one_and_two_workers_give_identical_runs(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    """The default uses every core (worker processes sharing the runs out): the numbers must not depend on it,
    and the summary is printed once (by the caller, not again by the workers). Stacks of 2 leave n16 alone: a lone
    run trains on one worker, never data-parallel, as it does with one worker."""
    flags = {"n": "8,12,16", "seeds": "0", "ensemble": "2", "report": "false"}
    assert sweep_main([*argv(tmp_path / "one", **flags), "--workers", "1"]) == 0
    alone = capfd.readouterr().out
    assert "worker processes" not in alone
    assert sweep_main([*argv(tmp_path / "two", **flags), "--workers", "2"]) == 0
    shared = capfd.readouterr().out
    assert "sweep: 2 worker processes" in shared
    summary = alone.strip().splitlines()[-1].partition(": ")[2]  # the scaling summary's last line, less its name
    assert summary and shared.count(summary) == 1, shared
    runs = sorted(p.name for p in (tmp_path / "one").iterdir() if (p / "config.json").exists())
    assert len(runs) == 3
    for run in runs:
        one, two = tmp_path / "one" / run, tmp_path / "two" / run
        weights = [torch.load(d / "state.pt", weights_only=True)["model"] for d in (one, two)]
        assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0]), f"{run}: weights differ"
        assert (one / "metrics.csv").read_text() == (two / "metrics.csv").read_text()
        window = [json.loads((d / "window.json").read_text()) for d in (one, two)]
        assert window[0] == window[1]


def refused(capsys: pytest.CaptureFixture[str], argv: list[str], *words: str) -> str:
    """The CLI exits 2 with one line `freqdiff CMD: error: ...` holding every word."""
    capsys.readouterr()
    code = main(argv)
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and err.startswith(f"freqdiff {argv[0]}: error: "), err
    assert all(word in err for word in words), (words, err)
    return err


@pytest.mark.parametrize("extra, words", [
    ({"seeds": "0,0"}, ["--seeds: duplicate values [0] in [0, 0]"]),
    ({"vary": "lr=1e-3,2e-3,1e-3"}, ["--vary lr: duplicate values ['1e-3'] in ['1e-3', '2e-3', '1e-3']"]),
    ({"vary": "lr=1e-3,0.001"}, ["lr-1e-3/n00008-seed0 and ", "lr-0.001/n00008-seed0 would be the same run"]),
    ({"vary": "seed=0,1"}, ["--vary seed: the sweep sets each run's seed from --seeds"]),
    ({"vary": "n=8,16"}, ["--vary n: the sweep sets each run's n from --n"]),
    ({"vary": "steps=10,20"}, ["--vary steps:", "--steps_per_n"]),
    ({"vary": "lr=1e-3,2e-3", "lr": "1e-3"}, ["--lr is varied by the sweep"]),
    ({"seed": "3"}, ["--seed: a sweep sets each run's seed from --seeds"]),
])
def test_what_a_sweep_would_shadow_or_repeat_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                        extra: dict[str, str], words: list[str]) -> None:
    refused(capsys, ["sweep", *argv(tmp_path / "out", **extra)], *words)
    assert not (tmp_path / "out").exists()


def test_variant_directories_never_leave_out(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--vary dataset.key=images,../../../../X once trained a run outside --out: the name is made safe, and distinct.
    The variants train on different data, which pareto refuses to compare: the sweep once failed at its end; it
    finishes and says in one line why it wrote no pareto.md."""
    data = tmp_path / "data.npz"
    images = torch.rand(100, 8, 8, generator=torch.Generator().manual_seed(0)).numpy()
    __import__("numpy").savez(data, images=images, **{"../../../../X": images[::-1].copy()})
    out = tmp_path / "a" / "out"
    flags = {"dataset": "npz", "dataset.path": str(data), "vary": "dataset.key=images,../../../../X", "n": "8",
             "report": "false"}
    assert sweep_main(argv(out, **flags)) == 0
    assert ("strengths: no pareto.md: the variants train on different data (they differ in dataset.params.key), "
            "which pareto does not compare") in capsys.readouterr().out and not (out / "pareto.md").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "data.npz"] and not (tmp_path / "X").exists()
    variants = sorted(p.name for p in out.iterdir() if p.is_dir())
    assert variants[0].startswith("key-.._.._.._.._X-") and variants[1] == "key-images"
    assert json.loads((out / variants[0] / "n00008-seed0" / "config.json").read_text())["dataset"]["params"]["key"] \
        == "../../../../X"
    assert (out / variants[0] / "n00008-seed0" / "window.json").exists()
    assert variant_dir("key-a/b") != variant_dir("key-a_b") == "key-a_b" and "/" not in variant_dir("x/../..")


def test_out_into_a_users_folder_is_refused_untouched(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    mine = tmp_path / "mine"
    (mine / "photos").mkdir(parents=True)
    (mine / "notes.txt").write_text("mine")
    refused(capsys, ["sweep", *argv(mine)], f"--out {mine}: holds files freqdiff did not write (notes.txt, photos)",
            "nothing was written")
    assert sorted(p.name for p in mine.iterdir()) == ["notes.txt", "photos"]
    assert not any((mine / "photos").iterdir()) and (mine / "notes.txt").read_text() == "mine"
    refused(capsys, ["sweep", *argv(mine / "notes.txt")], "is a file")
    check_out(plan(*parse_sweep_argv(argv(tmp_path / "empty"))))  # new or empty: fine
    (tmp_path / "empty").mkdir()
    check_out(plan(*parse_sweep_argv(argv(tmp_path / "empty"))))


def test_a_rerun_with_other_settings_is_refused_naming_the_keys(tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "sweep"
    assert sweep_main(argv(out, n="8", report="false")) == 0
    before = {str(p): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    refused(capsys, ["sweep", *argv(out, n="8", lr="2e-3", n_samples="40")],
            "holds runs made with other settings (differ in eval.n_samples, train.lr: n00008-seed0)")
    refused(capsys, ["sweep", *argv(out, n="12", lr="2e-3")], "differ in train.lr: n00008-seed0")  # an earlier grid
    assert {str(p): p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
    check_out(plan(*parse_sweep_argv(argv(out, n="8,12"))))  # the same settings over more n: a sweep extended
    check_out(plan(*parse_sweep_argv(argv(out, n="8", log_every="2"))))  # what a resume may change


@pytest.mark.parametrize("args, words", [(["bogus"], "unexpected argument 'bogus'"),
                                         (["--bogus", "1"], "unknown option --bogus")])
def test_list_takes_no_arguments(capsys: pytest.CaptureFixture[str], args: list[str], words: str) -> None:
    assert refused(capsys, ["list", *args], words, "`freqdiff list` takes none")
