"""The deliberately defective operators the harness can serve, and what must catch each.

Only the catalogue, apart from the harness that builds them (:mod:`.operator_harness`): the
target parser and the self-test matrix read it without importing the reference platform.
"""

from __future__ import annotations

__all__ = ["OPERATOR_DEFECTS"]

# name -> (what is wrong, the requirement that must fail)
OPERATOR_DEFECTS: dict[str, tuple[str, tuple[str, ...]]] = {
    "grants_twice_on_retry": (
        "retries a report under a new transaction ID and key", ("OP-REPORT-001",)),
    "accepts_unsigned": ("answers verify calls nobody signed", ("OP-VERIFY-002",)),
    "credits_past_cap": (
        "credits 25% of every charge, whatever the platform decided", ("OP-CAP-001",)),
    "ignores_charge_time": (
        "reports every charge as made now, whenever it was made", ("SPEC-POINTS-003",)),
    "gives_up_on_lost_answer": (
        "never sends a report again when the platform's answer is lost", ("OP-REPORT-002",)),
    "credits_without_application": (
        "credits 25% on accounts nobody applied with", ("SPEC-POINTS-005",)),
}  # fmt: skip
