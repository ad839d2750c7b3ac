"""Campaign rules as data: loaded from ``scenarios/campaigns/*.toml`` and checked on load.

Nothing about a round's dates, rates or caps lives in code. A campaign file says:

- ``id``, ``title``;
- ``[application]``: when holders may apply (``opens``, ``closes``, Japan dates, inclusive);
- ``[spend]``: the spend-based grant: ``rate_percent``, ``cap_yen``, ``cap_group`` (campaigns
  sharing a group share one cap per person: round 2 carries over what round 1 granted),
  ``starts``/``ends`` and optional ``card_applied_by`` (who may take part), and
  ``[[spend.extensions]]`` (``ends``, ``card_applied_by``): later ends for holders who applied
  for their card by a date;
- ``[[bonuses]]``: one-off grants (``kind``, ``yen``, ``opens``, ``closes``, optional
  ``registered_by``): each is paid only for a registration of its ``kind`` (health-insurance
  use, public-fund account) that the registry holding it dates on or before ``registered_by``
  (default: ``closes``); a registration made before the round counts.

Errors name the file and the field: ``round1.toml: spend.rate_percent: must be 1..100, got 0``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any, Final

from mynahil.files import read_toml
from mynahil.paths import scenarios_dir

__all__ = [
    "DEFAULT_CAMPAIGNS",
    "Bonus",
    "Campaign",
    "CampaignError",
    "Extension",
    "Scheme",
    "SpendRule",
    "load_campaign",
    "load_scheme",
    "parse_campaign",
]


DEFAULT_CAMPAIGNS: Final = scenarios_dir() / "campaigns"


class CampaignError(ValueError):
    """A campaign file that cannot be used; the message names the field."""


@dataclass(frozen=True, slots=True)
class Extension:
    """A later end of the spend window for holders who applied for their card by a date."""

    ends: date
    card_applied_by: date


@dataclass(frozen=True, slots=True)
class SpendRule:
    rate_percent: int
    cap_yen: int
    cap_group: str
    starts: date
    ends: date
    card_applied_by: date | None = None
    extensions: tuple[Extension, ...] = ()

    def window_end(self, card_applied_on: date) -> date:
        """The last day whose charges count, for a holder who applied for the card that day."""
        end = self.ends
        for extension in self.extensions:
            if card_applied_on <= extension.card_applied_by:
                end = max(end, extension.ends)
        return end

    def admits(self, card_applied_on: date) -> bool:
        return self.card_applied_by is None or card_applied_on <= self.card_applied_by


@dataclass(frozen=True, slots=True)
class Bonus:
    """A fixed grant for a registration (health-insurance card, public-fund account), paid
    only when the registration of this ``kind`` was made by ``registered_by``."""

    kind: str
    yen: int
    opens: date
    closes: date
    registered_by: date | None = None  # None: the bonus's own closing day

    @property
    def registration_deadline(self) -> date:
        return self.closes if self.registered_by is None else self.registered_by

    @property
    def cap_group(self) -> str:
        return f"bonus:{self.kind}"


@dataclass(frozen=True, slots=True)
class Campaign:
    campaign_id: str
    title: str
    opens: date
    closes: date
    spend: SpendRule
    bonuses: tuple[Bonus, ...] = ()

    def accepts_applications_on(self, day: date) -> bool:
        return self.opens <= day <= self.closes

    def bonus(self, kind: str) -> Bonus | None:
        return next((b for b in self.bonuses if b.kind == kind), None)


@dataclass(frozen=True, slots=True)
class Scheme:
    """The campaigns a platform runs, by ID."""

    campaigns: Mapping[str, Campaign] = field(default_factory=dict)

    def __post_init__(self) -> None:
        caps: dict[str, int] = {}
        for campaign in self.campaigns.values():
            group = campaign.spend.cap_group
            if caps.setdefault(group, campaign.spend.cap_yen) != campaign.spend.cap_yen:
                raise CampaignError(
                    f"{campaign.campaign_id}: spend.cap_yen: campaigns sharing cap_group "
                    f"{group!r} must share one cap ({caps[group]} elsewhere)"
                )

    def campaign(self, campaign_id: str) -> Campaign | None:
        return self.campaigns.get(campaign_id)

    def open_for_applications(self, day: date) -> list[Campaign]:
        return [c for c in self.campaigns.values() if c.accepts_applications_on(day)]

    def cap(self, cap_group: str) -> int:
        for campaign in self.campaigns.values():
            if campaign.spend.cap_group == cap_group:
                return campaign.spend.cap_yen
            for bonus in campaign.bonuses:
                if bonus.cap_group == cap_group:
                    return bonus.yen
        raise KeyError(cap_group)

    @classmethod
    def of(cls, campaigns: Iterable[Campaign]) -> Scheme:
        by_id: dict[str, Campaign] = {}
        for campaign in campaigns:
            if campaign.campaign_id in by_id:
                raise CampaignError(f"campaign id {campaign.campaign_id!r} appears twice")
            by_id[campaign.campaign_id] = campaign
        return cls(by_id)


# --- reading --------------------------------------------------------------------------------


class _Fields:
    """Typed reads from one TOML table, with the path in every error and no unknown keys."""

    def __init__(self, where: str, table: Any, allowed: set[str]) -> None:
        if not isinstance(table, dict):
            raise CampaignError(f"{where}: must be a table")
        unknown = sorted(set(table) - allowed)
        if unknown:
            raise CampaignError(
                f"{where}{'.' if where else ''}{unknown[0]}: unknown field "
                f"(expected one of: {', '.join(sorted(allowed))})"
            )
        self.where = where
        self.table = table

    def path(self, key: str) -> str:
        return f"{self.where}.{key}" if self.where else key

    def raw(self, key: str, *, required: bool = True) -> Any:
        if key not in self.table:
            if required:
                raise CampaignError(f"{self.path(key)}: missing")
            return None
        return self.table[key]

    def text(self, key: str) -> str:
        value = self.raw(key)
        if not isinstance(value, str) or not value.strip():
            raise CampaignError(f"{self.path(key)}: must be a non-empty string")
        return value.strip()

    def day(self, key: str, *, required: bool = True) -> date | None:
        value = self.raw(key, required=required)
        if value is None:
            return None
        # TOML local dates arrive as date; a datetime is a date too, so exclude it explicitly.
        if not isinstance(value, date) or hasattr(value, "hour"):
            raise CampaignError(f"{self.path(key)}: must be a date like 2020-09-01, got {value!r}")
        return value

    def required_day(self, key: str) -> date:
        value = self.day(key)
        assert value is not None  # day() raised for a missing required key
        return value

    def integer(self, key: str, low: int, high: int) -> int:
        value = self.raw(key)
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise CampaignError(
                f"{self.path(key)}: must be an integer {low}..{high}, got {value!r}"
            )
        return value

    def tables(self, key: str) -> list[Any]:
        value = self.raw(key, required=False)
        if value is None:
            return []
        if not isinstance(value, list):
            raise CampaignError(f"{self.path(key)}: must be an array of tables ([[{key}]])")
        return value


def _ordered(where: str, first: date, last: date, first_name: str, last_name: str) -> None:
    if last < first:
        raise CampaignError(
            f"{where}.{last_name}: {last.isoformat()} is before {first_name} {first.isoformat()}"
        )


def _spend(table: Any) -> SpendRule:
    f = _Fields(
        "spend",
        table,
        {"rate_percent", "cap_yen", "cap_group", "starts", "ends", "card_applied_by", "extensions"},
    )
    starts, ends = f.required_day("starts"), f.required_day("ends")
    _ordered("spend", starts, ends, "starts", "ends")
    extensions = []
    for index, raw in enumerate(f.tables("extensions")):
        e = _Fields(f"spend.extensions[{index}]", raw, {"ends", "card_applied_by"})
        extension_end, applied_by = e.required_day("ends"), e.required_day("card_applied_by")
        if extension_end <= ends:
            raise CampaignError(
                f"{e.where}.ends: an extension must end after spend.ends ({ends.isoformat()})"
            )
        extensions.append(Extension(extension_end, applied_by))
    return SpendRule(
        rate_percent=f.integer("rate_percent", 1, 100),
        cap_yen=f.integer("cap_yen", 1, 10_000_000),
        cap_group=f.text("cap_group"),
        starts=starts,
        ends=ends,
        card_applied_by=f.day("card_applied_by", required=False),
        extensions=tuple(extensions),
    )


def _bonus(index: int, table: Any) -> Bonus:
    f = _Fields(f"bonuses[{index}]", table, {"kind", "yen", "opens", "closes", "registered_by"})
    opens, closes = f.required_day("opens"), f.required_day("closes")
    _ordered(f.where, opens, closes, "opens", "closes")
    registered_by = f.day("registered_by", required=False)
    if registered_by is not None and registered_by > closes:
        raise CampaignError(
            f"{f.where}.registered_by: {registered_by.isoformat()} is after closes "
            f"{closes.isoformat()} (a registration must be made by the time claims close)"
        )
    return Bonus(f.text("kind"), f.integer("yen", 1, 1_000_000), opens, closes, registered_by)


def parse_campaign(data: Mapping[str, Any]) -> Campaign:
    """A campaign from parsed TOML; :class:`CampaignError` names the first bad field."""
    top = _Fields("", dict(data), {"id", "title", "application", "spend", "bonuses"})
    application = _Fields("application", top.raw("application"), {"opens", "closes"})
    opens, closes = application.required_day("opens"), application.required_day("closes")
    _ordered("application", opens, closes, "opens", "closes")
    bonuses = tuple(_bonus(i, t) for i, t in enumerate(top.tables("bonuses")))
    kinds = [b.kind for b in bonuses]
    if len(set(kinds)) != len(kinds):
        raise CampaignError("bonuses: each kind may appear once")
    return Campaign(
        campaign_id=top.text("id"),
        title=top.text("title"),
        opens=opens,
        closes=closes,
        spend=_spend(top.raw("spend")),
        bonuses=bonuses,
    )


def load_campaign(path: Path) -> Campaign:
    data = read_toml(path, CampaignError)
    try:
        return parse_campaign(data)
    except CampaignError as exc:
        raise CampaignError(f"{path.name}: {exc}") from None


def load_scheme(folder: Path = DEFAULT_CAMPAIGNS) -> Scheme:
    """Every ``*.toml`` campaign in ``folder`` (the bundled rounds by default)."""
    files = sorted(folder.glob("*.toml")) if folder.is_dir() else []
    if not files:
        raise CampaignError(f"{folder}: no campaign files (*.toml)")
    return Scheme.of(load_campaign(path) for path in files)
