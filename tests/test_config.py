"""The one command-line syntax, the registries and their one-line errors."""
from __future__ import annotations

import pytest

from freqdiff.cli import main
from freqdiff.components import REGISTRIES
from freqdiff.config import RunConfig, apply_flags, split_argv
from freqdiff.registry import FreqdiffError


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
