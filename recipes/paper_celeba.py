"""The paper's CelebA 32x32 grayscale setup (GPUs): accelerate launch --multi_gpu recipes/paper_celeba.py --dataset.root DIR

Run: `accelerate launch recipes/paper_celeba.py [--n 8,16,32] [--seeds 0,1] [--regularizer NAME --regularizer.PARAM V] ...`
Results: results/paper_celeba/ (one run directory per (n, seed), report.md, figures). Flags as `freqdiff sweep`.
"""
import sys

from freqdiff.cli import main

if __name__ == "__main__":
    raise SystemExit(main(["sweep", "--recipe", "paper_celeba", *sys.argv[1:]]))
