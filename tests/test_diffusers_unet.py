"""--model diffusers_unet: presets and their sizes, config.json <-> parameters, every process, every regularizer,
stacks equal to lone members, and the one-line refusal without diffusers."""
from __future__ import annotations

import ast
import json
import sys
from pathlib import Path

import pytest
import torch

from conftest import TINY, build_context, tiny_config
from freqdiff.cli import main
from freqdiff.core.registry import FreqdiffError
from freqdiff.models import MODELS, diffusers_unet
from freqdiff.models.diffusers_unet import (INSTALL, PRESETS, DiffusersUNet, DiffusersUNetParams,
                                            params_from_unet_config, unet_config, unet_from_params)
from freqdiff.models.unet import UNet, UNetParams
from freqdiff.pipeline.build import build_pipeline
from freqdiff.train.trainer import train, train_runs

# google/ddpm-cifar10-32's unet/config.json, as released (diffusers 0.16)
DDPM_CIFAR10 = {
    "_class_name": "UNet2DModel", "_diffusers_version": "0.16.0", "act_fn": "silu", "add_attention": True,
    "attention_head_dim": None, "block_out_channels": [128, 256, 256, 256], "center_input_sample": False,
    "class_embed_type": None, "down_block_types": ["DownBlock2D", "AttnDownBlock2D", "DownBlock2D", "DownBlock2D"],
    "downsample_padding": 0, "flip_sin_to_cos": False, "freq_shift": 1, "in_channels": 3, "layers_per_block": 2,
    "mid_block_scale_factor": 1, "norm_eps": 1e-06, "norm_num_groups": 32, "num_class_embeds": None,
    "out_channels": 3, "resnet_time_scale_shift": "default", "sample_size": 32, "time_embedding_type": "positional",
    "up_block_types": ["UpBlock2D", "UpBlock2D", "AttnUpBlock2D", "UpBlock2D"]}
SHAPES = {"tiny": (1, 8, 8), "paper": (1, 32, 32), "ddpm_cifar10": (3, 32, 32)}
COUNTS = {"tiny": 176_849, "paper": 4_023_233, "ddpm_cifar10": 35_746_307}  # ddpm-cifar10-32: Ho et al.'s 35.7M
FAST = {"model": "diffusers_unet", "steps": "10", "save_every": "5", "n_checkpoints": "2", "first_checkpoint": "5"}


def count(model: torch.nn.Module, trainable: bool = False) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable)


@pytest.mark.parametrize("preset", list(PRESETS))
def test_presets_build_with_their_parameter_counts_and_round_trip(preset: str) -> None:
    params, shape = DiffusersUNetParams(preset=preset), SHAPES[preset]
    unet = unet_from_params(params, shape)
    assert count(unet) == COUNTS[preset]
    assert unet_config(params_from_unet_config(dict(unet.config)), shape) == unet_config(params, shape)


def test_paper_preset_trains_as_many_parameters_as_freqdiffs_unet() -> None:
    for width in (8, 32):
        ours = UNet(1, UNetParams(width=width))
        peer = unet_from_params(DiffusersUNetParams(preset="paper", width=width, head_dim=width // 2), (1, 8, 8))
        assert count(peer) == count(ours, trainable=True)


def test_ddpm_cifar10_config_rebuilds_exactly() -> None:
    params = params_from_unet_config(json.loads(json.dumps(DDPM_CIFAR10)))
    assert unet_config(params, (3, 32, 32)) == unet_config(DiffusersUNetParams(preset="ddpm_cifar10", dropout=0.0),
                                                           (3, 32, 32))
    built = dict(unet_from_params(params, (3, 32, 32)).config)
    assert all(json.loads(json.dumps(built[k])) == v for k, v in DDPM_CIFAR10.items() if not k.startswith("_"))


@pytest.mark.parametrize("change, named", [
    ({"time_embedding_type": "fourier"}, "time_embedding_type='fourier'"),
    ({"block_out_channels": [128, 192, 256, 256]}, "block_out_channels [128, 192, 256, 256]"),
    ({"up_block_types": ["UpBlock2D", "AttnUpBlock2D", "UpBlock2D", "UpBlock2D"]}, "up_block_types"),
    ({"down_block_types": ["DownBlock2D", "SkipDownBlock2D", "DownBlock2D", "DownBlock2D"]}, "down_block_types"),
    ({"cross_attention_dim": 768}, "unknown key 'cross_attention_dim'"),
    ({"attention_head_dim": [8, 16, 16, 16]}, "head_dim: expected int | null, got (8, 16, 16, 16)"),
])
def test_unsupported_configs_are_refused_naming_the_key(change: dict, named: str) -> None:
    with pytest.raises(FreqdiffError, match="UNet2DModel config") as err:
        params_from_unet_config({**DDPM_CIFAR10, **change})
    assert named in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize("params, shape, words", [
    ({"attention": "2"}, (1, 8, 8), ["attention", "0..1"]),
    ({"norm_groups": "3"}, (1, 8, 8), ["norm_groups: 3", "[16, 32]"]),
    ({"head_dim": "5"}, (1, 8, 8), ["head_dim: 5", "[32]"]),
    ({"channel_mult": "1,2,2"}, (1, 10, 10), ["multiples of 4", "10x10"]),
])
def test_bad_layouts_are_refused_in_one_line(params: dict, shape: tuple, words: list[str]) -> None:
    with pytest.raises(FreqdiffError) as err:
        MODELS.build("diffusers_unet", params, context=build_context(shape))
    assert all(w in str(err.value) for w in words) and "\n" not in str(err.value)


def test_without_diffusers_list_works_and_building_says_how_to_install(monkeypatch: pytest.MonkeyPatch,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    """The module imports diffusers only inside the builder, so `freqdiff list` never needs it."""
    top = ast.parse(Path(diffusers_unet.__file__).read_text()).body
    modules = [a.name for n in top if isinstance(n, ast.Import) for a in n.names] + \
        [n.module for n in top if isinstance(n, ast.ImportFrom) and n.module]
    assert modules and not [m for m in modules if m.split(".")[0] == "diffusers"]
    monkeypatch.setitem(sys.modules, "diffusers", None)  # `import diffusers` now raises ImportError
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert "  diffusers_unet  - diffusers' UNet2DModel" in out
    assert "--model.preset: str = 'tiny'  (one of tiny, paper, ddpm_cifar10)" in out
    assert "--model.channel_mult: tuple[int, ...] | None = None  (>= 1)" in out
    with pytest.raises(FreqdiffError) as err:
        MODELS.build("diffusers_unet", {}, context=build_context())
    assert str(err.value) == INSTALL and 'pip install -e ".[diffusers]"' in INSTALL


@pytest.mark.parametrize("process", ["ddpm", "edm"])
def test_trains_from_the_command_line(process: str, tmp_path: Path) -> None:
    run = tmp_path / process
    flags = {**TINY, **FAST, "process": process, "out": str(run)}
    assert main(["train", *[a for k, v in flags.items() for a in (f"--{k}", v)]]) == 0
    losses = [json.loads(line)["loss"] for line in (run / "log.jsonl").read_text().splitlines() if '"loss"' in line]
    assert len(losses) >= 2 and all(torch.isfinite(torch.tensor(losses)))
    assert [p.name for p in sorted((run / "checkpoints").iterdir())] == ["step_00000005.pt", "step_00000010.pt"]


@pytest.mark.parametrize("process", ["ve", "equal_snr", "blurring"])
def test_other_processes_feed_their_c_noise(process: str) -> None:
    """A forward and backward pass through the preconditioned network: finite outputs and gradients."""
    pipe = build_pipeline(tiny_config(model="diffusers_unet", process=process))
    x0 = pipe.split.train[:4]
    level = pipe.process.sample_levels(4, torch.Generator().manual_seed(0), x0.device)
    out = pipe.model(x0 + 0.1 * torch.randn_like(x0), level)
    out.square().mean().backward()
    assert out.shape == x0.shape and torch.isfinite(out).all()
    assert all(torch.isfinite(p.grad).all() for p in pipe.model.parameters() if p.grad is not None)


@pytest.mark.parametrize("regularizer, params", [
    ("fourier_penalty", {}), ("spectral_filter", {"regularizer.cutoff": "0.3"}), ("frequency_weighted_loss", {}),
    ("focal_frequency", {}), ("weight_decay", {}), ("dropout", {"regularizer.p": "0.1"})])
def test_every_regularizer_trains_it(regularizer: str, params: dict, tmp_path: Path) -> None:
    cfg = tiny_config(**{**FAST, "steps": "2", "first_checkpoint": "2", "save_every": "2", "n_checkpoints": "1",
                         "grid_size": "1", "regularizer": regularizer, **params})
    run = train(cfg, tmp_path / regularizer)
    assert (run / "checkpoints" / "step_00000002.pt").exists()


def test_a_two_member_stack_equals_two_lone_members(tmp_path: Path) -> None:
    """Keyed dropout on, attention through the plain processor in the stack: weights agree to 1e-5."""
    settings = {**FAST, "steps": "8", "batch_size": "4", "optimizer": "sgd", "lr": "0.05", "model.dropout": "0.1"}
    configs = [tiny_config(**settings, n=n, seed=seed) for n, seed in (("8", "0"), ("12", "1"))]
    for i, cfg in enumerate(configs):
        train(cfg, tmp_path / f"single{i}")
    train_runs([(cfg, tmp_path / f"member{i}") for i, cfg in enumerate(configs)])
    for i in range(2):
        a, b = (torch.load(tmp_path / f"{kind}{i}" / "state.pt", weights_only=True)["model"]
                for kind in ("single", "member"))
        assert a.keys() == b.keys()
        assert max((a[k] - b[k]).abs().max().item() for k in a) < 1e-5


def test_fused_switches_the_attention_processor() -> None:
    from diffusers.models.attention_processor import AttnProcessor, AttnProcessor2_0

    net = DiffusersUNet(unet_from_params(DiffusersUNetParams(), (1, 8, 8)))
    processors = lambda: {type(m.processor) for m in net.modules() if hasattr(m, "processor")}  # noqa: E731
    assert processors() == {AttnProcessor2_0}
    net.fused = False
    assert processors() == {AttnProcessor} and not net.fused
