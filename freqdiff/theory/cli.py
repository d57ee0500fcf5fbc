"""`freqdiff theory [--name value ...]`: run (or resume) the RF-model study; `--help` lists the settings."""
from __future__ import annotations

import dataclasses
import typing

from freqdiff.config import split_argv
from freqdiff.registry import FreqdiffError, build_params, type_name
from freqdiff.theory.study import TheoryConfig, run_study

USAGE = """usage: freqdiff theory [--name value ...]
The exactly solvable random-features model (paper sec. 4): closed-form train/test losses against tau,
the spectrum of U with its predicted bulk edges, tau_gen and tau_mem against psi_n, and a GD check.
Lists are comma-separated (--psi_n 4,8,16,32). Results go to --out (resumed if it holds a matching study)."""


def options_help() -> str:
    """USAGE and every setting of TheoryConfig with its type and default."""
    hints = typing.get_type_hints(TheoryConfig)
    lines = [USAGE, "", "settings:"]
    for f in dataclasses.fields(TheoryConfig):
        lines.append(f"  --{f.name} {type_name(hints[f.name])} = {f.default!r}")
    return "\n".join(lines)


def parse(argv: list[str]) -> TheoryConfig:
    """A validated TheoryConfig from `--name value` flags."""
    positional, flags = split_argv(argv)
    if positional:
        raise FreqdiffError(f"theory: unexpected argument {positional[0]!r}; options are --name value")
    cfg = build_params(TheoryConfig, flags, "theory")
    cfg.validate()
    return cfg


def main(argv: list[str]) -> int:
    """Run the study; 0 on success (FreqdiffError propagates to the caller, which prints it)."""
    if argv[:1] in (["-h"], ["--help"]):
        print(options_help())
        return 0
    result = run_study(parse(argv))
    print(f"theory: wrote {result.config.out} ({len(result.settings)} settings, {result.seconds:.0f} s)")
    return 0
