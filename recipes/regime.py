"""The regime map: the MLP baseline scanned over n, n* where tau_mem passes tau_gen, and the fixed-t loss split.

Run: `accelerate launch recipes/regime.py [--n 16,32,64] [--seeds 0,1] [--out DIR] [run options]`
(options as `freqdiff sweep`: `--steps_per_n`, `--ensemble K`, any `freqdiff train` option such as `--lr 3e-3`).
It trains, evaluates and reads the window of every (n, seed) of the registered recipe `regime`
(freqdiff/commands/recipes.py: n = 16..1024, one seed, 28 n steps, at least 4000), then writes regime.png, regime.csv and regime.md
(freqdiff.analysis.reports.regime) beside the sweep's report.md. Results: results/regime/.
Redo only the analysis: `python -m freqdiff.analysis.reports.regime results/regime`.
"""
import dataclasses
import sys

from freqdiff.cli import main
from freqdiff.commands.recipes import RECIPES
from freqdiff.commands.sweep import SweepOptions, output_dir, parse_sweep_argv
from freqdiff.core.distributed import process_state

RECIPE = "regime"


def usage() -> str:
    """This script's help: what it does and its sweep options (run options: `freqdiff train --help`)."""
    fields = "\n".join(f"  --{f.name} (default {f.default!r})" for f in dataclasses.fields(SweepOptions)
                       if f.name != "recipe")
    return f"{__doc__}\nsweep options:\n{fields}\nrun options: see `freqdiff train --help`"


def run(argv: list[str]) -> int:
    """The sweep of the recipe, then the regime map of its output directory (main process only)."""
    if argv[:1] in (["-h"], ["--help"]):
        print(usage())
        return 0
    code = main(["sweep", "--recipe", RECIPE, *argv])
    if code or not process_state().is_main_process:
        return code
    from freqdiff.analysis.reports.regime import main as regime_main

    options, run_flags = parse_sweep_argv(["--recipe", RECIPE, *argv])
    return regime_main([str(output_dir(options, RECIPES.build(RECIPE), run_flags))])


if __name__ == "__main__":
    raise SystemExit(run(sys.argv[1:]))
