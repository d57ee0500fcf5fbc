"""Faults beyond a killed train or eval: one writer per run (a lock naming its holder, stale locks taken over
atomically), SIGKILLed sweeps that resume to the same metrics, killed reports and comparisons that leave the
previous outputs intact, and the temporaries of killed writers cleaned up."""
from __future__ import annotations

import hashlib
import os
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from freqdiff.cli import main
from freqdiff.core.io import LOCK_NAME, TEMP_MARK, RunLock, write_text
from freqdiff.core.registry import FreqdiffError

FAST = {"n": "8", "test_size": "64", "steps": "20", "first_checkpoint": "5", "n_checkpoints": "2",
        "save_every": "5", "log_every": "5", "sampler.steps": "5", "n_samples": "32", "extractor": "pixels",
        "loss_draws": "1", "grid_size": "4"}
REPO = Path(__file__).resolve().parents[1]

# Runs the freqdiff CLI and SIGKILLs itself as it is about to rename the nth temporary onto a file named TARGET
# ("*": any file): the moment a write is complete on disk but not yet committed.
KILLER = """
import os, signal, sys
from pathlib import Path
target, nth, real, seen = sys.argv[1], int(sys.argv[2]), os.replace, [0]
def replace(src, dst, *args, **kwargs):
    if target in ("*", Path(dst).name):
        seen[0] += 1
        if seen[0] == nth:
            os.kill(os.getpid(), signal.SIGKILL)
    return real(src, dst, *args, **kwargs)
os.replace = replace
from freqdiff.cli import main
sys.exit(main(sys.argv[3:]))
"""


def flags(**extra: str) -> list[str]:
    return [t for k, v in {**FAST, **extra}.items() for t in (f"--{k}", v)]


def cli_killed_at(target: str, nth: int, *argv: str) -> None:
    result = subprocess.run([sys.executable, "-c", KILLER, target, str(nth), *argv], cwd=REPO, capture_output=True)
    assert result.returncode == -signal.SIGKILL, result.stderr.decode()[-2000:]


def snapshot(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def temps(root: Path) -> list[Path]:
    return sorted(root.rglob(f"*{TEMP_MARK}*"))


def fork(body) -> tuple[int, int]:
    """Fork a child that runs body(report) and then waits to be killed; returns (pid, read end of `report`).

    body writes one byte through `report`; the parent ends the child with end_child (SIGKILL: a holder's
    lock dies with it)."""
    report_r, report_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never return into pytest
        try:
            body(lambda byte: os.write(report_w, byte))
            signal.pause()
        finally:
            os._exit(0)
    os.close(report_w)
    return pid, report_r


def end_child(pid: int) -> None:
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)


def take_lock(directory: Path):
    def body(report) -> None:
        try:
            RunLock(directory).acquire()
        except FreqdiffError:
            report(b"0")
            return
        report(b"1")
    return body


# ---- one writer per run ------------------------------------------------------------------------------------
def test_a_second_writer_is_refused_naming_the_holder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "run"
    run.mkdir()
    pid, report = fork(take_lock(run))
    assert os.read(report, 1) == b"1"
    try:
        assert main(["train", "--out", str(run), *flags()]) == 2
        err = capsys.readouterr().err.strip()
        assert err == (f"freqdiff train: error: {run} is being written by pid {pid} on host {socket.gethostname()} "
                       f"(lock {run / LOCK_NAME}); wait for it to finish, or stop it")
        assert sorted(p.name for p in run.iterdir()) == [LOCK_NAME]  # refused before writing config.json
    finally:
        end_child(pid)


def test_a_stale_lock_is_taken_over_and_its_temporaries_removed(tmp_path: Path) -> None:
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)

    def killed_holder(report) -> None:
        RunLock(run).acquire()
        (run / "checkpoints" / f".step_00000005.pt.{os.getpid()}-abcd1234{TEMP_MARK}.pt").write_bytes(b"half")
        os.kill(os.getpid(), signal.SIGKILL)

    pid, _ = fork(killed_holder)
    os.waitpid(pid, 0)
    assert (run / LOCK_NAME).read_text().startswith(f"pid {pid} on host ")  # the dead holder is still named
    live = run / f".config.json.{os.getpid()}-efgh5678{TEMP_MARK}.json"  # a live writer's temporary stays
    live.write_text("{}")
    with RunLock(run):
        assert (run / LOCK_NAME).read_text() == f"pid {os.getpid()} on host {socket.gethostname()}\n"
        assert temps(run) == [live]


def test_only_one_of_many_processes_takes_a_stale_lock(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / LOCK_NAME).write_text("pid 999999999 on host gone\n")  # a lock file nobody holds any more
    start_r, start_w = os.pipe()

    def contender(report) -> None:
        os.read(start_r, 1)  # all start together
        take_lock(run)(report)

    children = [fork(contender) for _ in range(4)]
    os.write(start_w, b"go" * 2)
    won = [os.read(report, 1) for _, report in children]
    for pid, _ in children:
        end_child(pid)
    assert sorted(won) == [b"0", b"0", b"0", b"1"]


def test_two_concurrent_trains_into_one_out(tmp_path: Path) -> None:
    run = tmp_path / "run"
    procs = [subprocess.Popen([sys.executable, "-m", "freqdiff.cli", "train", "--out", str(run),
                               *flags(lr=lr)], cwd=REPO, stderr=subprocess.PIPE, text=True)
             for lr in ("0.001", "0.002")]
    results = [(p.wait(timeout=300), p.stderr.read()) for p in procs]
    codes = sorted(code for code, _ in results)
    assert codes == [0, 2], results
    (winner_lr,) = [lr for (code, _), lr in zip(results, ("0.001", "0.002")) if code == 0]
    (message,) = [err.strip().splitlines()[-1] for code, err in results if code == 2]
    # the loser may flock in the instant before the winner names itself in the lock: then the holder is unnamed
    assert "is being written by" in message or "made with a different config (differs in train.lr)" in message
    assert f'"lr": {winner_lr}' in (run / "config.json").read_text()
    assert len((run / "log.jsonl").read_text().splitlines()) == 20 // 5  # one writer's records, not two


# ---- killed sweeps, reports and comparisons ----------------------------------------------------------------
def sweep_argv(out: Path, report: str = "true") -> list[str]:
    return ["sweep", "--recipe", "baseline", "--n", "8", "--seeds", "0", "--steps_per_n", "0", "--out", str(out),
            "--report", report, *[t for t in flags(n_samples="40") if t not in ("--n", "8")]]


@pytest.fixture(scope="module")
def swept(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An uninterrupted tiny sweep, written under a path holding a byte that is not UTF-8."""
    out = tmp_path_factory.mktemp("sweeps") / os.fsdecode(b"ref-\xff")
    assert main(sweep_argv(out)) == 0
    return out


def test_a_sigkilled_sweep_resumes_to_the_same_metrics(swept: Path, tmp_path: Path) -> None:
    out = tmp_path / "killed"
    cli_killed_at("state.pt", 2, *sweep_argv(out, "false"))  # mid-training: state.pt moved aside, not yet renamed
    run = out / "n00008-seed0"
    assert not (run / "state.pt").exists() and (run / "state.prev.pt").exists() and temps(run)
    assert main(sweep_argv(out, "false")) == 0
    assert temps(out) == []
    assert (run / "metrics.csv").read_bytes() == (swept / "n00008-seed0" / "metrics.csv").read_bytes()


def test_a_killed_report_leaves_the_previous_report_intact(swept: Path) -> None:
    before = {k: v for k, v in snapshot(swept).items() if "report" in k or k.startswith("figures")}
    assert "report.md" in before
    cli_killed_at("*", 2, "report", str(swept))  # its first output replaced, its second about to be
    after = snapshot(swept)
    assert all(after[k] == v for k, v in before.items())
    assert main(["report", str(swept)]) == 0
    assert temps(swept) == [] and snapshot(swept)["report.md"] == before["report.md"]


def test_a_killed_compare_leaves_the_previous_comparison_intact(swept: Path, tmp_path: Path) -> None:
    other, out = Path(shutil.copytree(swept, tmp_path / "again")), tmp_path / "comparison"
    argv = ["compare", str(swept), str(other), "--out", str(out)]
    assert main(argv) == 0
    before = snapshot(out)
    cli_killed_at("*", 1, *argv)
    assert {k: v for k, v in snapshot(out).items() if TEMP_MARK not in k} == before


def test_eval_is_a_writer_too(swept: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = swept / "n00008-seed0"
    before = snapshot(run)
    del before[LOCK_NAME]  # the holder writes its name there
    pid, report = fork(take_lock(run))
    assert os.read(report, 1) == b"1"
    try:
        assert main(["eval", str(run)]) == 2
        assert f"is being written by pid {pid} on host" in capsys.readouterr().err
    finally:
        end_child(pid)
    assert {k: v for k, v in snapshot(run).items() if k != LOCK_NAME} == before


# ---- the lock and the writes under it never follow a link --------------------------------------------------
def test_a_lock_that_is_a_symlink_never_truncates_its_target(tmp_path: Path) -> None:
    run, victim = tmp_path / "run", tmp_path / "victim.txt"
    run.mkdir()
    victim.write_text("the user's precious bytes\n")
    (run / LOCK_NAME).symlink_to(victim)
    with pytest.raises(FreqdiffError, match=f"{LOCK_NAME}: is a symlink .to {victim}."):
        RunLock(run).acquire()
    assert victim.read_text() == "the user's precious bytes\n"


def test_a_lock_that_is_a_pipe_is_refused_without_blocking(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    os.mkfifo(run / LOCK_NAME)
    with pytest.raises(FreqdiffError, match="is not a regular file"):
        RunLock(run).acquire()


def test_writes_under_a_held_lock_never_follow_a_link(tmp_path: Path) -> None:
    run, elsewhere = tmp_path / "run", tmp_path / "elsewhere"
    run.mkdir()
    elsewhere.mkdir()
    (run / "figures").symlink_to(elsewhere)
    with RunLock(run):
        with pytest.raises(FreqdiffError, match="figures: is a symlink"):
            write_text(run / "figures" / "window.png", "x")
    assert list(elsewhere.iterdir()) == []
