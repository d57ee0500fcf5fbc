"""freqdiff's U-Net against diffusers' UNet2DModel of the same size: one DDPM training step (forward, MSE on eps,
backward, Adam step) of each, interleaved in one run (bench/common.py).

The peer is the `paper` preset of freqdiff's diffusers_unet model (freqdiff/models/diffusers_unet.py, whose
docstring gives the block-for-block mapping and the two details diffusers cannot match) at width W, with
head_dim W/2: the trainable parameters are equal (4,023,233 at W=32; 255,089 at W=8).
Both see the same batch shape; each draws its own t and noise per step (same distribution, same cost).
diffusers' attention is torch's fused scaled_dot_product_attention (AttnProcessor2_0).

Usage: python bench/bench_unet.py [--steps 20] [--n 64] [--threads 1]   (--n: the batch; needs `pip install diffusers`)
Prints W=32 on 32x32 (the paper's scale; the target: speed >= 1.0x diffusers), then W=8 on 8x8 (the default study
U-Net) for context. Both models are bare networks outside freqdiff's trainer, so dropout is torch's in both (the
trainer's keyed dropout costs about 5% more at W=32; bench/bench_trainer.py measures the trainer's bookkeeping).
"""
from __future__ import annotations

import sys
from typing import Callable

import torch
from torch import nn

from common import median_step_times, parse
from freqdiff.core.registry import FreqdiffError
from freqdiff.models.diffusers_unet import DiffusersUNetParams, unet_from_params
from freqdiff.models.unet import UNet, UNetParams

T = 1000


def diffusers_unet(width: int, side: int) -> nn.Module:
    """diffusers' UNet2DModel laid out as freqdiff's U-Net at width W (the `paper` preset of --model diffusers_unet)."""
    try:
        return unet_from_params(DiffusersUNetParams(preset="paper", width=width, head_dim=width // 2), (1, side, side))
    except FreqdiffError as err:
        sys.exit(f"bench_unet.py: {err}")


def train_step(forward: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], model: nn.Module,
               batch: int, side: int) -> Callable[[], None]:
    """A bare DDPM step on (batch, 1, side, side) images: t and noise drawn, MSE on eps, Adam."""
    alphabar = torch.cumprod(1 - torch.linspace(1e-4, 0.02, T), 0)
    x0 = torch.rand(batch, 1, side, side, generator=torch.Generator().manual_seed(0)) * 2 - 1
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-4)

    def step() -> None:
        t = torch.randint(0, T, (batch,))
        eps = torch.randn_like(x0)
        ab = alphabar[t].reshape(-1, 1, 1, 1)
        loss = (forward(ab.sqrt() * x0 + (1 - ab).sqrt() * eps, t) - eps).pow(2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    return step


def count(model: nn.Module, trainable: bool = False) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable)


def compare(width: int, side: int, batch: int, steps: int) -> None:
    torch.manual_seed(0)
    ours, peer = UNet(1, UNetParams(width=width), T).train(), diffusers_unet(width, side).train()
    times = median_step_times({
        "freqdiff": train_step(ours, ours, batch, side),
        "diffusers": train_step(lambda x, t: peer(x, t, return_dict=False)[0], peer, batch, side)}, steps)
    print(f"W={width} on {side}x{side}, batch {batch}: parameters freqdiff {count(ours) / 1e6:.3f}M "
          f"({count(ours, True) / 1e6:.3f}M trained), diffusers {count(peer) / 1e6:.3f}M")
    for label, median in times.items():
        print(f"  {label:<10}{1000 * median:>9.1f} ms/step  time ratio {median / times['diffusers']:.3f}  "
              f"speed vs diffusers {times['diffusers'] / median:.2f}x")


def main(argv: list[str]) -> None:
    args = parse(__doc__, ["--n", "64", *argv], steps=20)  # --n is the batch, 64 unless given
    torch.set_num_threads(args.threads)
    diffusers_unet(8, 8)  # fail at once, in one line, without diffusers
    print(f"training step, Adam, {args.threads} thread(s), {args.steps} timed steps each, interleaved")
    compare(32, 32, args.n, args.steps)
    compare(8, 8, args.n, args.steps)


if __name__ == "__main__":
    main(sys.argv[1:])
