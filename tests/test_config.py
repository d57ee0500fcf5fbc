"""The one command-line syntax, the registries and their one-line errors."""
from __future__ import annotations

from dataclasses import fields as dataclass_fields

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


def _scalar_fields(kind: type) -> list[tuple[str, type, str]]:
    """(where, class, field) of every parameter of type `kind` (or `kind | None`) of every registry and section."""
    import typing

    from freqdiff.core.registry import _base_type

    return [(where, cls, f.name) for where, cls in _all_parameter_classes() for f in dataclass_fields(cls)
            if _base_type(typing.get_type_hints(cls)[f.name]) in ((kind, False), (kind, True))]


def test_inf_is_refused_by_every_float_parameter_that_does_not_allow_it() -> None:
    """inf passed every range (only NaN was refused): sigma_max inf gave NaN grids, focal alpha inf did nothing."""
    from freqdiff.core.registry import build_params, field_range

    checked = 0
    for where, cls, name in _scalar_fields(float):
        allowed = getattr(field_range(next(f for f in dataclass_fields(cls) if f.name == name)), "allow_inf", False)
        for value in ("inf", "-inf"):
            if allowed:
                build_params(cls, {name: value}, where)
                continue
            with pytest.raises(FreqdiffError, match=rf"{name}: {value} is out of range: {name} must be "):
                build_params(cls, {name: value}, where)
        checked += 1
    assert checked >= 30


def test_a_field_may_allow_inf_and_says_so() -> None:
    from dataclasses import dataclass

    from freqdiff.core.registry import build_params, param, range_text

    @dataclass(frozen=True)
    class Horizon:
        end: float = param(1.0, gt=0, allow_inf=True)
        start: float = param(0.0, ge=0)

    assert build_params(Horizon, {"end": "inf"}, "h").end == float("inf")
    with pytest.raises(FreqdiffError, match="h.start: inf is out of range: start must be a finite number >= 0"):
        build_params(Horizon, {"start": "inf"}, "h")
    assert range_text(dataclass_fields(Horizon)[0]) == "  (> 0 and inf allowed)"


def test_every_int_parameter_fits_in_64_bits_and_seeds_and_threads_have_ranges() -> None:
    """A seed of 2^64 stopped in 'Overflow when unpacking long long', --threads 1e11 in a traceback."""
    from freqdiff.core.registry import build_params

    checked = 0
    for where, cls, name in _scalar_fields(int):
        with pytest.raises(FreqdiffError, match=rf"{name}: {2**63} is out of range"):
            build_params(cls, {name: str(2**63)}, where)
        checked += 1
    assert checked >= 30
    for flag, words in (("seed", "--seed: 4294967296 is out of range: seed must be in [0, 4294967295]"),
                        ("data_seed", "--data_seed: 4294967296"), ("sample_seed", "--sample_seed: 4294967296")):
        with pytest.raises(FreqdiffError) as err:
            apply_flags(RunConfig(), {flag: str(2**32)})
        assert words in str(err.value)
    with pytest.raises(FreqdiffError, match=r"--threads: 100000000000 is out of range: threads must be in \[0, 1024\]"):
        apply_flags(RunConfig(), {"threads": "1e11"})
    with pytest.raises(FreqdiffError, match=r"dataset 'gaussian_mixture'.seed: 4294967296"):
        apply_flags(RunConfig(), {"dataset": "gaussian_mixture", "dataset.seed": str(2**32)})
    assert apply_flags(RunConfig(), {"seed": str(2**32 - 1), "threads": "1024"}).train.seed == 2**32 - 1


@pytest.mark.parametrize("damage, words", [
    (lambda c: [c], "expected an object of settings (dataset, process, model, regularizer, sampler, data, train, "
                    "eval), got a list"),
    (lambda c: None, "got null"),
    (lambda c: {**c, "data": {**c["data"], "n": -3}}, "data.n: -3 is out of range: n must be >= 2"),
    (lambda c: {**c, "data": {**c["data"], "n": "16"}}, "data.n: expected int, got '16'"),
    (lambda c: {**c, "data": {**c["data"], "n": 16.5}}, "data.n: expected int, got 16.5"),
    (lambda c: {**c, "data": {**c["data"], "center": "yes"}}, "data.center: expected bool, got 'yes'"),
    (lambda c: {**c, "train": {**c["train"], "threads": True}}, "train.threads: expected int, got True"),
    (lambda c: {**c, "eval": "fast"}, "eval: expected an object of settings, got a string"),
    (lambda c: {**c, "sampler": {"params": {}}}, "sampler: it has no name"),
    (lambda c: {**c, "sampler": {"name": 7}}, "sampler: its name is a number"),
    (lambda c: {**c, "process": {"name": "ddpm", "params": [1]}}, "process 'ddpm': expected an object of parameters"),
    (lambda c: {**c, "process": {"name": "ddpm", "params": {"T": "1000"}}},
     "process 'ddpm'.T: expected int, got '1000'"),
    (lambda c: {**c, "process": {"name": "ddpm", "params": {"beta_end": None}}}, "beta_end: expected float, got None"),
])
def test_a_damaged_config_record_is_refused_naming_its_file(damage, words: str) -> None:
    record = damage(RunConfig().to_dict())
    with pytest.raises(FreqdiffError) as err:
        RunConfig.from_dict(record, "runs/x/config.json")
    message = str(err.value)
    assert message.startswith("runs/x/config.json: ") and words in message and "\n" not in message


def test_json_records_keep_their_types_and_flags_their_strings() -> None:
    """config.json holds typed values (an int is no string there); flags are strings and are converted."""
    record = apply_flags(RunConfig(), {"n": "16", "lr": "1e-3", "model.width": "16", "extractor_weights": "none"})
    assert RunConfig.from_dict({**record.to_dict(), "derived": {"x": 1}}).to_dict() == record.to_dict()
    assert RunConfig.from_dict({"train": {"lr": 1}}).train.lr == 1.0  # a JSON int is a valid float
    assert RunConfig.from_dict({"eval": {"extractor_weights": None}}).eval.extractor_weights is None
