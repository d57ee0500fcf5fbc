"""`freqdiff theory [--quick] [--name value ...]`: run (or resume) the RF-model study; `--help` lists the settings."""
from __future__ import annotations

import dataclasses

from freqdiff.core.config import split_argv
from freqdiff.core.registry import FreqdiffError, build_params, option_lines
from freqdiff.theory.config import TheoryConfig
from freqdiff.theory.study import run_study

USAGE = """usage: freqdiff theory [--quick] [--name value ...]
The exactly solvable random-features model (paper sec. 4): closed-form train/test losses against tau for the
Gaussian-equivalent model (Theorem 3.2's, any psi_p) and the exact model (modest psi_p), four readouts of tau_mem,
their slopes against psi_n with intervals over draws of W and the data, the phase figure, tau_gen, a GD check.
Lists are comma-separated (--psi_n 2,4,8). Results go to --out (resumed if it holds a matching study).
  --quick   a first look in under a minute (the defaults below are the full study, about 15 minutes on 2 cores);
            later flags override it, e.g. --quick --draws 5"""

# --quick: fewer psi_p, t, psi_n and draws, a smaller exact model; its own output folder.
QUICK = {"psi_p": "32,1024", "psi_n": "2,4,8,16", "t": "0.01,0.1", "draws": "4", "gap_level": "2,0.5",
         "exact_psi_p": "32", "exact_psi_n": "2,4,8", "exact_t": "0.1", "exact_draws": "2", "gd_tau_end": "1000",
         "out": "runs/random_features_quick"}


def options_help() -> str:
    """USAGE, the --quick preset and every setting of TheoryConfig with its type, default and range."""
    notes = {f.name: f.metadata["help"] for f in dataclasses.fields(TheoryConfig)}
    return "\n".join([USAGE, "", "--quick sets: " + " ".join(f"--{k} {v}" for k, v in QUICK.items()), "", "settings:",
                      *option_lines(TheoryConfig, notes)])


def parse(argv: list[str]) -> TheoryConfig:
    """A validated TheoryConfig from `[--quick] --name value` flags (explicit flags override --quick)."""
    quick = "--quick" in argv
    positional, flags = split_argv([a for a in argv if a != "--quick"])
    if positional:
        raise FreqdiffError(f"theory: unexpected argument {positional[0]!r}; options are --quick and --name value")
    cfg = build_params(TheoryConfig, {**(QUICK if quick else {}), **flags}, "theory")
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
