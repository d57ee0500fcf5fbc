"""The paper's recipe (plain epsilon MSE, DDPM) in the window regime of the CPU scale: tau_gen, tau_mem against n.

The residual MLP of the regime map (results/regime/) at n = 128, 256, 512 (a factor 4; n* lies in (128, 256]),
seeds 0-5, trained as one folded ensemble per n split over both cores, 40 n steps (at least 4000).
Run: `accelerate launch recipes/baseline.py [--n 128,256] [--seeds 0,1] [--ensemble K] [--lr 2e-3] ...`
Results: results/baseline/ (one run directory per (n, seed), report.md with the seed spread, tau_mem ~ n^slope with
its interval, tau_gen across n, the f_mem collapse). Flags as `freqdiff sweep`.
"""
import sys

from freqdiff.cli import main

if __name__ == "__main__":
    raise SystemExit(main(["sweep", "--recipe", "baseline", *sys.argv[1:]]))
