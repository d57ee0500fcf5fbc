"""What freqdiff promises about the user's files: each command writes only into a directory it made or that is marked
as its own, never through a symlink, and refuses everything else before its first write, in one line naming the
path (exit code 2); checkpoints and states name their run and step; OSErrors (read-only folders, a full disk) are one
line. Every case runs through the real CLI and checks that nothing outside the run changed (for a symlink, the
bytes of its target)."""
from __future__ import annotations

import errno
import hashlib
import os
import shutil
from pathlib import Path

import pytest
import torch

from freqdiff.cli import main
from freqdiff.core.checkpoint import config_run_hash, run_hash
from freqdiff.core.io import LOCK_NAME, OWNER_FILE, TEMP_MARK, claim_output_dir, read_json, torch_save, write_json
from freqdiff.core.registry import FreqdiffError
from freqdiff.metrics.quality import GATES

FAST = {"n": "8", "test_size": "64", "steps": "20", "first_checkpoint": "5", "n_checkpoints": "2",
        "save_every": "5", "log_every": "5", "sampler.steps": "5", "n_samples": "32", "extractor": "pixels",
        "loss_draws": "1", "grid_size": "4"}
STEP5 = "checkpoints/step_00000005.pt"


def train_argv(out: Path, **flags: str) -> list[str]:
    return ["train", "--out", str(out), *[t for k, v in {**FAST, **flags}.items() for t in (f"--{k}", v)]]


def snapshot(root: Path) -> dict[str, str]:
    """Every entry below root, links not followed: a file's sha256, a link's target, a folder's name."""
    found = {}
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            path = Path(folder) / name
            rel = str(path.relative_to(root))
            if path.is_symlink():
                found[rel] = "-> " + os.readlink(path)
            elif path.is_file():
                found[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
            else:
                found[rel] = "/"
    return found


def refused(capsys: pytest.CaptureFixture[str], argv: list[str], *words: str, alone: bool = True) -> str:
    """Exit code 2, and stderr one line `freqdiff CMD: error: ...` holding every word: the only line when the refusal
    comes before any work (`alone`), else the last, after the progress bars of the work done."""
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2, err
    lines = err.strip().splitlines()
    assert lines[-1].startswith(f"freqdiff {argv[0]}: error: ") and err.count("error:") == 1, err
    assert "Traceback" not in err and (len(lines) == 1 or not alone), err
    for word in words:
        assert word in lines[-1], (word, lines[-1])
    return lines[-1]


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One tiny trained and evaluated run, copied by each test (run_in)."""
    run = tmp_path_factory.mktemp("owned") / "run"
    assert main(train_argv(run)) == 0
    assert main(["eval", str(run)]) == 0
    return run


@pytest.fixture
def run(trained: Path, tmp_path: Path) -> Path:
    """A copy of the trained run at tmp_path/run, beside tmp_path/outside (the user's files, which must not change)."""
    outside = tmp_path / "outside"
    (outside / "folder").mkdir(parents=True)
    (outside / "victim.txt").write_text("the user's precious bytes\n")
    return Path(shutil.copytree(trained, tmp_path / "run"))


def outside_of(run: Path) -> Path:
    return run.parent / "outside"


def recipes(run: Path) -> list[str]:
    """Two recipe folders, each holding a copy of the run, for compare and pareto."""
    for name in ("recipe-a", "recipe-b"):
        shutil.copytree(run, run.parent / name / "run")
    return [str(run.parent / "recipe-a"), str(run.parent / "recipe-b")]


# ---- symlinks inside a run: never followed, refused naming the link -------------------------------------------
LINKED = {  # entry of the run -> (command, whether the link points at a folder)
    LOCK_NAME: ("eval", False), "nearest": ("eval", True), "metrics.csv": ("eval", False),
    "figures": ("window", True), "window.json": ("window", False), "checkpoints": ("train", True),
    "samples": ("train", True), "states": ("train", True), "log.jsonl": ("train", False),
    "state.pt": ("train", False), "config.json": ("train", False),
}


LOCK_WRITERS = [(LOCK_NAME, command) for command in ("train", "window", "refine")]  # the lock was emptied through


@pytest.mark.parametrize("name, command", [(name, command) for name, (command, _) in LINKED.items()] + LOCK_WRITERS)
def test_a_symlink_in_a_run_is_refused_and_its_target_untouched(name: str, command: str, run: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    folder = LINKED[name][1]
    target = outside_of(run) / ("folder" if folder else "victim.txt")
    if (run / name).is_dir():
        shutil.rmtree(run / name)
    else:
        (run / name).unlink(missing_ok=True)
    (run / name).symlink_to(target)
    before, outside = snapshot(run), snapshot(outside_of(run))
    argv = train_argv(run) if command == "train" else [command, str(run)]
    refused(capsys, argv, str(run / name), "is a symlink", str(target))
    assert snapshot(outside_of(run)) == outside and snapshot(run) == before


def test_a_lock_that_is_a_folder_is_refused(run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (run / LOCK_NAME).unlink()
    (run / LOCK_NAME).mkdir()
    before = snapshot(run)
    refused(capsys, ["eval", str(run)], str(run / LOCK_NAME), "is a folder, not a file")
    refused(capsys, train_argv(run), str(run / LOCK_NAME), "is a folder, not a file")
    assert snapshot(run) == before


@pytest.mark.parametrize("name", ["checkpoints", "samples"])
def test_a_run_folder_that_is_a_file_is_refused_before_any_write(name: str, tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "fresh"
    run.mkdir()
    (run / name).write_text("not a folder")
    refused(capsys, train_argv(run), str(run / name), "is a file, not a folder")
    assert sorted(p.name for p in run.iterdir()) == [name]


def test_a_symlinked_temporary_is_removed_as_a_link_never_followed(run: Path) -> None:
    outside = snapshot(outside_of(run))
    leftover = run / f".metrics.csv.999999999-abcd1234{TEMP_MARK}.csv"  # a dead writer's temporary, as a link
    leftover.symlink_to(outside_of(run) / "victim.txt")
    assert main(["eval", str(run)]) == 0
    assert not os.path.lexists(leftover) and snapshot(outside_of(run)) == outside


# ---- reports and output directories: only freqdiff's own -------------------------------------------------------
def test_report_never_overwrites_a_users_report(run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    study = run.parent / "study"
    study.mkdir()
    shutil.move(run, study / "run")
    (study / "report.md").write_text("# My own notes on these runs\n")
    before = snapshot(study)
    refused(capsys, ["report", str(study)], str(study / "report.md"), "was not written by freqdiff")
    assert snapshot(study) == before  # not even the run's window.json


@pytest.mark.parametrize("name", ["report.md", "figures"])
def test_report_never_writes_through_a_link(name: str, run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    study = run.parent / "study"
    study.mkdir()
    shutil.move(run, study / "run")
    target = run.parent / "outside" / ("folder" if name == "figures" else "victim.txt")
    (study / name).symlink_to(target)
    before, outside = snapshot(study), snapshot(target.parent)
    refused(capsys, ["report", str(study)], str(study / name), "is a symlink")
    assert snapshot(study) == before and snapshot(target.parent) == outside


def users_folder(tmp_path: Path) -> Path:
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "thesis.tex").write_text("\\section{mine}\n")
    return mine


@pytest.mark.parametrize("command", ["compare", "pareto", "calibrate"])
def test_out_into_a_users_folder_is_refused_untouched(command: str, run: Path, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    mine, dirs = users_folder(tmp_path), recipes(run)
    before = snapshot(mine)
    argv = {"compare": ["compare", *dirs, "--out", str(mine)], "pareto": ["pareto", *dirs, "--out", str(mine)],
            "calibrate": ["calibrate", "--out", str(mine)]}[command]
    refused(capsys, argv, f"--out {mine}", "holds files freqdiff did not write (thesis.tex)")
    assert snapshot(mine) == before


def out_cases(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    (tmp_path / "a_file").write_text("x")
    (tmp_path / "a_link").symlink_to(tmp_path / "outside" / "folder")
    return {"a file": (tmp_path / "a_file", "is a file, not a folder"),
            "a link": (tmp_path / "a_link", "is a symlink"),
            "under /dev/null": (Path("/dev/null/freqdiff-out"), "cannot create this folder"),
            "/dev/null": (Path("/dev/null"), "is a file, not a folder"),
            "under /proc": (Path("/proc/freqdiff-out"), "cannot create this folder")}


@pytest.mark.parametrize("case", ["a file", "a link", "under /dev/null", "/dev/null", "under /proc"])
@pytest.mark.parametrize("command", ["train", "baseline", "compare", "pareto", "calibrate", "sweep"])
def test_a_bad_out_is_one_line(command: str, case: str, run: Path, tmp_path: Path,
                               capsys: pytest.CaptureFixture[str]) -> None:
    out, words = out_cases(tmp_path)[case]
    if command in ("train", "baseline") and case in ("a file", "/dev/null"):
        words = "is a file, not a directory"
    dirs = recipes(run) if command in ("compare", "pareto") else []
    before = snapshot(tmp_path)
    argv = {"train": train_argv(out),
            "baseline": ["baseline", "--model", "empirical", "--out", str(out), *train_argv(out)[3:]],
            "compare": ["compare", *dirs, "--out", str(out)], "pareto": ["pareto", *dirs, "--out", str(out)],
            "calibrate": ["calibrate", "--out", str(out)],
            "sweep": ["sweep", "--seeds", "0", "--steps_per_n", "0", "--out", str(out), *train_argv(out)[3:]]}[command]
    refused(capsys, argv, str(out), words)
    assert snapshot(tmp_path) == before


def test_calibrate_gates_of_the_wrong_kind_are_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "notes.json").write_text('["my", "list"]\n')
    (tmp_path / "text.txt").write_text("not json")
    (tmp_path / "folder").mkdir()
    package = GATES.read_bytes()
    cases = {tmp_path / "folder": "is a folder, not a file", tmp_path / "notes.json": "not a freqdiff gates file",
             tmp_path / "text.txt": "not a freqdiff gates file", Path("/dev/null"): "not a regular file",
             tmp_path / "missing" / "gates.json": "no such folder"}
    for gates, words in cases.items():
        before = snapshot(tmp_path)
        refused(capsys, ["calibrate", "--out", str(tmp_path / "cal"), "--gates", str(gates)], str(gates), words)
        assert snapshot(tmp_path) == before
    assert GATES.read_bytes() == package


def test_calibrate_writes_the_gate_into_out_not_into_the_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    import freqdiff.commands.calibrate as calibrate
    from freqdiff.core.io import read_csv

    def committed_rows(*args, **kwargs):  # the committed table, instead of measuring every set again
        rows = read_csv(Path(__file__).parents[1] / "results" / "calibration" / "calibration.csv")
        return [{k: (v if k in ("reference", "kind", "extractor", "generates") else
                     None if v == "" else float(v)) for k, v in r.items()} for r in rows if r["kind"] != "run"]

    monkeypatch.setattr(calibrate, "calibration_rows", committed_rows)
    package = GATES.read_bytes()
    assert main(["calibrate", "--out", str(tmp_path / "cal")]) == 0
    assert GATES.read_bytes() == package
    written, package_gate = read_json(tmp_path / "cal" / "gates.json")["digits_cnn"], read_json(GATES)["digits_cnn"]
    assert written["measure"] == package_gate["measure"]
    assert written["threshold"] == pytest.approx(package_gate["threshold"], abs=1e-6)
    assert "copy it to" in capsys.readouterr().out
    assert main(["calibrate", "--help"]) == 0
    assert "freqdiff/metrics/gates.json, which freqdiff reads, changes only" in " ".join(capsys.readouterr().out.split())


def test_calibrate_runs_with_a_step_that_is_no_number(run: Path, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    refused(capsys, ["calibrate", "--out", str(tmp_path / "cal"), "--runs", f"{run}:abc"], f"{run}:abc",
            "must be a whole number")
    assert not (tmp_path / "cal").exists()


def test_claim_output_dir_for_sweep(tmp_path: Path) -> None:
    """The function a sweep's --out calls: new or empty -> claimed and marked; its own -> accepted; else refused."""
    out = claim_output_dir(tmp_path / "new", "sweep.json")
    assert (out / OWNER_FILE).is_file()
    (out / "sweep.json").write_text("{}")
    assert claim_output_dir(out, "sweep.json") == out  # again: its own
    legacy = tmp_path / "legacy"
    legacy.mkdir()
    (legacy / "sweep.json").write_text("{}")
    (legacy / "n00008-seed0").mkdir()
    claim_output_dir(legacy, "sweep.json")
    assert not (legacy / OWNER_FILE).exists()  # recognised by its marker, left as it was
    mine = users_folder(tmp_path)
    with pytest.raises(FreqdiffError, match="holds files freqdiff did not write"):
        claim_output_dir(mine, "sweep.json")
    assert claim_output_dir(mine, "sweep.json", expected={"thesis.tex"}) == mine


# ---- provenance: a checkpoint or state names its run and its step ---------------------------------------------
def resave(path: Path, **changes) -> None:
    """Re-save a torch file with changed entries and a valid checksum (as another run or version would write it)."""
    saved = torch.load(path, weights_only=True)
    saved.pop("sha256")
    saved.update(changes)
    for key in [k for k, v in changes.items() if v is None]:
        del saved[key]
    torch_save(saved, path)


def fresh_eval(run: Path) -> None:
    """Forget the run's measurements, so eval loads every checkpoint again."""
    for name in ("metrics.csv", "eval_config.json"):
        (run / name).unlink()


def test_checkpoints_and_states_name_their_run_and_step(run: Path) -> None:
    expected = config_run_hash(run)
    assert expected == run_hash(read_json(run / "config.json"))
    for name in (STEP5, "state.pt", "states/step_00000005.pt"):
        saved = torch.load(run / name, weights_only=True)
        assert saved["run"] == expected and saved["step"] in (5, 20)


def test_eval_refuses_a_checkpoint_of_another_run(run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    resave(run / STEP5, run="0123456789abcdef")
    fresh_eval(run)
    refused(capsys, ["eval", str(run)], str(run / STEP5), "is from another run (config hash 0123456789abcdef",
            alone=False)


def test_eval_refuses_a_checkpoint_whose_step_is_not_its_name(run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    shutil.copyfile(run / "checkpoints" / "step_00000020.pt", run / STEP5)
    fresh_eval(run)
    refused(capsys, ["eval", str(run)], str(run / STEP5), "holds step 20, not step 5", alone=False)


def test_a_checkpoint_written_before_hashes_is_accepted(run: Path) -> None:
    for step in ("00000005", "00000020"):
        resave(run / "checkpoints" / f"step_{step}.pt", run=None)
    rows = (run / "metrics.csv").read_text()
    fresh_eval(run)
    assert main(["eval", str(run)]) == 0
    assert (run / "metrics.csv").read_text() == rows


def test_a_misnamed_checkpoint_is_named(run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    shutil.copyfile(run / STEP5, run / "checkpoints" / "step_abc.pt")
    refused(capsys, ["eval", str(run)], str(run / "checkpoints" / "step_abc.pt"), "not a checkpoint name")


def test_a_checkpoint_of_another_architecture_is_one_line(run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    saved = torch.load(run / STEP5, weights_only=True)
    name = next(iter(saved["model"]))
    resave(run / STEP5, model={**saved["model"], name: torch.zeros(3, 3)})
    fresh_eval(run)
    refused(capsys, ["eval", str(run)], str(run / STEP5), "weights of another model", name, alone=False)


def unfinished(run: Path) -> Path:
    """The run as if killed after step 5: state.pt at step 5, no later checkpoint."""
    shutil.copyfile(run / "states" / "step_00000005.pt", run / "state.pt")
    (run / "state.prev.pt").unlink()
    (run / "checkpoints" / "step_00000020.pt").unlink()
    return run / "state.pt"


@pytest.mark.parametrize("damage", ["another run", "beyond --steps", "missing keys", "another architecture"])
def test_resume_refuses_a_state_that_is_not_this_runs(damage: str, run: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    state = unfinished(run)
    saved = torch.load(state, weights_only=True)
    change, words = {
        "another run": ({"run": "0123456789abcdef"}, ["is from another run"]),
        "beyond --steps": ({"step": 30}, ["is at step 30, beyond this run's --steps 20"]),
        "missing keys": ({"optimizer": None}, ["not a resume state (missing optimizer)"]),
        "another architecture": ({"model": {k: torch.zeros(2) for k in saved["model"]}}, ["weights of another model"]),
    }[damage]
    resave(state, **change)
    before = snapshot(run)
    refused(capsys, train_argv(run), str(state), *words)
    assert snapshot(run) == before  # config.json rewritten as it was, the lock taken and given back


# ---- read-only folders and a full disk: one line naming the path ----------------------------------------------
def read_only(monkeypatch: pytest.MonkeyPatch, root: Path) -> None:
    """Every write below root fails as on a read-only mount (the tests may run as root, where chmod does not)."""
    inside = lambda path: os.path.abspath(os.fsdecode(path)).startswith(os.path.abspath(root) + os.sep)  # noqa: E731
    writing = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC

    def guard(real, check):
        def wrapped(*args, **kwargs):
            if check(*args, **kwargs):
                raise OSError(errno.EROFS, os.strerror(errno.EROFS), os.fsdecode(args[0]))
            return real(*args, **kwargs)
        return wrapped

    monkeypatch.setattr(os, "open", guard(os.open, lambda path, flags, *a, **k: inside(path) and flags & writing))
    for name in ("mkdir", "replace", "rename", "unlink", "chmod"):
        monkeypatch.setattr(os, name, guard(getattr(os, name), lambda path, *a, **k: inside(path)))


@pytest.mark.parametrize("command", ["train", "eval", "window", "report", "compare"])
def test_a_read_only_run_is_one_line(command: str, run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    before = snapshot(tmp_path)
    if command == "compare":  # compare only reads the runs: it succeeds, and a read-only --out is one line
        dirs, out = recipes(run), tmp_path / "cmp"
        before = snapshot(tmp_path)
        read_only(monkeypatch, tmp_path)
        refused(capsys, ["compare", *dirs, "--out", str(out)], str(out), "Read-only file system")
        monkeypatch.undo()
        assert snapshot(tmp_path) == before
        read_only(monkeypatch, tmp_path / "recipe-a")
        assert main(["compare", *dirs, "--out", str(out)]) == 0
        return
    read_only(monkeypatch, tmp_path)
    argv = {"train": train_argv(run), "report": ["report", str(tmp_path)]}.get(command, [command, str(run)])
    refused(capsys, argv, str(tmp_path), "Read-only file system", alone=command != "report")
    monkeypatch.undo()
    assert snapshot(tmp_path) == before


def test_a_full_disk_during_train_and_eval_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    real = os.replace

    def full(src, dst, *args, **kwargs):
        if "checkpoints" in os.fsdecode(dst) or os.fsdecode(dst).endswith("metrics.csv"):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(src, dst, *args, **kwargs)

    monkeypatch.setattr(os, "replace", full)
    run = tmp_path / "run"
    refused(capsys, train_argv(run), str(run / STEP5), "No space left on device", "left as it was", alone=False)
    assert not list(run.rglob(f"*{TEMP_MARK}*"))
    monkeypatch.undo()
    assert main(train_argv(run)) == 0  # resumes once there is room
    monkeypatch.setattr(os, "replace", full)
    refused(capsys, ["eval", str(run)], str(run / "metrics.csv"), "No space left on device", alone=False)
    assert not (run / "metrics.csv").exists() and not list(run.rglob(f"*{TEMP_MARK}*"))


# ---- paths that config.json names for reading stay inside the run -----------------------------------------------
def test_config_json_may_not_make_eval_read_outside_the_run(run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    record = read_json(run / "config.json")
    victim = outside_of(run) / "victim.txt"
    record["eval"]["extractor_weights"] = str(victim)
    write_json(run / "config.json", record)
    fresh_eval(run)
    refused(capsys, ["eval", str(run)], str(victim), "outside the run", f"--extractor.weights {victim}")
