"""Operator load: the payment side of the scheme, simulated (spending, reports, ingestion)."""

from __future__ import annotations

from .model import OperatorModel, parse_operators

__all__ = ["OperatorModel", "parse_operators"]
