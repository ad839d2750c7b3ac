"""``mynahil registry …``: the emulated registries beside J-LIS (health-insurance use,
public-fund receiving account). Registering a holder is what the municipal window or the
holder's own portal does; the platform asks the registry when a round-2 bonus is claimed."""

from __future__ import annotations

from datetime import date
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from ._common import console, default_home, fail, parse_date

if TYPE_CHECKING:
    from mynahil.reference_impl.mykey import HolderFacts

__all__ = ["registry_app"]

registry_app = typer.Typer(
    help="The emulated registries beside J-LIS: register a card holder's health-insurance use "
    "or public-fund account, and look a registration up.",
    no_args_is_help=True,
)


class KindChoice(StrEnum):
    health_insurance = "health-insurance"
    public_fund = "public-fund"


Kind = Annotated[KindChoice, typer.Option("--kind", help="Which registry.")]
CardPath = Annotated[Path, typer.Option("--card", "-c", help="The holder's card file.")]
CaFolder = Annotated[
    Path | None, typer.Option("--ca", help="J-LIS CA folder (default: $MYNAHIL_HOME/jlis).")
]


def _holder(card: Path, folder: Path) -> HolderFacts:
    """J-LIS's facts about the holder of the card's user-authentication certificate."""
    from cryptography import x509

    from mynahil.card_emulator import CardFormatError, load_card
    from mynahil.reference_impl.jlis import CertificateRegistry
    from mynahil.reference_impl.jlis.registry import RegistryFileError

    try:
        state = load_card(card)
    except (CardFormatError, OSError) as exc:
        fail(f"--card {card}: {exc}")
    if state.auth is None:
        fail(f"--card {card}: the card holds no user-authentication certificate (declined)")
    serial = x509.load_der_x509_certificate(state.auth.certificate).serial_number
    try:
        facts = CertificateRegistry(folder).holder_facts(serial)
    except RegistryFileError as exc:
        fail(str(exc))
    if facts is None:
        fail(f"--card {card}: J-LIS in {folder} did not issue this card (pass --ca)")
    return facts


@registry_app.command("register")
def register(
    kind: Kind,
    card: CardPath,
    on: Annotated[
        str | None, typer.Option("--on", help="Registration date YYYY-MM-DD (default: today).")
    ] = None,
    ca: CaFolder = None,
) -> None:
    """Register the card's holder (J-LIS names the person) on a day; a holder registered
    before keeps the first registration."""
    from mynahil.reference_impl.registries import (
        RegistrationBook,
        RegistrationFileError,
        RegistryKind,
    )

    day = parse_date(on, "--on") or date.today()
    folder = ca or default_home() / "jlis"
    facts = _holder(card, folder)
    registry = RegistryKind.from_slug(kind.value)
    try:
        made = RegistrationBook(registry, folder).register(facts.person_ref, day)
    except RegistrationFileError as exc:
        fail(str(exc))
    if made.registered_on != day:
        console.print(f"already registered with the {registry.label} on {made.registered_on}")
    else:
        console.print(f"registered with the {registry.label} on {made.registered_on}")
    console.print(f"person reference {made.person_ref}")


@registry_app.command("show")
def show(kind: Kind, card: CardPath, ca: CaFolder = None) -> None:
    """The card holder's registration, if any (exit 1 when there is none)."""
    from mynahil.reference_impl.registries import (
        RegistrationBook,
        RegistrationFileError,
        RegistryKind,
    )

    folder = ca or default_home() / "jlis"
    facts = _holder(card, folder)
    registry = RegistryKind.from_slug(kind.value)
    try:
        found = RegistrationBook(registry, folder).registration(facts.person_ref)
    except RegistrationFileError as exc:
        fail(str(exc))
    if found is None:
        console.print(f"not registered with the {registry.label}")
        raise typer.Exit(1)
    console.print(f"registered with the {registry.label} on {found.registered_on}")
