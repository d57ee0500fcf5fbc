"""The `freqdiff` command: train, eval, window, report, list (and the studies built on them).

Each command is one row of COMMANDS; the usage, each command's --help and the dispatch are read from there.
"""
from __future__ import annotations

import importlib
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from freqdiff.core.config import COMPONENTS, SECTIONS, EvalConfig, RunConfig, apply_flags, split_argv
from freqdiff.core.registry import FreqdiffError, option_lines


def settings_help(cls: type, indent: str = "    ") -> list[str]:
    """One line per field of a settings dataclass: --name type = default (valid range)."""
    return option_lines(cls, indent=indent)


def run_options_help() -> str:
    """Every run setting with its type and default, then how components are set."""
    lines = ["run options:"]
    for section, cls in SECTIONS.items():
        lines += [f"  [{section}]", *settings_help(cls)]
    defaults = RunConfig()
    lines.append("  [components] (see `freqdiff list` for each one's parameters)")
    lines += [f"    --{c} NAME = {getattr(defaults, c).name!r}   --{c}.PARAM VALUE" for c in COMPONENTS]
    lines.append("  --out RUN_DIR  (default runs/<dataset>-<regularizer>-n<n>-seed<seed>)")
    return "\n".join(lines)


def default_run_dir(cfg: RunConfig) -> Path:
    return Path("runs") / f"{cfg.dataset.name}-{cfg.regularizer.name}-n{cfg.data.n}-seed{cfg.train.seed}"


def _one_dir(argv: list[str], what: str) -> tuple[Path, dict[str, str]]:
    positional, flags = split_argv(argv)
    if len(positional) != 1:
        raise FreqdiffError(f"{what}: expected one directory, got {len(positional)} arguments")
    return Path(positional[0]), flags


# The commands whose entry point does not read argv itself: each gets that entry point and the arguments.

def run_train(train: Callable[..., Any], argv: list[str]) -> int:
    positional, flags = split_argv(argv)
    if positional:
        raise FreqdiffError(f"train: unexpected argument {positional[0]!r}; options are --name value")
    out = flags.pop("out", None)
    cfg = apply_flags(RunConfig(), flags)
    train(cfg, Path(out) if out else default_run_dir(cfg), on_checkpoint=evaluator(cfg))
    return 0


def evaluator(cfg: RunConfig) -> Callable[[Path, int], Any] | None:
    """With --eval_checkpoints true: evaluate each checkpoint as soon as it is written."""
    if not cfg.train.eval_checkpoints:
        return None
    from freqdiff.metrics.evaluate import evaluate_run  # imported when used: `freqdiff --help` stays light

    return lambda run_dir, step: evaluate_run(run_dir, steps=[step], progress=False)


def run_eval(evaluate: Callable[..., Any], argv: list[str]) -> int:
    run_dir, flags = _one_dir(argv, "eval")
    evaluate(run_dir, overrides=flags)
    return 0


def run_window(window_main: Callable[..., Any], argv: list[str]) -> int:
    run_dir, flags = _one_dir(argv, "window")
    print(window_main(run_dir, **flags).summary())
    return 0


def run_report(write_report: Callable[[Path], Path], argv: list[str]) -> int:
    directory, flags = _one_dir(argv, "report")
    if flags:
        raise FreqdiffError(f"report: unknown option --{next(iter(flags))}")
    print(write_report(directory))
    return 0


def run_list(registries: dict[str, Any], argv: list[str]) -> int:
    if argv:
        what = f"unknown option {argv[0].partition('=')[0]}" if argv[0].startswith("-") else \
            f"unexpected argument {argv[0]!r}"
        raise FreqdiffError(f"{what}; `freqdiff list` takes none (it lists every registry)")
    print("\n\n".join(registry.describe() for registry in registries.values()))
    return 0


# The --help of the commands whose module has no help of its own.

def eval_help() -> str:
    return "\n".join([
        "usage: freqdiff eval RUN_DIR [eval options]   -> RUN_DIR/metrics.csv, nearest/, eval_config.json",
        "eval options (default: the run's own, from its config.json):", *settings_help(EvalConfig, "  "),
        "  --extractor.weights PATH   Inception weights (inception-2015-12-05.pt) for --extractor inception"])


def sweep_help(options: type) -> str:
    return "\n".join(["usage: freqdiff sweep --recipe NAME [sweep options] [run options]", "sweep options:",
                      *settings_help(options, "  "), "run options: any of `freqdiff train --help`, for every run"])


@dataclass(frozen=True)
class Command:
    """One command: how the usage shows it, where it is implemented, how it runs and what its --help prints.

    Its module is imported only when the command runs or prints a help that the module writes, so that
    `freqdiff --help` stays fast; a module that moves is the one string `module` here.
    """

    name: str
    synopsis: str  # its arguments, as the usage shows them
    summary: str  # what it does, in one line
    module: str  # where it is implemented
    entry: str  # the name in `module` it runs: entry(argv) -> exit status, or call(entry, argv) when call is given
    help: str | Callable[[Command], str]  # its --help: the name of a function of `module`, or a function of cli
    call: Callable[[Any, list[str]], int] | None = None  # for an entry that does not read argv itself

    def attribute(self, name: str) -> Any:
        return getattr(importlib.import_module(self.module), name)

    def run(self, argv: list[str]) -> int:
        entry = self.attribute(self.entry)
        return self.call(entry, argv) if self.call else entry(argv)

    def help_text(self) -> str:
        return self.attribute(self.help)() if isinstance(self.help, str) else self.help(self)

    def usage_line(self) -> str:
        """`  name synopsis   summary`, the summary at column SUMMARY_COLUMN (on a line of its own if it must)."""
        left = f"  {self.name:<7} {self.synopsis}".rstrip()
        if len(left) + 2 <= SUMMARY_COLUMN:
            return f"{left:<{SUMMARY_COLUMN}}{self.summary}"
        return f"{left}\n{'':<{SUMMARY_COLUMN}}{self.summary}"


SUMMARY_COLUMN = 38

COMMANDS: dict[str, Command] = {command.name: command for command in (
    Command("train", "[--out RUN_DIR] [options]", "train (or resume) one run",
            module="freqdiff.train.trainer", entry="train", call=run_train, help=lambda _: run_options_help()),
    Command("baseline", "--model NAME [--axis PARAM --values V,...] [options]",
            "measure a closed-form model over its parameter",
            module="freqdiff.commands.baseline", entry="baseline_main", help="baseline_help"),
    Command("eval", "RUN_DIR [options]", "measure every checkpoint not yet evaluated -> metrics.csv",
            module="freqdiff.commands.evaluate", entry="evaluate", call=run_eval, help=lambda _: eval_help()),
    Command("window", "RUN_DIR", "read tau_gen, tau_mem and the window -> window.json + figures",
            module="freqdiff.analysis.reports.run", entry="window_main", call=run_window, help="window_help"),
    Command("refine", "RUN_DIR [--target 0.05] [--samples 2048] [--points 6] [--budget STEPS] [--rounds 3]",
            "denser checkpoints, more samples where the taus fall -> RUN_DIR/refine/",
            module="freqdiff.commands.refine", entry="refine_main", help="refine_help"),
    Command("export", "RUN_DIR --out DIR", "a diffusers_unet DDPM run as a diffusers pipeline",
            module="freqdiff.commands.export", entry="export_main", help="export_help"),
    Command("import", "DIR --data TRAIN --held_out TEST --out RUN_DIR [options]",
            "a UNet that diffusers trained -> a run that eval and window read",
            module="freqdiff.commands.external", entry="import_main", help="import_help"),
    Command("report", "DIR", "report.md over every run under DIR",
            module="freqdiff.analysis.reports.report", entry="write_report", call=run_report,
            help=lambda _: "usage: freqdiff report DIR   -> DIR/report.md over every run below DIR (no options)"),
    Command("sweep", "--recipe NAME [--n 8,16,32] [--seeds 0,1,2] [run options]", "train+eval+window every (n, seed)",
            module="freqdiff.commands.sweep", entry="sweep_main",
            help=lambda command: sweep_help(command.attribute("SweepOptions"))),
    Command("compare", "DIR... [--format text|csv|json] [--reference NAME]", "windows of several recipes side by side",
            module="freqdiff.analysis.reports.compare", entry="compare_main", help="compare_help"),
    Command("pareto", "DIR... [--reference NAME] [--out DIR]", "strengths of a regularizer at matched quality",
            module="freqdiff.analysis.reports.pareto", entry="pareto_main", help="pareto_help"),
    Command("theory", "[--psi_p 64 --psi_n 4,8,16,32 --t 0.01 ...]", "the solvable random-features model",
            module="freqdiff.theory.cli", entry="main", help="options_help"),
    Command("calibrate", "[--out results/calibration] [--runs RUN[:STEP] ...]",
            "every measure on known image sets -> the quality gate",
            module="freqdiff.commands.calibrate", entry="main", help="options_help"),
    Command("list", "", "every registry with its entries and parameters",
            module="freqdiff.commands.registries", entry="REGISTRIES", call=run_list,
            help=lambda _: "usage: freqdiff list   every registry with its entries, their parameters, types, defaults, "
                           "ranges (no options)"),
)}
"""Every command, in the order the usage lists them: the one place a command is declared."""

USAGE = "\n".join([
    "usage: freqdiff COMMAND [ARGS]", "", "commands:", *(command.usage_line() for command in COMMANDS.values()),
    "Options use one syntax: `--name value`, and `--component.param value` for a component's parameter",
    "(e.g. --regularizer fourier_penalty --regularizer.cutoff 0.25). `freqdiff train --help` lists them.", ""])


def end_process_group() -> None:
    """Destroy the process group of an `accelerate launch`, if this process made one, before the interpreter exits:
    left to its shutdown, gloo's threads can abort a rank ('terminate called without an active exception')."""
    distributed = sys.modules.get("torch.distributed")  # never imported: no process group to end
    if distributed is not None and distributed.is_available() and distributed.is_initialized():
        distributed.destroy_process_group()


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    for stream in (sys.stdout, sys.stderr):  # a path with bytes that are not UTF-8 prints escaped, never crashes
        stream.reconfigure(errors="backslashreplace")
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(USAGE)
        return 0
    command, rest = argv[0], argv[1:]
    if command not in COMMANDS:
        print(f"freqdiff: unknown command {command!r}; choices: {', '.join(COMMANDS)}", file=sys.stderr)
        return 2
    if "-h" in rest or "--help" in rest:  # anywhere: the recipe scripts put their own flags first
        print(COMMANDS[command].help_text())
        return 0
    try:
        return COMMANDS[command].run(rest)
    except FreqdiffError as err:
        if err.echoed:  # under several ranks, one line: the main rank's
            return 0
        print(f"freqdiff {command}: error: {err}", file=sys.stderr)
        return 2
    finally:
        end_process_group()


if __name__ == "__main__":
    raise SystemExit(main())
