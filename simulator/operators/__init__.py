"""Operator load: the payment side of the scheme, simulated (spending, reports, the intake).

``simulate_operators(scenario, applications_per_hour)`` runs the scenario's operator part on
the sign-up model's completed applications; ``mynahil simulate`` does it after the sign-up.
Reporting (plots, HTML) lives in :mod:`.report`, operators in the loop in :mod:`.hil`.
"""

from __future__ import annotations

from ..operator_model import OperatorModel, parse_operators
from .ingestion import IngestionLoad, IngestionResult, simulate_ingestion
from .run import OperatorRun, simulate_operators, summarize_operators
from .spending import SpendingResult, simulate_spending

__all__ = [
    "IngestionLoad",
    "IngestionResult",
    "OperatorModel",
    "OperatorRun",
    "SpendingResult",
    "parse_operators",
    "simulate_ingestion",
    "simulate_operators",
    "simulate_spending",
    "summarize_operators",
]
