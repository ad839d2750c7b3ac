"""The pytest session ``mynahil conformance run`` starts in a child process (``python -P -m
mynahil.conformance.run_suites ARGS``).

The child finds the suites beside *its own* ``mynahil.conformance`` package: the parent may have
been started from a checkout in the current folder while the child imports the installed package,
and pytest refuses to collect a test file from one copy whose module came from the other.

It loads only the plugins the run needs (the suite's own and Allure's), not every pytest plugin
installed beside it: the environment is the vendor's, and a plugin that reorders tests
(pytest-randomly) would run a PIN lockout before the tests that need the PIN, one that reruns
failures would hide them. Loading them all also cost ~3 s a run (Hypothesis, Schemathesis). A
plugin the vendor does want is named after ``--``: ``-p NAME``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

__all__ = ["main"]


def main(argv: list[str]) -> int:
    # Not resolved, as plugin.SUITES_DIR: the path decides the modules' names.
    suites = Path(__file__).with_name("suites")
    os.environ["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"  # this process is the run's alone
    plugins = ["-p", "mynahil.conformance.plugin", "-p", "allure_pytest.plugin"]
    fixed = [str(suites), *plugins, "-p", "no:cacheprovider"]
    return int(pytest.main([*fixed, "--rootdir", str(suites.parent), *argv]))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
