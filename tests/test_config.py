"""The one command-line syntax, the registries and their one-line errors."""
from __future__ import annotations

import pytest

from freqdiff.cli import main
from freqdiff.commands.registries import REGISTRIES
from freqdiff.core.config import RunConfig, apply_flags, split_argv
from freqdiff.core.registry import FreqdiffError


def test_flags_set_scalars_components_and_their_params() -> None:
    cfg = apply_flags(RunConfig(), {"n": "32", "lr": "1e-3", "model": "unet", "model.width": "16",
                                    "process.schedule": "cosine"})
    assert cfg.data.n == 32 and cfg.train.lr == 1e-3
    assert cfg.to_dict()["model"]["params"]["width"] == 16
    assert cfg.to_dict()["process"]["params"]["schedule"] == "cosine"


def test_config_round_trips_through_json() -> None:
    cfg = apply_flags(RunConfig(), {"n": "64", "model.width": "16", "ema": "0.999"})
    again = RunConfig.from_dict(cfg.to_dict())
    assert again.to_dict() == cfg.to_dict()


@pytest.mark.parametrize("flags, words", [
    ({"regularizer": "fourier_penalt"}, ["regularizer", "fourier_penalt", "fourier_penalty", "choices"]),
    ({"model.widht": "8"}, ["widht", "width"]),
    ({"model.width": "eight"}, ["width", "int", "eight"]),
    ({"stepz": "10"}, ["stepz", "steps"]),
    ({"optimizer": "rmsprop"}, ["rmsprop", "adam", "sgd"]),
    ({"n": "1"}, ["--n", "1"]),
])
def test_bad_input_is_one_line_naming_value_and_choices(flags: dict, words: list[str]) -> None:
    with pytest.raises(FreqdiffError) as err:
        apply_flags(RunConfig(), flags)
    message = str(err.value)
    assert "\n" not in message
    for word in words:
        assert word in message


def test_split_argv_accepts_both_forms_and_rejects_repeats() -> None:
    positional, flags = split_argv(["runs/x", "--n", "4", "--model.width=16"])
    assert positional == ["runs/x"] and flags == {"n": "4", "model.width": "16"}
    with pytest.raises(FreqdiffError, match="twice"):
        split_argv(["--n", "4", "--n", "8"])


def test_every_registry_is_listed_with_parameters(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for kind, registry in REGISTRIES.items():
        assert f"{kind}:" in out
        for name in registry.names():
            assert f"  {name}" in out
    assert "--model.width: int = 8" in out


def test_cli_reports_errors_as_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", "--dataset", "nope"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "nope" in err and "digits" in err


def _all_parameter_classes() -> list[tuple[str, type]]:
    from freqdiff.core.config import SECTIONS

    classes = [(f"--{section}", cls) for section, cls in SECTIONS.items()]
    return classes + [(f"{kind} '{name}'", registry.entry(name).params)
                      for kind, registry in REGISTRIES.items() for name in registry.names()]


def test_every_default_lies_in_its_declared_range() -> None:
    from dataclasses import fields

    from freqdiff.core.registry import check_fields, field_range

    declared = 0
    for where, cls in _all_parameter_classes():
        check_fields(cls(), where)
        declared += sum(field_range(f) is not None for f in fields(cls))
    assert declared >= 50  # the ranges are declared next to the parameters, not in scattered checks


@pytest.mark.parametrize("flags, words", [
    ({"batch_size": "0"}, ["--batch_size: 0", ">= 1"]),
    ({"lr": "nan"}, ["--lr: nan", "> 0"]),
    ({"momentum": "1"}, ["--momentum: 1", "[0, 1)"]),
    ({"k": "1.5"}, ["--k: 1.5", "(0, 1]"]),
    ({"process.beta_end": "1.5"}, ["process 'ddpm'.beta_end: 1.5", "(0, 1)"]),
    ({"model.multipliers": "1,0,4"}, ["model 'unet'.multipliers: 0 in (1, 0, 4)", ">= 1"]),
    ({"model.width": "12"}, ["model 'unet'.width: 12 is not a positive multiple of 8", "16, 24"]),
    ({"model": "mlp", "model.width": "2"}, ["model 'mlp'.width: 2", ">= 4"]),
    ({"extractor": "pixelz"}, ["pixelz", "pixels"]),
    ({"mixed_precision": "fp8"}, ["fp8", "no, fp16, bf16"]),
])
def test_declared_ranges_refuse_with_one_line_naming_value_and_range(flags: dict, words: list[str]) -> None:
    with pytest.raises(FreqdiffError) as err:
        apply_flags(RunConfig(), flags)
    assert "\n" not in str(err.value)
    for word in words:
        assert word in str(err.value)


def test_python_api_objects_are_checked_too() -> None:
    from freqdiff.core.config import TrainConfig
    from freqdiff.process.ddpm import DDPMParams

    with pytest.raises(FreqdiffError, match=r"process 'ddpm'\.beta_end: 1\.5 is out of range"):
        REGISTRIES["process"].build("ddpm", DDPMParams(beta_end=1.5))
    cfg = RunConfig(train=TrainConfig(save_every=0))
    with pytest.raises(FreqdiffError, match="--save_every: 0"):
        cfg.validate()


def test_list_and_train_help_show_the_ranges(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list"]) == 0
    listing = capsys.readouterr().out
    assert "--process.T: int = 1000  (>= 2)" in listing
    assert "--process.beta_end: float = 0.02  (in (0, 1))" in listing
    assert "--regularizer.target: str = 'eps'  (one of eps, score, x0)" in listing
    assert "--model.multipliers: tuple[int, ...] = (1, 2, 4)  (each >= 1)" in listing
    assert main(["train", "--help"]) == 0
    help_text = capsys.readouterr().out
    assert "--batch_size int = 512  (>= 1)" in help_text and "--mixed_precision str = 'no'  (one of no, fp16, bf16)" in help_text


def test_component_settings_and_registries_name_the_same_kinds() -> None:
    """RunConfig's component fields, then the extractor (an eval setting), are the registries in pipeline order."""
    from dataclasses import fields

    from freqdiff.core.config import COMPONENTS, EvalConfig

    assert COMPONENTS == ("dataset", "process", "model", "regularizer", "sampler")
    assert tuple(REGISTRIES) == (*COMPONENTS, "extractor")
    assert "extractor" in {f.name for f in fields(EvalConfig)}


def test_digits_cnn_held_out_the_default_test_set() -> None:
    """The digits CNN never trained on the images a default run holds out (retrain it if test_size changes)."""
    from freqdiff.core.config import DataConfig
    from freqdiff.metrics.digits_cnn import HELDOUT

    assert DataConfig().test_size == HELDOUT
