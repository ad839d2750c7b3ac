"""Starting ``mynahil``: a command imports what it runs, and every listed command still loads."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from mynahil.cli import _COMMANDS, app
from tests.support import modules_loaded_by

# What each of these commands runs never needs the simulator or the conformance suite, which
# together with the rest of the groups were 0.6 s of every start-up when imported eagerly.
LIGHT_COMMANDS = [["card", "--help"], ["db", "--help"], ["--version"]]


@pytest.mark.parametrize("argv", LIGHT_COMMANDS, ids=" ".join)
def test_a_command_imports_only_its_own_group(argv: list[str]) -> None:
    loaded = modules_loaded_by(
        "import sys\n"
        "from mynahil.cli import main\n"
        f"sys.argv = ['mynahil', *{argv!r}]\n"
        "try:\n"
        "    main()\n"
        "except SystemExit:\n"
        "    pass\n"
    )
    heavy = (["mynahil", "simulator"], ["mynahil", "conformance"])
    assert sorted(m for m in loaded if m.split(".")[:2] in heavy) == []


def test_every_listed_command_loads_and_answers_help() -> None:
    runner = CliRunner()
    listing = runner.invoke(app, ["--help"])
    assert listing.exit_code == 0, listing.output
    for name in _COMMANDS:
        assert name in listing.output
        shown = runner.invoke(app, [name, "--help"])
        assert shown.exit_code == 0, (name, shown.output)
        assert f"mynahil {name}" in shown.output, (name, shown.output)


def test_an_unknown_command_is_refused_by_name() -> None:
    result = CliRunner().invoke(app, ["nonesuch"])
    assert result.exit_code == 2
    assert "nonesuch" in result.output
