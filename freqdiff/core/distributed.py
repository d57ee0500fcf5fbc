"""The process layout under `accelerate launch`, read the way Accelerator() reads it."""
from __future__ import annotations

from accelerate import PartialState
from accelerate.utils import parse_flag_from_env


def process_state() -> PartialState:
    """accelerate's PartialState honouring ACCELERATE_USE_CPU as Accelerator() does.

    The first PartialState of a process fixes its layout for good: a bare PartialState() made before the
    Accelerator turns a CPU launch of several processes (ACCELERATE_USE_CPU=1 --multi_gpu) into lone processes.
    """
    return PartialState(cpu=parse_flag_from_env("ACCELERATE_USE_CPU"))
