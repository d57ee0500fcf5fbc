"""The paper's CelebA setup: 32x32 grayscale, the paper's U-Net at W=32, DDPM (linear betas, T=1000), SGD lr 0.01
momentum 0.95, batch min(n, 512), 2M steps, 10,000 DDIM-100 samples at 40 log-spaced checkpoints, FID in Inception
features; n = 512, 1024, 2048, 4096 (one seed), trained as one vmapped stack.

Data: torchvision's CelebA layout under --dataset.root DIR: DIR/celeba/img_align_celeba/*.jpg and
DIR/celeba/list_eval_partition.txt (read in that file's order, the last 2048 images held out); nothing is downloaded
unless --dataset.download true (torchvision's, through gdown). Inception: --extractor.weights PATH.
Hardware and time (ESTIMATES, no GPU timing has been measured here): one or more CUDA GPUs with bf16. Training is
4 x 2M member-steps of about 1.70 TFLOP each (bench/README's FLOP count of one step at W=32, batch 512), 1.4e19 FLOP:
about 25-75 hours on one H100 at 5-15% of its dense bf16 peak (the paper: about 50 h per run on 2 GPUs). A CPU
cannot: one batch-64 step takes 3.0 s on a core (bench/README). Evaluation samples on the CPU today (bench/README's
known gap): about 4 core-hours per checkpoint at 10,000 samples, 160 checkpoints; --n_samples 2048 cuts it 5x.
Run: `accelerate launch recipes/paper_celeba.py --dataset.root DIR [--n 512,1024] [--seeds 0,1] [--ensemble K] ...`
Results: results/paper_celeba/ (one run directory per (n, seed), report.md, figures). Flags as `freqdiff sweep`.
"""
import sys

from freqdiff.cli import main

if __name__ == "__main__":
    raise SystemExit(main(["sweep", "--recipe", "paper_celeba", *sys.argv[1:]]))
