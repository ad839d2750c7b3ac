"""A sample payment service: the reference operator the demo, simulator and suite use."""

from __future__ import annotations

from .app import create_operator_app
from .books import Account, OperatorBooks
from .client import OperatorClient

__all__ = ["Account", "OperatorBooks", "OperatorClient", "create_operator_app"]
