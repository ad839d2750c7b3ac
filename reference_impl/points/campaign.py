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
from typing import Annotated, Any, Final, Self

from pydantic import Field, model_validator

from mynahil.config import ConfigModel, Integer, LocalDate, Name, at_key, validated
from mynahil.files import read_toml
from mynahil.paths import scenarios_dir

__all__ = [
    "DEFAULT_CAMPAIGNS",
    "Bonus",
    "Campaign",
    "CampaignError",
    "CampaignFile",
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


class ExtensionFile(ConfigModel):
    """``[[spend.extensions]]``: a later end for holders who applied for their card by a date."""

    ends: LocalDate
    card_applied_by: LocalDate


class SpendFile(ConfigModel):
    """``[spend]``: the spend-based grant."""

    rate_percent: Annotated[int, Integer(1, 100)]
    cap_yen: Annotated[int, Integer(1, 10_000_000)]
    #: Campaigns sharing a group share one cap per person.
    cap_group: Name
    starts: LocalDate
    ends: LocalDate
    #: Who may take part: holders who applied for their card by this date (none: everyone).
    card_applied_by: LocalDate | None = None
    extensions: list[ExtensionFile] = Field(default_factory=list)

    @model_validator(mode="after")
    def _check(self) -> Self:
        _ordered(self.starts, self.ends, "starts", "ends")
        for index, extension in enumerate(self.extensions):
            if extension.ends <= self.ends:
                raise at_key(
                    f"extensions[{index}].ends",
                    f"an extension must end after spend.ends ({self.ends.isoformat()})",
                )
        return self


class BonusFile(ConfigModel):
    """``[[bonuses]]``: a one-off grant for a registration of ``kind``."""

    kind: Name
    yen: Annotated[int, Integer(1, 1_000_000)]
    opens: LocalDate
    closes: LocalDate
    #: The registration must be made by this date (default: ``closes``).
    registered_by: LocalDate | None = None

    @model_validator(mode="after")
    def _check(self) -> Self:
        _ordered(self.opens, self.closes, "opens", "closes")
        if self.registered_by is not None and self.registered_by > self.closes:
            raise at_key(
                "registered_by",
                f"{self.registered_by.isoformat()} is after closes {self.closes.isoformat()} "
                "(a registration must be made by the time claims close)",
            )
        return self


class ApplicationFile(ConfigModel):
    """``[application]``: when holders may apply (Japan dates, inclusive)."""

    opens: LocalDate
    closes: LocalDate

    @model_validator(mode="after")
    def _check(self) -> Self:
        _ordered(self.opens, self.closes, "opens", "closes")
        return self


class CampaignFile(ConfigModel):
    """A campaign file of ``scenarios/campaigns/``."""

    id: Name
    title: Name
    application: ApplicationFile
    spend: SpendFile
    bonuses: list[BonusFile] = Field(default_factory=list)

    @model_validator(mode="after")
    def _check(self) -> Self:
        kinds = [b.kind for b in self.bonuses]
        if len(set(kinds)) != len(kinds):
            raise at_key("bonuses", "each kind may appear once")
        return self


def _ordered(first: date, last: date, first_name: str, last_name: str) -> None:
    if last < first:
        raise at_key(last_name, f"{last.isoformat()} is before {first_name} {first.isoformat()}")


def parse_campaign(data: Mapping[str, Any]) -> Campaign:
    """A campaign from parsed TOML; :class:`CampaignError` names the first bad field."""
    file = validated(CampaignFile, data, CampaignError)
    spend = file.spend
    return Campaign(
        campaign_id=file.id,
        title=file.title,
        opens=file.application.opens,
        closes=file.application.closes,
        spend=SpendRule(
            rate_percent=spend.rate_percent,
            cap_yen=spend.cap_yen,
            cap_group=spend.cap_group,
            starts=spend.starts,
            ends=spend.ends,
            card_applied_by=spend.card_applied_by,
            extensions=tuple(Extension(e.ends, e.card_applied_by) for e in spend.extensions),
        ),
        bonuses=tuple(
            Bonus(b.kind, b.yen, b.opens, b.closes, b.registered_by) for b in file.bonuses
        ),
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
