"""The conformance suite as a product: a pytest plugin, a requirement catalogue, card and
reader suites, defective cards to prove the suite's strength, traces and the HTML report."""

from __future__ import annotations

from .catalogue import Requirement, load_catalogue
from .defects import DEFECTS, DefectiveCard
from .targets import DeviceProfile, Target, TargetError, parse_target

__all__ = [
    "DEFECTS",
    "DefectiveCard",
    "DeviceProfile",
    "Requirement",
    "Target",
    "TargetError",
    "load_catalogue",
    "parse_target",
]
