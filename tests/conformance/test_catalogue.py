"""The requirement catalogue and its check: an untested requirement fails the run under its
own verdict, a test naming an unknown ID is an error, and the catalogue file is validated."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mynahil.conformance.catalogue import CatalogueError, load_catalogue

from .conftest import run_pytest_in

_RULE = 'rule = "r"\nchoice = "c"\n'
_ENTRY = '[[requirement]]\nid = "JPKI-X-001"\ntitle = "t"\nsource = "s"\nsuite = "card"\n'


def test_the_catalogue_loads_and_every_rule_has_its_test() -> None:
    catalogue = load_catalogue()
    card = [r for r in catalogue.values() if r.suite == "card"]
    assert len(card) >= 40
    assert not [r.id for r in catalogue.values() if r.planned]
    assert {r.suite for r in catalogue.values()} == {"card", "platform", "operator"}
    assert any(r.startswith("SPEC-MYKEY-") for r in catalogue)
    assert any(r.startswith("SPEC-POINTS-") for r in catalogue)
    assert all(r.source for r in catalogue.values())


def test_a_rule_with_a_known_source_loads_with_its_citation(tmp_path: Path) -> None:
    path = tmp_path / "requirements.toml"
    rule = 'rule = """\nSELECT answers\n  9000."""\npublic = ["opensc: card-jpki.c"]\n'
    path.write_text('[sources]\nopensc = "OpenSC"\n' + _ENTRY + rule)
    (requirement,) = load_catalogue(path).values()
    assert requirement.rule == "SELECT answers 9000."
    assert requirement.public_sources() == [("opensc", "card-jpki.c")]
    assert requirement.choice == ""


def test_an_untested_requirement_fails_the_catalogue_check(tmp_path: Path) -> None:
    """A suite with no test for a requirement (not a -k selection, which covers only what it
    selects: tests/conformance/test_pytest_plugin.py) fails the catalogue check."""
    (tmp_path / "test_one.py").write_text(
        "import pytest\n\n@pytest.mark.requirement('JPKI-SEL-001')\n"
        "def test_selects(card_under_test):\n    assert card_under_test.select_ap() == 0x9000\n"
    )
    done = run_pytest_in(tmp_path, "--conformance-target", "card:inproc",
                         "--conformance-report", str(tmp_path / "r"))  # fmt: skip
    results = json.loads((tmp_path / "r" / "results.json").read_text(encoding="utf-8"))
    assert results["requirements"]["JPKI-SEL-001"]["verdict"] == "passed"
    assert results["requirements"]["JPKI-PIN-003"]["verdict"] == "untested"
    assert results["catalogue"]["verdict"] == "failed"
    assert "JPKI-PIN-003" in results["catalogue"]["untested"]
    assert results["passed"] is False
    assert done.returncode != 0


def test_a_test_naming_an_unknown_requirement_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "test_bogus.py").write_text(
        "import pytest\n\n@pytest.mark.requirement('NOPE-001')\ndef test_x():\n    pass\n"
    )
    result = run_pytest_in(tmp_path, "--conformance-target", "card:inproc",
                       "--conformance-report", str(tmp_path / "r"))  # fmt: skip
    assert result.returncode == pytest.ExitCode.USAGE_ERROR
    assert "unknown requirement NOPE-001" in result.stdout + result.stderr


def test_a_test_naming_no_requirement_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "test_bare.py").write_text("def test_x():\n    pass\n")
    result = run_pytest_in(tmp_path, "--conformance-target", "card:inproc",
                       "--conformance-report", str(tmp_path / "r"))  # fmt: skip
    assert result.returncode == pytest.ExitCode.USAGE_ERROR
    assert "names no requirement" in result.stdout + result.stderr


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[[requirement]]\nid = "JPKI-X-001"\ntitle = "t"\nsource = "s"\n' + _RULE,
         "missing suite"),
        ('[[requirement]]\nid = "bad"\ntitle = "t"\nsource = "s"\nsuite = "card"\n' + _RULE,
         "not like"),
        ('[[requirement]]\nid = "JPKI-X-001"\ntitle = "t"\nsource = "s"\nsuite = "moon"\n'
         + _RULE, "suite must be"),
        ((_ENTRY + _RULE) * 2, "appears twice"),
        ("[[requirement]\n", "not valid TOML"),
        (_ENTRY + 'choice = "c"\n', "missing rule"),
        (_ENTRY + 'rule = "r"\n', "give its public sources"),
        (_ENTRY + 'rule = "r"\npublic = ["nowhere: p. 3"]\n', "'nowhere: p. 3': not a key"),
        ('[sources]\nopensc = "OpenSC"\n' + _ENTRY + 'rule = "r"\npublic = "opensc"\n',
         "public must be a list"),
    ],
)  # fmt: skip
def test_catalogue_errors_name_the_entry(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "requirements.toml"
    path.write_text(text)
    with pytest.raises(CatalogueError, match=message):
        load_catalogue(path)
