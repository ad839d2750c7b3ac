"""The conformance suite green against the emulated card through pcscd + vpcd + pyscard."""

from __future__ import annotations

from pathlib import Path

import pytest

from conformance.cli import run_target


@pytest.mark.pcsc
def test_the_suite_passes_through_pcscd(tmp_path: Path, pcsc_stack: None) -> None:
    code, results = run_target("card:vpcd", tmp_path)
    assert code == 0, results
    assert results["passed"] is True
