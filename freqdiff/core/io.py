"""Files: atomic writes, checksummed torch files that load without running code, and the one-writer lock of a run.

A killed process never leaves a half-written result behind (write to a temporary beside the target, then
rename), never runs code from a downloaded checkpoint (torch.load(weights_only=True)), and two processes never
write one run directory at once (an exclusive lock naming its holder).
Text is written and read as UTF-8 with surrogate escapes, so a path holding bytes that are not UTF-8 (which
Python decodes to lone surrogates) round-trips exactly instead of crashing the writer.
"""
from __future__ import annotations

import contextlib
import csv
import fcntl
import glob
import hashlib
import json
import os
import pickle
import re
import socket
import tempfile
from pathlib import Path
from typing import Any, Iterator

import torch

from freqdiff.core.registry import FreqdiffError

_UMASK = os.umask(0)
os.umask(_UMASK)

TEMP_MARK = ".freqdiff-tmp"  # in the name of every temporary of atomic_path: .NAME.PID-XXXXXXXX.freqdiff-tmp.SUFFIX
_TEMP_NAME = re.compile(r"^\..+\.(\d+)-[a-z0-9_]+" + re.escape(TEMP_MARK))
CHECKSUM_KEY = "sha256"  # torch_save stores the digest of the saved content under this key
LOCK_NAME = ".freqdiff.lock"
TEXT = {"encoding": "utf-8", "errors": "surrogateescape"}


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside `path`; it replaces `path` only if the block succeeds.

    The temporary's name carries the writer's pid, so a killed writer's leftovers are told from a live writer's
    file: those of this target are removed here, those of a whole run when its lock is taken. The name ends
    with the target's suffix (np.savez and PIL read it)."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    for leftover in target.parent.glob(f".{glob.escape(target.name)}.*{TEMP_MARK}*"):
        _remove_if_orphan(leftover)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.{os.getpid()}-",
                               suffix=f"{TEMP_MARK}{target.suffix}")
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; give the file the usual permissions
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _alive(pid: int) -> bool:
    """Whether a process with this pid exists on this host."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _remove_if_orphan(path: Path) -> bool:
    """Delete a temporary of atomic_path whose writer process is gone; True if it was one."""
    match = _TEMP_NAME.match(path.name)
    if match is None or not path.is_file() or _alive(int(match.group(1))):
        return False
    path.unlink(missing_ok=True)
    return True


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

    With `previous`, the file being replaced is first moved there (the fallback of a resume state)."""
    with atomic_path(path) as tmp:
        torch.save({**obj, CHECKSUM_KEY: content_digest(obj)}, tmp)
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


def save_figure(fig: Any, path: str | os.PathLike[str], dpi: int = 120) -> None:
    """Save a matplotlib figure atomically and close it; text that is not valid UTF-8 (a path's bytes) shows as U+FFFD."""
    import matplotlib.pyplot as plt
    from matplotlib.text import Text

    kind = Path(path).suffix.lstrip(".") or "png"
    with atomic_path(path) as tmp:
        try:
            fig.savefig(tmp, dpi=dpi, bbox_inches="tight", format=kind)
        except (UnicodeError, TypeError):  # a path's bytes in a text; walking every artist costs more than drawing
            for text in fig.findobj(Text):
                text.set_text(text.get_text().encode(**TEXT).decode("utf-8", "replace"))
            fig.savefig(tmp, dpi=dpi, bbox_inches="tight", format=kind)
        if kind == "png":
            compact_png(tmp)
    plt.close(fig)


def compact_png(path: str | os.PathLike[str]) -> None:
    """Rewrite a PNG with a 256-colour palette: a plot's few colours survive, the file is ~3x smaller."""
    from PIL import Image

    with Image.open(path) as image:
        image.load()
    image.convert("RGB").quantize(colors=256, method=Image.Quantize.FASTOCTREE).save(path, format="png", optimize=True)


def write_csv(path: str | os.PathLike[str], rows: list[dict[str, Any]], columns: list[str]) -> None:
    """Write rows (dicts) with a fixed column order, atomically."""
    with atomic_path(path) as tmp, open(tmp, "w", newline="", **TEXT) as fh:
        writer = csv.DictWriter(fh, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)


def read_csv(path: str | os.PathLike[str]) -> list[dict[str, str]]:
    with open(path, newline="", **TEXT) as fh:
        return list(csv.DictReader(fh))


_HELD: dict[str, list[int]] = {}  # lock file -> [fd, depth] for the locks this process holds


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
        self.key = str(self.path.resolve())
        if self.key in _HELD:
            _HELD[self.key][1] += 1
            self.held = True
            return self
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666 & ~_UMASK)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "another process"
            os.close(fd)
            if isinstance(err, BlockingIOError):
                raise FreqdiffError(f"{self.directory} is being written by {holder} (lock {self.path}); "
                                    "wait for it to finish, or stop it") from None
            raise FreqdiffError(f"{self.path}: cannot lock ({err.strerror}); this filesystem has no file locks") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} on host {socket.gethostname()}\n".encode(), 0)
        _HELD[self.key] = [fd, 1]
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
            os.ftruncate(held[0], 0)  # while still held: a reader never sees a departed holder's name
            os.close(held[0])
            del _HELD[self.key]

    def __enter__(self) -> "RunLock":
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()
