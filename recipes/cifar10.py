"""The paper's setup on CIFAR-10: 32x32 RGB (d = 3072; --dataset.grayscale true for the paper's d = 1024), the
paper's U-Net at W=32 as diffusers' UNet2DModel (--model diffusers_unet --model.preset paper; --model.preset
ddpm_cifar10 for Ho et al.'s 35.7M net), DDPM (linear betas, T=1000), SGD lr 0.01 momentum 0.95, batch min(n, 512),
2M steps, 10,000 DDIM-100 samples at 40 log-spaced checkpoints, FID in Inception features against the official test
batch (held out last: split all, test_size 10000); n = 512, 1024, 2048, 4096 (one seed), trained as one vmapped stack.

Data: torchvision's layout under --dataset.root DIR: DIR/cifar-10-batches-py/ (data_batch_1..5, test_batch), read
without running pickled code; nothing is downloaded unless --dataset.download true. Needs
`pip install -e ".[diffusers]"`; Inception: --extractor.weights PATH.
Hardware and time (ESTIMATES, no GPU timing has been measured here): one or more CUDA GPUs with bf16. Training is
4 x 2M member-steps of about 1.70 TFLOP each (bench/README's count for the paper's U-Net at W=32, batch 512; three
input channels add under 1%), 1.4e19 FLOP: about 25-75 hours on one H100 at 5-15% of its dense bf16 peak. A CPU
cannot: one batch-64 step takes 3.1 s on a core (bench/README, diffusers). Evaluation samples on the CPU today
(bench/README's known gap): about 4 core-hours per checkpoint at 10,000 samples, 160 checkpoints; --n_samples 2048
cuts it 5x.
Run: `accelerate launch recipes/cifar10.py --dataset.root DIR [--n 512,1024] [--seeds 0,1] [--ensemble K] ...`
Results: results/cifar10/ (one run directory per (n, seed), report.md, figures). Flags as `freqdiff sweep`.
"""
import sys

from freqdiff.cli import main

if __name__ == "__main__":
    raise SystemExit(main(["sweep", "--recipe", "cifar10", *sys.argv[1:]]))
