"""diffusers' UNet2DModel as a freqdiff backbone (`--model diffusers_unet`), and the map between its config.json and
freqdiff's parameters (`freqdiff export` writes one, `freqdiff eval --external` reads one).

Layout: levels of W * channel_mult[i] channels (finest first), `layers_per_block` ResNet blocks per encoder level and
one more per decoder level, self-attention after every block of the levels listed in `attention` (0 = finest) and in
the bottleneck (UNetMidBlock2D: ResNet, attention, ResNet). A preset fills every parameter left unset (None):
- tiny: W=16, levels (1, 2), 1 block, attention at level 1; trains on the 8x8 digits in seconds.
- paper: freqdiff's U-Net (models/unet.py) at W=32, block for block: a 3x3 stem; per encoder level 2 ResNet blocks
  (GroupNorm-SiLU-conv3x3, time embedding added per channel, GroupNorm-SiLU-dropout-conv3x3, 1x1 shortcut where the
  channels change) and a strided 3x3 conv to the next level; attention (GroupNorm, q/k/v and output projections with
  biases, residual) after every block of the two coarsest levels; a bottleneck of ResNet, attention, ResNet; 3 ResNet
  blocks per decoder level, each fed one encoder activation, nearest upsampling + 3x3 conv between levels; a
  GroupNorm-SiLU-conv3x3 head; a time MLP W -> 4W -> 4W. The trained parameters are equal (4,023,233 on one channel;
  255,089 at W=8 with head_dim 4). Not matched: diffusers computes the sinusoidal features each call (freqdiff looks
  them up in a frozen 1000 x W table) and its time MLP uses SiLU (freqdiff's GELU); it fixes the head dimension, not
  the head count: head_dim W/2 gives freqdiff's 4 heads at 2W and 8 at 4W (only the softmax differs).
- ddpm_cifar10: google/ddpm-cifar10-32 (Ho et al. 2020's CIFAR-10 net, 35.7M parameters): W=128, levels (1, 2, 2, 2),
  attention at 16x16 (level 1), one head per block, GroupNorm(32) with eps 1e-6, sin-first features shifted by one,
  unpadded strided downsampling; dropout 0.1 as it was trained (its released config.json says 0: inference).
Dropout layers become freqdiff's KeyedDropout (the same masks alone and in a stack). A stack runs its members' examples
as one batch (models/folded.py), the fused kernel included; one that runs by vmap (models/stack.py) sets `fused` False:
attention then runs diffusers' plain processor (baddbmm + softmax), which vmap batches, instead of torch's fused
kernel, which has no CPU batching rule (vmap would loop over the members, warning).
diffusers is optional (`pip install -e ".[diffusers]"`) and imported only when a network is built.
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass, fields
from typing import Any

from torch import Tensor, nn

from freqdiff.core.registry import FreqdiffError, build_params, param
from freqdiff.models import MODELS
from freqdiff.models.dropout import KeyedDropout
from freqdiff.process.context import BuildContext

DIFFUSERS_DEFAULTS = dict(norm_eps=1e-5, flip_sin_to_cos=True, freq_shift=0, downsample_padding=1)
PRESETS: dict[str, dict[str, Any]] = {
    "tiny": dict(width=16, channel_mult=(1, 2), layers_per_block=1, attention=(1,), head_dim=8, dropout=0.0,
                 norm_groups=8, **DIFFUSERS_DEFAULTS),
    "paper": dict(width=32, channel_mult=(1, 2, 4), layers_per_block=2, attention=(1, 2), head_dim=16, dropout=0.1,
                  norm_groups=8, **DIFFUSERS_DEFAULTS),
    "ddpm_cifar10": dict(width=128, channel_mult=(1, 2, 2, 2), layers_per_block=2, attention=(1,), head_dim=0,
                         dropout=0.1, norm_groups=32, norm_eps=1e-6, flip_sin_to_cos=False, freq_shift=1,
                         downsample_padding=0),
}
WHERE = "model 'diffusers_unet'"
INSTALL = f"{WHERE} needs diffusers, which is not installed: pip install -e \".[diffusers]\""


@dataclass(frozen=True)
class DiffusersUNetParams:
    preset: str = param("tiny", choices=tuple(PRESETS))  # the layout that fills every parameter left unset
    width: int | None = param(None, ge=1)  # W: channels of the finest level
    channel_mult: tuple[int, ...] | None = param(None, ge=1)  # channels per level = W * multiplier, finest first
    layers_per_block: int | None = param(None, ge=1)  # ResNet blocks per encoder level (decoder: one more)
    attention: tuple[int, ...] | None = param(None, ge=0)  # levels with self-attention, 0 = finest ("," for none)
    head_dim: int | None = param(None, ge=0)  # channels per attention head (0: one head per block)
    dropout: float | None = param(None, ge=0, lt=1)  # dropout before the second conv of every ResNet block
    norm_groups: int | None = param(None, ge=1)  # GroupNorm groups (must divide every level's channels)
    norm_eps: float | None = param(None, gt=0)  # GroupNorm epsilon
    flip_sin_to_cos: bool | None = None  # time features cos-first (diffusers' default) or sin-first
    freq_shift: int | None = param(None, ge=0)  # shift of the time features' frequency index
    downsample_padding: int | None = param(None, ge=0)  # padding of the strided downsampling conv


def resolved(params: DiffusersUNetParams) -> dict[str, Any]:
    """Every parameter but the preset, with the preset's value where `params` leaves it unset."""
    preset = PRESETS[params.preset]
    return {f.name: preset[f.name] if getattr(params, f.name) is None else getattr(params, f.name)
            for f in fields(params) if f.name != "preset"}


def import_diffusers() -> Any:
    """The diffusers package, or one line saying how to install it."""
    try:
        import diffusers
    except ImportError:
        raise FreqdiffError(INSTALL) from None
    return diffusers


def _check(p: dict[str, Any], image_shape: tuple[int, ...]) -> None:
    """Refuse a layout UNet2DModel cannot build on these images, naming the value and the choices."""
    levels, widths = len(p["channel_mult"]), [p["width"] * m for m in p["channel_mult"]]
    if not levels:
        raise FreqdiffError(f"{WHERE}.channel_mult: must name at least one level, finest first, e.g. 1,2,4")
    if any(w % p["norm_groups"] for w in widths):
        raise FreqdiffError(f"{WHERE}.norm_groups: {p['norm_groups']} does not divide the channels {widths}")
    if any(level >= levels for level in p["attention"]):
        raise FreqdiffError(f"{WHERE}.attention: levels {p['attention']} must lie in 0..{levels - 1}")
    attended = sorted({widths[level] for level in p["attention"]} | {widths[-1]})
    if p["head_dim"] and any(w % p["head_dim"] for w in attended):
        raise FreqdiffError(f"{WHERE}.head_dim: {p['head_dim']} does not divide the attention channels {attended}; "
                            "choose a divisor, or 0 for one head per block")
    multiple = 2 ** (levels - 1)
    if any(side % multiple for side in image_shape[1:]):
        raise FreqdiffError(f"{WHERE}: {levels} levels need image sides that are multiples of {multiple}, and these "
                            f"images are {image_shape[1]}x{image_shape[2]}; choose fewer levels (--model.channel_mult)")


def unet_config(params: DiffusersUNetParams, image_shape: tuple[int, ...]) -> dict[str, Any]:
    """The UNet2DModel keyword arguments of `params` on images (C, H, W), checked."""
    p = resolved(params)
    _check(p, image_shape)
    channels, height, width = image_shape
    attended = [level in p["attention"] for level in range(len(p["channel_mult"]))]
    return dict(sample_size=height if height == width else (height, width), in_channels=channels,
                out_channels=channels, block_out_channels=tuple(p["width"] * m for m in p["channel_mult"]),
                layers_per_block=p["layers_per_block"],
                down_block_types=tuple("AttnDownBlock2D" if a else "DownBlock2D" for a in attended),
                up_block_types=tuple("AttnUpBlock2D" if a else "UpBlock2D" for a in reversed(attended)),
                attention_head_dim=p["head_dim"] or None, dropout=p["dropout"], norm_num_groups=p["norm_groups"],
                norm_eps=p["norm_eps"], flip_sin_to_cos=p["flip_sin_to_cos"], freq_shift=p["freq_shift"],
                downsample_padding=p["downsample_padding"])


def unet_from_params(params: DiffusersUNetParams, image_shape: tuple[int, ...]) -> nn.Module:
    """A freshly initialised UNet2DModel laid out by `params` for images (C, H, W)."""
    config = unet_config(params, image_shape)
    return import_diffusers().UNet2DModel(**config)


# config.json keys that params_from_unet_config maps, the keys the data sets (or that the positional embedding
# ignores), and the rest, which must hold UNet2DModel's defaults.
MAPPED = {"block_out_channels", "layers_per_block", "down_block_types", "up_block_types", "attention_head_dim",
          "dropout", "norm_num_groups", "norm_eps", "flip_sin_to_cos", "freq_shift", "downsample_padding"}
FROM_DATA = {"sample_size", "in_channels", "out_channels", "num_train_timesteps"}


def _plain(value: Any) -> Any:
    """A config value with lists as tuples, so a JSON list equals the tuple it was saved from."""
    return tuple(_plain(v) for v in value) if isinstance(value, (list, tuple)) else value


def _unet_defaults() -> dict[str, Any]:
    signature = inspect.signature(import_diffusers().UNet2DModel.__init__)
    return {name: _plain(p.default) for name, p in signature.parameters.items() if name != "self"}


def _attention_levels(config: dict[str, Any]) -> tuple[int, ...]:
    """The levels with attention named by down_block_types, if up_block_types mirrors them."""
    down, up = config["down_block_types"], config["up_block_types"]
    kinds = {"DownBlock2D": False, "AttnDownBlock2D": True}
    bad = next((t for t in down if t not in kinds), None)
    if bad is not None or len(down) != len(config["block_out_channels"]):
        raise FreqdiffError(f"UNet2DModel config: down_block_types {list(down)} is not supported; diffusers_unet "
                            f"builds one of {', '.join(kinds)} per entry of block_out_channels")
    mirrored = tuple("AttnUpBlock2D" if kinds[t] else "UpBlock2D" for t in reversed(down))
    if tuple(up) != mirrored:
        raise FreqdiffError(f"UNet2DModel config: up_block_types {list(up)} is not supported; diffusers_unet builds "
                            f"the mirror of down_block_types: {list(mirrored)}")
    return tuple(level for level, t in enumerate(down) if kinds[t])


def _width(channels: tuple[int, ...]) -> tuple[int, tuple[int, ...]]:
    """(W, multipliers) with channels = W * multipliers."""
    if not channels or any(c % channels[0] for c in channels):
        raise FreqdiffError(f"UNet2DModel config: block_out_channels {list(channels)} is not supported; diffusers_unet "
                            "builds multiples of the first level's channels")
    return channels[0], tuple(c // channels[0] for c in channels)


def params_from_unet_config(config: dict[str, Any]) -> DiffusersUNetParams:
    """The parameters (every one set: the preset is moot) that rebuild exactly the UNet2DModel of `config` (its
    config.json; keys starting with _ are metadata); sample_size and the channels are the data's. A key or value it
    cannot carry is refused, named."""
    defaults = _unet_defaults()
    given = {key: _plain(value) for key, value in config.items() if not key.startswith("_")}
    unknown = sorted(set(given) - set(defaults))
    if unknown:
        raise FreqdiffError(f"UNet2DModel config: unknown key {unknown[0]!r} (not a UNet2DModel argument of the "
                            f"installed diffusers {import_diffusers().__version__})")
    full = {**defaults, **given}
    for key in sorted(set(full) - MAPPED - FROM_DATA):
        if full[key] != defaults[key]:
            raise FreqdiffError(f"UNet2DModel config: {key}={full[key]!r} is not supported; diffusers_unet builds "
                                f"{key}={defaults[key]!r} and carries {', '.join(sorted(MAPPED))}")
    width, channel_mult = _width(full["block_out_channels"])
    values = dict(width=width, channel_mult=channel_mult, layers_per_block=full["layers_per_block"],
                  attention=_attention_levels(full), head_dim=full["attention_head_dim"] or 0, dropout=full["dropout"],
                  norm_groups=full["norm_num_groups"], norm_eps=full["norm_eps"],
                  flip_sin_to_cos=full["flip_sin_to_cos"], freq_shift=full["freq_shift"],
                  downsample_padding=full["downsample_padding"])
    return build_params(DiffusersUNetParams, values, "UNet2DModel config", strict=True)


def _keyed_dropout(module: nn.Module) -> None:
    """Replace every torch Dropout below `module` by a KeyedDropout of the same rate (in place)."""
    for name, child in module.named_children():
        if isinstance(child, nn.Dropout) and not isinstance(child, KeyedDropout):
            setattr(module, name, KeyedDropout(child.p))
        else:
            _keyed_dropout(child)


class DiffusersUNet(nn.Module):
    """F(x, c_noise) = UNet2DModel(x, c_noise).sample; c_noise is the process's (DDPM: the integer step, as in
    diffusers; EDM, VE, blurring: a float, embedded by the same sinusoidal features)."""

    def __init__(self, unet: nn.Module) -> None:
        super().__init__()
        self.unet = unet
        self._fused = True
        _keyed_dropout(unet)

    def forward(self, x: Tensor, c_noise: Tensor) -> Tensor:
        return self.unet(x, c_noise).sample

    @property
    def fused(self) -> bool:
        """Whether attention runs torch's fused kernel (one network) or the plain processor that vmap batches."""
        return self._fused

    @fused.setter
    def fused(self, value: bool) -> None:
        from diffusers.models.attention_processor import Attention, AttnProcessor, AttnProcessor2_0

        self._fused = value
        for module in self.unet.modules():
            if isinstance(module, Attention):
                module.set_processor(AttnProcessor2_0() if value else AttnProcessor())


@MODELS.register("diffusers_unet", DiffusersUNetParams)
def diffusers_unet(params: DiffusersUNetParams, context: BuildContext) -> nn.Module:
    """diffusers' UNet2DModel (pip install -e ".[diffusers]"); unset parameters take the preset's (tiny, paper, ...)."""
    return DiffusersUNet(unet_from_params(params, context.image_shape))
