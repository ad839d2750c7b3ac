"""The plugin is inert without --conformance-target: it loads in every pytest run."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from .conftest import SCENARIOS, run_pytest_in


def test_the_plugin_is_inert_without_a_target(tmp_path: Path) -> None:
    (tmp_path / "test_plain.py").write_text(
        "import pytest\n\n"
        "def test_x():\n    assert 1 + 1 == 2\n\n"
        "@pytest.mark.destructive\n@pytest.mark.requirement('NOT-IN-CATALOGUE')\n"
        "def test_marked():\n    pass\n\n"
        "def test_fixture_skips(card_under_test):\n    pass\n"
    )
    result = run_pytest_in(tmp_path, "--strict-markers", "-rs")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 passed, 1 skipped" in result.stdout
    assert "not a conformance run" in result.stdout
    assert not (tmp_path / "reports").exists(), "an ordinary run wrote a report"


def test_the_options_are_listed(tmp_path: Path) -> None:
    result = run_pytest_in(tmp_path, "--help")
    options = [line.split()[0].split("=")[0] for line in result.stdout.splitlines()
               if line.startswith("  --conformance")]  # fmt: skip
    for option in ("--conformance-target", "--conformance-device-profile",
                   "--conformance-allow-destructive", "--conformance-pin",
                   "--conformance-trace-dir", "--conformance-report"):  # fmt: skip
        assert option in options
    # every option the plugin adds is prefixed: none of its old bare names is registered
    bare = ("--report", "--pin", "--trace-dir", "--device-profile", "--sign-password",
            "--allow-destructive", "--platform-ca", "--ca-file", "--operator-profile")  # fmt: skip
    registered = {word.rstrip(",").split("=")[0] for line in result.stdout.splitlines()
                  for word in line.split() if word.startswith("--")}  # fmt: skip
    assert not registered & set(bare), registered & set(bare)


def test_trace_dir_option(tmp_path: Path) -> None:
    suites = SCENARIOS.parent / "conformance" / "suites"
    result = subprocess.run(
        [sys.executable, "-m", "pytest", str(suites), "-p", "mynahil.conformance.plugin",
         "-p", "no:cacheprovider", "-q", "--conformance-target", "card:inproc",
         "--conformance-report", str(tmp_path / "r"),
         "--conformance-trace-dir", str(tmp_path / "t"),
         "-k", "test_jpki_ap_selects"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert (tmp_path / "t" / "test_jpki_ap_selects.jsonl").is_file(), result.stdout
    assert (tmp_path / "r" / "results.json").is_file()
    assert not (tmp_path / "r" / "traces").exists()
