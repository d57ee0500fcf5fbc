"""log.jsonl, the training log: one JSON record per line, each with its step, read back when a run resumes.

A record is written whole before the state of its step is saved, so a killed run can leave only its last line cut
short (no closing newline), and that line always lies past the state it resumes from: dropping it loses nothing.
Any other damage was not made by freqdiff and is named, never rewritten.
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import IO

from freqdiff.core.io import TEXT, open_nofollow, write_text
from freqdiff.core.registry import FreqdiffError


def record_step(path: Path, number: int, line: str) -> int:
    """The step of line `number` of log.jsonl; a line that is no record with a step is refused, naming it."""
    try:
        record = json.loads(line)
    except json.JSONDecodeError as err:
        problem = f"not JSON ({err.msg})"
    else:
        step = record.get("step") if isinstance(record, dict) else None
        if type(step) is int and step >= 0:
            return step
        problem = f"a record without a step >= 0 (step {step!r})" if isinstance(record, dict) else \
            f"not a record (a {type(record).__name__})"
    raise FreqdiffError(f"{path} line {number}: {problem}; freqdiff writes one record with its step per line, and a "
                        "killed run cuts only the last one: repair or delete that line, then resume")


def open_log(path: Path, resume_step: int) -> IO[str]:
    """Open log.jsonl for appending, first dropping records past the step we resume from and a last line cut short
    by a kill (with a warning); a damaged line before it is refused; a link there is refused."""
    if path.exists():
        *whole, cut = path.read_text(**TEXT).split("\n")  # `cut`: what follows the last newline, "" if none
        kept = [line for number, line in enumerate(whole, 1) if line and record_step(path, number, line) <= resume_step]
        if cut:
            print(f"freqdiff: warning: {path}: dropped line {len(whole) + 1}, cut short when the run was stopped "
                  f"({len(cut)} characters)", file=sys.stderr)
        write_text(path, "".join(line + "\n" for line in kept))  # atomically: a kill here loses no record
    return os.fdopen(open_nofollow(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT), "a", **TEXT)
