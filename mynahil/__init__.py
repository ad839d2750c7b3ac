"""mynahil: a hardware-in-the-loop simulator and conformance harness for MyNa Point.

This package is the protocol core that every part shares — the APDU codec, the JPKI file
map, the transports and the Card API — and the ``mynahil`` command line.
"""

from __future__ import annotations

__version__ = "0.1.0"
