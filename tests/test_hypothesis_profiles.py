"""`HYPOTHESIS_PROFILE=deep` (the README's exhaustive run) draws twenty times the examples, in
the tests that bound their own count as in the others; unset, the test run stays bounded."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COUNTS = (
    "import tests.conftest\n"
    "from hypothesis import settings\n"
    "from tests.support import examples\n"
    "print(settings().max_examples, examples(25))\n"
)


def _counts(profile: str | None) -> list[int]:
    env = {k: v for k, v in os.environ.items() if k != "HYPOTHESIS_PROFILE"}
    if profile is not None:
        env["HYPOTHESIS_PROFILE"] = profile
    run = subprocess.run(
        [sys.executable, "-c", COUNTS],
        check=False,
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stderr
    return [int(word) for word in run.stdout.split()]


def test_the_deep_profile_multiplies_every_count() -> None:
    assert _counts("deep") == [2000, 500]


def test_without_a_profile_the_counts_stay_bounded() -> None:
    assert _counts(None) == [100, 25]
