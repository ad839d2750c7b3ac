"""The point system: campaigns as data, applications, operators, grants, ledger, settlement."""

from __future__ import annotations

from .books import PointsBooks
from .campaign import (
    DEFAULT_CAMPAIGNS,
    Bonus,
    Campaign,
    CampaignError,
    Extension,
    Scheme,
    SpendRule,
    load_campaign,
    load_scheme,
    parse_campaign,
)
from .errors import PointsError
from .model import (
    Application,
    Decision,
    LedgerEntry,
    LedgerKind,
    Operator,
    Outcome,
    PaymentService,
    Report,
    StoredTransaction,
    TransactionKind,
)
from .ports import (
    AccountCheck,
    OperatorUnreachable,
    PointsStore,
    PointsUnitOfWork,
    Registrations,
    RegistryUnreachable,
)
from .service import CardProof, HolderPoints, PointsService, report_digest

__all__ = [
    "DEFAULT_CAMPAIGNS",
    "AccountCheck",
    "Application",
    "Bonus",
    "Campaign",
    "CampaignError",
    "CardProof",
    "Decision",
    "Extension",
    "HolderPoints",
    "LedgerEntry",
    "LedgerKind",
    "Operator",
    "OperatorUnreachable",
    "Outcome",
    "PaymentService",
    "PointsBooks",
    "PointsError",
    "PointsService",
    "PointsStore",
    "PointsUnitOfWork",
    "Registrations",
    "RegistryUnreachable",
    "Report",
    "Scheme",
    "SpendRule",
    "StoredTransaction",
    "TransactionKind",
    "load_campaign",
    "load_scheme",
    "parse_campaign",
    "report_digest",
]
