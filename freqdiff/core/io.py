"""Files: atomic writes, checksummed torch files that load without running code, and the one-writer lock of a run.

A killed process never leaves a half-written result behind (write to a temporary beside the target, then rename),
never runs code from a downloaded checkpoint (torch.load(weights_only=True)), and two processes never write one run
directory at once (an exclusive lock naming its holder). Every write passes one guard (check_writable): no symlink is
followed at a path written or at a folder on the way below a directory being written (a held lock, a claimed output:
claim_output_dir), and an OSError on a path (read-only folder, full disk) is one FreqdiffError naming it. Text is
UTF-8 with surrogate escapes, so a path holding bytes that are not UTF-8 round-trips instead of crashing the writer.
"""
from __future__ import annotations

import contextlib
import csv
import fcntl
import errno
import glob
import functools
import hashlib
import io
import json
import os
import pickle
import re
import shutil
import socket
import stat
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, TypeVar

import torch

from freqdiff.core.registry import FreqdiffError

_UMASK = os.umask(0)
os.umask(_UMASK)

TEMP_MARK = ".freqdiff-tmp"  # in the name of every temporary of atomic_path: .NAME.PID-XXXXXXXX.freqdiff-tmp.SUFFIX
_TEMP_NAME = re.compile(r"^\..+\.(\d+)-[a-z0-9_]+" + re.escape(TEMP_MARK))
CHECKSUM_KEY = "sha256"  # torch_save stores the digest of the saved content under this key
LOCK_NAME = ".freqdiff.lock"
OWNER_FILE = ".freqdiff-out"  # in every output directory claim_output_dir made: the directory is freqdiff's
TEXT = {"encoding": "utf-8", "errors": "surrogateescape"}
F = TypeVar("F", bound=Callable[..., Any])
_ROOTS: list[str] = []  # directories being written (held run locks, claimed outputs): no symlink is followed below them


def path_error(err: OSError, path: str | os.PathLike[str], doing: str = "write") -> FreqdiffError:
    """The one line of an OSError met at `path` (read-only folder, full disk, ...): the path and the system's reason."""
    return FreqdiffError(f"{os.fsdecode(path)}: cannot {doing} ({err.strerror or err})")


def one_line_errors(func: F) -> F:
    """Decorator for a command's entry point: an OSError that escapes it becomes one FreqdiffError naming its path."""
    @functools.wraps(func)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except OSError as err:
            raise path_error(err, err.filename if err.filename is not None else "a file", "read or write") from None

    return wrapped  # type: ignore[return-value]


def _refusal(path: str, st: os.stat_result, want: str) -> str | None:
    """Why the existing entry `path` cannot be written as `want` ('file' or 'folder'), or None."""
    if stat.S_ISLNK(st.st_mode):
        return (f"{path}: is a symlink (to {os.fsdecode(os.readlink(path))}); freqdiff never writes through a link: "
                f"replace it with a real {want} or remove it")
    if want == "folder" and not stat.S_ISDIR(st.st_mode):
        return f"{path}: is a file, not a folder; move it away"
    if want == "file" and stat.S_ISDIR(st.st_mode):
        return f"{path}: is a folder, not a file; move it away"
    if want == "file" and not stat.S_ISREG(st.st_mode):
        return f"{path}: is not a regular file (a device, socket or pipe); freqdiff writes only regular files"
    return None


def check_writable(path: str | os.PathLike[str], root: str | os.PathLike[str] | None = None,
                   folder: bool = False) -> Path:
    """Refuse, in one line naming it, a path to be written (a file; a folder with `folder`) that is a symlink or of
    the wrong kind, and any folder on the way below `root` (default: the innermost directory being written, _ROOTS)
    that is a symlink or a file. The root itself may be a link: the user named it."""
    target = os.path.abspath(path)
    roots = [os.path.abspath(root)] if root is not None else _ROOTS
    if target in roots:
        return Path(path)
    base = max((r for r in roots if target.startswith(r.rstrip(os.sep) + os.sep)), key=len, default=None)
    parts = Path(target).relative_to(base).parts if base else (os.path.basename(target),)
    start = base or os.path.dirname(target)
    for i in range(len(parts)):
        entry = os.path.join(start, *parts[:i + 1])
        try:
            st = os.lstat(entry)
        except OSError:  # missing (and so is the rest), or unreadable: the write itself says why
            break
        refusal = _refusal(entry, st, "file" if i == len(parts) - 1 and not folder else "folder")
        if refusal:
            raise FreqdiffError(refusal)
    return Path(path)


@contextlib.contextmanager
def writing_into(directory: str | os.PathLike[str]) -> Iterator[Path]:
    """Within the block, writes below `directory` never follow a symlink there (check_writable)."""
    _ROOTS.append(os.path.abspath(directory))
    try:
        yield Path(directory)
    finally:
        _ROOTS.remove(os.path.abspath(directory))


def make_dir(path: str | os.PathLike[str], what: str = "") -> Path:
    """mkdir -p, its refusals one line: a file in the way, a read-only parent, a path under a file or in /proc."""
    try:
        Path(path).mkdir(parents=True, exist_ok=True)
    except OSError as err:
        reason = "a file is in the way" if isinstance(err, (FileExistsError, NotADirectoryError)) else err.strerror
        raise FreqdiffError(f"{what}{os.fsdecode(path)}: cannot create this folder ({reason or err})") from None
    return Path(path)


def open_nofollow(path: str | os.PathLike[str], flags: int) -> int:
    """os.open that never follows a link at `path` and opens only a regular file (a lock, a log); one-line refusals."""
    try:
        fd = os.open(path, flags | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK, 0o666 & ~_UMASK)
    except OSError as err:
        if err.errno in (errno.ELOOP, errno.EISDIR):
            check_writable(path)  # names the link or the folder
        raise path_error(err, path, "open") from None
    refusal = _refusal(os.fsdecode(path), os.fstat(fd), "file")
    if refusal:
        os.close(fd)
        raise FreqdiffError(refusal)
    return fd


def claim_output_dir(path: str | os.PathLike[str], marker: str | Iterable[str], expected: Iterable[str] = (),
                     what: str = "--out", create: bool = True) -> Path:
    """Make `path` a directory of freqdiff's outputs, or confirm it is one, before anything is written: a new path,
    an empty directory (both get OWNER_FILE), one holding OWNER_FILE or a `marker` (a file earlier outputs always
    include: sweep.json), or only `expected` entries (the runs compared). Refused in one line naming it: a symlink, a
    file, a directory holding anything else. No later write below it in this process follows a symlink. With create
    False, only checks (before a long computation): nothing is created or marked."""
    out, markers = Path(path), {marker} if isinstance(marker, str) else set(marker)
    st = os.lstat(out) if os.path.lexists(out) else None  # under a file (/dev/null/x): make_dir says why
    if st is not None and (stat.S_ISLNK(st.st_mode) or not stat.S_ISDIR(st.st_mode)):
        raise FreqdiffError(f"{what} {_refusal(os.fsdecode(out), st, 'folder')}")
    entries = {p.name for p in out.iterdir()} if st is not None else set()
    own = OWNER_FILE in entries or bool(markers & entries)
    foreign = sorted(e for e in entries - set(expected) if e != LOCK_NAME and TEMP_MARK not in e)
    if foreign and not own:
        shown = ", ".join(foreign[:4]) + (", ..." if len(foreign) > 4 else "")
        raise FreqdiffError(f"{what} {os.fsdecode(out)}: holds files freqdiff did not write ({shown}); nothing was "
                            "written: choose a new or empty directory")
    if not create:
        return out
    make_dir(out, f"{what} ")
    if os.path.abspath(out) not in _ROOTS:
        _ROOTS.append(os.path.abspath(out))
    if not own:
        write_text(out / OWNER_FILE, f"freqdiff outputs ({', '.join(sorted(markers))}): freqdiff may rewrite them\n")
    return out


def check_own_file(path: str | os.PathLike[str], heading: str) -> Path:
    """Refuse to replace a file freqdiff did not write: one whose first line is not `heading` (a report's), such as a
    user's own report.md beside the runs. Returns the path, to write (write_text) once everything is checked."""
    target = check_writable(path)
    if target.exists():
        with open(target, **TEXT) as fh:
            if fh.readline().rstrip("\n") != heading:
                raise FreqdiffError(f"{target}: was not written by freqdiff (its first line is not {heading!r}); "
                                    "nothing was written: move it away to write this report there")
    return target


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside `path`; it replaces `path` only if the block succeeds.

    The temporary's name carries the writer's pid, so a killed writer's leftovers are told from a live writer's
    file: those of this target are removed here, those of a whole run when its lock is taken. The name ends
    with the target's suffix (np.savez and PIL read it). The target is checked first (check_writable); an OSError
    (read-only folder, full disk) is one FreqdiffError naming the target, which is left as it was."""
    target, tmp = check_writable(path), None
    make_dir(target.parent)
    try:
        remove_leftovers(target)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.{os.getpid()}-",
                                   suffix=f"{TEMP_MARK}{target.suffix}")
        os.close(fd)
        yield Path(tmp)
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; give the file the usual permissions
        os.replace(tmp, target)
    except OSError as err:
        named = target if err.filename is None or TEMP_MARK in os.fsdecode(err.filename) else err.filename
        raise FreqdiffError(f"{path_error(err, named)}; {target.name} was left as it was") from None
    finally:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)


def _alive(pid: int) -> bool:
    """Whether a process with this pid exists on this host."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True  # or PermissionError: it exists, another user's


def _remove_if_orphan(path: Path) -> bool:
    """Delete a temporary (a file, or a folder such as export's) whose writer process is gone; True if it was one.
    A link is removed as a link, never followed."""
    match = _TEMP_NAME.match(path.name)
    if match is None or _alive(int(match.group(1))):
        return False
    if path.is_symlink() or path.is_file():
        path.unlink(missing_ok=True)
    elif path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    else:
        return False
    return True


def remove_leftovers(target: Path) -> None:
    """Delete the temporaries of `target` left by killed writers (named .TARGET.PID-...TEMP_MARK...)."""
    for leftover in target.parent.glob(f".{glob.escape(target.name)}.*{TEMP_MARK}*"):
        _remove_if_orphan(leftover)


def remove_orphan_temps(directory: str | os.PathLike[str]) -> list[Path]:
    """Delete the temporaries of atomic_path below `directory` whose writer is gone (a killed run); returns them."""
    return [path for path in Path(directory).rglob(f".*{TEMP_MARK}*") if _remove_if_orphan(path)]


def write_text(path: str | os.PathLike[str], text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, **TEXT)


def write_json(path: str | os.PathLike[str], obj: Any) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def read_json(path: str | os.PathLike[str]) -> Any:
    return json.loads(Path(path).read_text(**TEXT))


def content_digest(obj: Any) -> str:
    """sha256 of a nest of dicts, lists, tuples, tensors and plain values: dtypes, shapes, bytes and reprs."""
    digest = hashlib.sha256()

    def feed(x: Any) -> None:
        if isinstance(x, torch.Tensor):
            t = x.detach().cpu().contiguous()
            digest.update(f"tensor {t.dtype} {tuple(t.shape)};".encode())
            digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
        elif isinstance(x, (dict, list, tuple)):
            digest.update(f"{type(x).__name__} {len(x)};".encode())
            for item in x.items() if isinstance(x, dict) else x:
                feed(item)
        else:
            digest.update(f"{type(x).__name__} {x!r};".encode(**TEXT))

    feed(obj)
    return digest.hexdigest()


def torch_save(obj: dict[str, Any], path: str | os.PathLike[str], previous: str | os.PathLike[str] | None = None) -> None:
    """Save a dict of tensors and plain values atomically, with the sha256 of its content (see torch_load).

    With `previous`, the file being replaced is first moved there (the fallback of a resume state). The bytes are
    written by Python, so a full disk is an OSError (torch's writer raises RuntimeError)."""
    buffer = io.BytesIO()
    torch.save({**obj, CHECKSUM_KEY: content_digest(obj)}, buffer)
    if previous is not None:
        check_writable(previous)
    with atomic_path(path) as tmp:
        tmp.write_bytes(buffer.getbuffer())
        if previous is not None and os.path.exists(path):
            os.replace(path, previous)


def torch_load(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Load a torch_save file on the CPU without running any code from it, and check its sha256.

    torch.load(weights_only=True) rebuilds only tensors and plain containers, so a crafted pickle is refused,
    never executed. A truncated, foreign, refused or altered file is one FreqdiffError naming it. A file without
    a checksum (written before checksums existed) is loaded as it is."""
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise FreqdiffError(f"{path}: no such file") from None
    except Exception as err:  # torch raises RuntimeError, EOFError, UnpicklingError, ... for a damaged file
        forbidden = re.search(r"GLOBAL (\S+) was not an allowed global", str(err))
        if isinstance(err, pickle.UnpicklingError) and forbidden:
            raise FreqdiffError(f"{path}: refused: it asks to build the Python object {forbidden.group(1)} (possibly "
                                "code); freqdiff loads only tensors and plain values") from None
        unsupported = re.search(r"Unsupported [^.\n]*", str(err))  # the useful part of torch's long message
        reason = unsupported.group(0) if unsupported else " ".join(str(err).split())[:120]
        raise FreqdiffError(f"{path}: unreadable, truncated or not a torch file ({type(err).__name__}: {reason})") from None
    if not isinstance(obj, dict):
        raise FreqdiffError(f"{path}: not a freqdiff file (holds a {type(obj).__name__}, expected a dict)")
    expected = obj.pop(CHECKSUM_KEY, None)
    if expected is not None and expected != content_digest(obj):
        raise FreqdiffError(f"{path}: checksum mismatch: the file was altered or corrupted after it was written")
    return obj


def write_csv(path: str | os.PathLike[str], rows: list[dict[str, Any]], columns: list[str]) -> None:
    """Write rows (dicts) with a fixed column order, atomically."""
    with atomic_path(path) as tmp, open(tmp, "w", newline="", **TEXT) as fh:
        writer = csv.DictWriter(fh, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)


def read_csv(path: str | os.PathLike[str]) -> list[dict[str, str]]:
    with open(path, newline="", **TEXT) as fh:
        return list(csv.DictReader(fh))


_HELD: dict[str, list[Any]] = {}  # lock file -> [fd, depth, root] for the locks this process holds


class RunLock:
    """The one-writer lock of a directory: an exclusive flock on DIR/.freqdiff.lock, which names its holder.

    The kernel releases a flock when its holder exits or is killed, so the lock of a dead process is stale by
    construction and is taken over atomically by the next flock; pids are never guessed. Re-entrant within a
    process (training that evaluates its own checkpoints). Taking it deletes the temporaries of killed writers.
    """

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)
        self.path = self.directory / LOCK_NAME
        self.key, self.held = "", False

    def acquire(self) -> "RunLock":
        if not self.directory.is_dir():
            raise FreqdiffError(f"{self.directory}: no such directory")
        self.key = str(self.directory.resolve() / LOCK_NAME)
        if self.key in _HELD:
            _HELD[self.key][1] += 1
            self.held = True
            return self
        fd = open_nofollow(self.path, os.O_RDWR | os.O_CREAT)  # a link or a folder at the lock is refused, never opened
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "another process"
            os.close(fd)
            if isinstance(err, BlockingIOError):
                raise FreqdiffError(f"{self.directory} is being written by {holder} (lock {self.path}); "
                                    "wait for it to finish, or stop it") from None
            raise FreqdiffError(f"{self.path}: cannot lock ({err.strerror}); this filesystem has no file locks") from None
        with contextlib.suppress(OSError):  # a full disk: the lock holds, its holder is not named
            name = f"pid {os.getpid()} on host {socket.gethostname()}\n".encode()
            os.ftruncate(fd, os.pwrite(fd, name, 0))  # write, then cut: the file is never empty in between
        _HELD[self.key] = [fd, 1, os.path.abspath(self.directory)]
        _ROOTS.append(_HELD[self.key][2])
        self.held = True
        remove_orphan_temps(self.directory)
        return self

    def release(self) -> None:
        if not self.held:
            return
        self.held = False
        held = _HELD[self.key]
        held[1] -= 1
        if held[1] == 0:
            with contextlib.suppress(OSError):  # a full disk or read-only file: the name stays, the flock goes
                os.ftruncate(held[0], 0)  # while still held: a reader never sees a departed holder's name
            os.close(held[0])
            _ROOTS.remove(_HELD.pop(self.key)[2])

    def __enter__(self) -> "RunLock":
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()
