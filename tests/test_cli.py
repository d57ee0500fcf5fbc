"""The `freqdiff` command table: usage, each command's --help, dispatch and errors, all from cli.COMMANDS."""
from __future__ import annotations

import subprocess
import sys

import pytest

from freqdiff.cli import COMMANDS, USAGE, main


@pytest.mark.parametrize("name", list(COMMANDS))
def test_every_command_resolves_where_the_table_says(name: str) -> None:
    """A module that moved without its line in the table fails here, not when someone runs the command."""
    command = COMMANDS[name]
    assert callable(command.attribute(command.entry)) or command.call is not None
    if isinstance(command.help, str):
        assert callable(command.attribute(command.help))
    assert f"\n  {name} " in USAGE or f"\n  {name}\n" in USAGE


@pytest.mark.parametrize("name", list(COMMANDS))
def test_help_anywhere_prints_the_commands_own_help(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([name, "--help"]) == 0
    first = capsys.readouterr().out
    assert first.strip() and first != USAGE + "\n"
    assert main([name, "--some", "value", "-h"]) == 0
    assert capsys.readouterr().out == first


def test_usage_and_unknown_commands(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in ([], ["--help"], ["-h"], ["help"]):
        assert main(argv) == 0
        assert capsys.readouterr().out == USAGE + "\n"
    assert main(["trian", "--help"]) == 2
    err = capsys.readouterr().err
    assert err == f"freqdiff: unknown command 'trian'; choices: {', '.join(COMMANDS)}\n"


def test_errors_name_their_command(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", "a", "b"]) == 2
    assert capsys.readouterr().err == "freqdiff report: error: report: expected one directory, got 2 arguments\n"
    assert main(["train", "stray"]) == 2
    assert capsys.readouterr().err.startswith("freqdiff train: error: train: unexpected argument 'stray'")


def test_help_stays_light() -> None:
    """`freqdiff --help` and `freqdiff train --help` import no command module, hence no torch."""
    code = ("import sys; from freqdiff.cli import main; main(['--help']); main(['train', '--help']); "
            "heavy = [m for m in sys.modules if m in ('torch', 'freqdiff.commands.registries', 'freqdiff.train.trainer')]; "
            "sys.exit(f'imported {heavy}' if heavy else 0)")
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)
