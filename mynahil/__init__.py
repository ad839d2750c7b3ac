"""mynahil: a hardware-in-the-loop simulator and conformance harness for MyNa Point.

This package is the ground floor that every part shares — the APDU codec, the JPKI file
map, the transports and the wire contract, the Card API — and the roof that uses them all:
the ``mynahil`` command line (``cli/``) and the demo (``demo/``). The core imports nothing
else of the project; ``lint-imports`` checks it (README, "Layout").
"""

from __future__ import annotations

__version__ = "0.1.0"
