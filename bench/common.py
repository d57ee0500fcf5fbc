"""Shared by the benches: the command line and the interleaved timing of several step functions in one run."""
from __future__ import annotations

import argparse
import statistics
import time
from typing import Callable


def parse(doc: str, argv: list[str], steps: int) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=doc)
    parser.add_argument("--steps", type=int, default=steps)
    parser.add_argument("--n", type=int, default=16)
    parser.add_argument("--threads", type=int, default=1)
    return parser.parse_args(argv)


def median_step_times(runners: dict[str, Callable[[], object]], steps: int, warmup: int = 5) -> dict[str, float]:
    """Median seconds per call of each runner, calls interleaved round-robin so machine drift hits all alike."""
    times: dict[str, list[float]] = {label: [] for label in runners}
    for _ in range(warmup):
        for step in runners.values():
            step()
    for _ in range(steps):
        for label, step in runners.items():
            start = time.perf_counter()
            step()
            times[label].append(time.perf_counter() - start)
    return {label: statistics.median(values) for label, values in times.items()}
