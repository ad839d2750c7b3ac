"""The pytest session ``mynahil conformance run`` starts in a child process (``python -P -m
mynahil.conformance.run_suites ARGS``).

The child finds the suites beside *its own* ``mynahil.conformance`` package: the parent may have
been started from a checkout in the current folder while the child imports the installed package,
and pytest refuses to collect a test file from one copy whose module came from the other.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

__all__ = ["main"]


def main(argv: list[str]) -> int:
    # Not resolved, as plugin.SUITES_DIR: the path decides the modules' names.
    suites = Path(__file__).with_name("suites")
    fixed = [str(suites), "-p", "mynahil.conformance.plugin", "-p", "no:cacheprovider"]
    return int(pytest.main([*fixed, "--rootdir", str(suites.parent), *argv]))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
