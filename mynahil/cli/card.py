"""``mynahil card``: emulated My Number cards, made, inspected, attached to a reader, unblocked."""

from __future__ import annotations

import random
import signal
from datetime import date
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from cryptography import x509
from rich.markup import escape
from rich.table import Table

from mynahil.card_emulator import (
    CardBusy,
    CardFile,
    CardFormatError,
    EmulatedCard,
    FaultyCard,
    Holder,
    PinSlot,
    Sex,
    ViccAttachment,
    load_card,
    load_fault_profile,
    save_card,
)
from mynahil.card_emulator.pin import DEFAULT_PASSWORD, DEFAULT_PIN

from ..vpcd_protocol import VPCD_DEFAULT_PORT, parse_host_port
from ._common import console, default_home, err, fail, parse_date
from .card_data import card_info_data, verify_info_command

card_app = typer.Typer(
    help="Emulated My Number cards: make, inspect, attach to a reader, unblock.",
    no_args_is_help=True,
)


class AtrChoice(StrEnum):
    contact = "contact"
    contactless = "contactless"


class SexChoice(StrEnum):
    male = "1"
    female = "2"
    unstated = "9"


class PinChoice(StrEnum):
    auth = "auth"
    sign = "sign"
    info = "info"
    all = "all"


# --- card new ------------------------------------------------------------------------------


@card_app.command("new")
def card_new(
    out: Annotated[Path, typer.Option("--out", "-o", help="Card file to write.")],
    pin: Annotated[str, typer.Option(help="User-authentication PIN: 4 digits.")] = DEFAULT_PIN,
    password: Annotated[
        str, typer.Option(help="Signing password: 6-16 of A-Z and 0-9.")
    ] = DEFAULT_PASSWORD,
    info_pin: Annotated[str | None, typer.Option(help="Card-info AP PIN (default: --pin).")] = None,
    birth_date: Annotated[
        str | None, typer.Option(help="YYYY-MM-DD (default: an adult's).")
    ] = None,
    issued_on: Annotated[
        str | None, typer.Option(help="Issuance date YYYY-MM-DD (default: today).")
    ] = None,
    applied_on: Annotated[
        str | None,
        typer.Option(
            help="Card-application date YYYY-MM-DD, the day J-LIS received the application "
            "(default: a month before issuance; not after it)."
        ),
    ] = None,
    minor: Annotated[
        bool,
        typer.Option(
            help="A holder under the age of majority on the application date (default birth "
            "date: 12 years before issuance, so no signing certificate)."
        ),
    ] = False,
    no_certificate: Annotated[
        bool, typer.Option("--no-certificate", help="The holder declined the certificates.")
    ] = False,
    expired: Annotated[
        bool, typer.Option("--expired", help="Issued six years ago: the certificates have lapsed.")
    ] = False,
    name: Annotated[
        str | None, typer.Option(help="Holder's name (default: a made-up one).")
    ] = None,
    address: Annotated[str | None, typer.Option(help="Holder's address.")] = None,
    sex: Annotated[SexChoice | None, typer.Option(help="1 male, 2 female, 9 not stated.")] = None,
    my_number: Annotated[
        str | None, typer.Option(help="12 digits with a valid check digit.")
    ] = None,
    atr: Annotated[AtrChoice, typer.Option(help="ATR profile.")] = AtrChoice.contact,
    ca: Annotated[
        Path | None, typer.Option(help="J-LIS CA folder (default: $MYNAHIL_HOME/jlis).")
    ] = None,
    seed: Annotated[int | None, typer.Option(help="Seed for the made-up holder data.")] = None,
    security_code: Annotated[
        str | None,
        typer.Option(help="The 4-digit security code on the card face (default: random)."),
    ] = None,
    force: Annotated[bool, typer.Option(help="Overwrite an existing card file.")] = False,
) -> None:
    """Issue a new emulated card from the emulated J-LIS CA."""
    from mynahil.reference_impl.jlis import (
        CertificateRegistry,
        JlisCA,
        default_applied_on,
        lifecycle,
        minor_for_the_card,
        random_holder,
    )

    if out.exists() and not force:
        fail(f"{out} exists; pass --force to replace it")
    if expired and issued_on:
        fail("--expired picks the issuance date itself; drop --issued-on")
    today = date.today()
    issued = parse_date(issued_on, "--issued-on") or (
        date(today.year - 6, today.month, min(today.day, 28)) if expired else today
    )
    applied = parse_date(applied_on, "--applied-on")
    if applied is not None and applied > issued:
        fail(f"--applied-on {applied} is after the issuance date {issued}: apply first")
    birth = parse_date(birth_date, "--birth-date")
    if birth is not None and birth > (applied or issued):
        fail(f"--birth-date {birth} is after the card-application date {applied or issued}")
    if minor:
        if birth is None:
            birth = date(issued.year - 12, issued.month, min(issued.day, 28))
        applied_for = applied or default_applied_on(issued, birth)
        if not minor_for_the_card(birth, issued, applied_for):
            fail(
                f"--minor with --birth-date {birth}: not a minor on the issuance date {issued} "
                f"(by the age of majority of the card-application date {applied_for})"
            )
    rng = random.Random(seed)
    made_up = random_holder(rng, birth_date=birth or date(issued.year - 40, 4, 1))
    holder = Holder(
        name=name or made_up.name,
        address=address or made_up.address,
        birth_date=made_up.birth_date,
        sex=Sex(sex.value) if sex else made_up.sex,
        my_number=my_number or made_up.my_number,
    )
    applied = applied or default_applied_on(issued, holder.birth_date)
    try:
        folder = ca or default_home() / "jlis"
        authority = JlisCA.open(folder)
        # Recorded in J-LIS's registry too: the platform asks it about every certificate.
        state = lifecycle.issue(
            authority,
            CertificateRegistry(folder),
            holder,
            pin=pin,
            password=password,
            card_info_pin=info_pin,
            issued_on=issued,
            applied_on=applied,
            with_certificates=not no_certificate,
            atr_profile=atr.value,
            security_code=security_code,
        )
    except ValueError as exc:
        fail(str(exc))
    out.parent.mkdir(parents=True, exist_ok=True)
    save_card(state, out)
    console.print(f"card written to [bold]{escape(str(out))}[/]")
    console.print(f"J-LIS recorded the card as applied for on {applied}, issued on {issued}")
    _print_card(out, show_my_number=False)


# --- card info -----------------------------------------------------------------------------


def _load_or_fail(path: Path) -> None:
    try:
        load_card(path)
    except CardFormatError as exc:
        fail(str(exc))


def _print_card(path: Path, *, show_my_number: bool) -> None:
    state = load_card(path)
    h = state.holder
    table = Table(title=f"card {path}", show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column()
    number = h.my_number if show_my_number else "*" * 8 + h.my_number[-4:]
    table.add_row("holder", f"{h.name} ({h.sex.name.lower()}), born {h.birth_date}")
    table.add_row("address", h.address)
    table.add_row("My Number", number)
    table.add_row("card valid until", str(state.card_expires))
    table.add_row("ATR profile", state.atr_profile)
    for label, cred in (("auth certificate", state.auth), ("sign certificate", state.sign)):
        if cred is None:
            table.add_row(label, "none (declined at issuance)")
            continue
        cert = x509.load_der_x509_certificate(cred.certificate)
        lapsed = " [red](expired)[/]" if cert.not_valid_after_utc.date() < date.today() else ""
        table.add_row(
            label,
            f"serial {cert.serial_number}, {cert.not_valid_before_utc.date()} to "
            f"{cert.not_valid_after_utc.date()}{lapsed}",
        )
    table.add_row("security code", state.security_code if show_my_number else "****")
    for slot in PinSlot:
        pin = state.pins[slot]
        status = (
            "[red]BLOCKED[/]"
            if pin.blocked
            else f"{pin.tries_left}/{pin.policy.max_tries} tries left"
        )
        where = {"info": " (card-info AP)", "face": " (card-face AP)"}.get(
            slot.value.split("_")[0] if slot.printed else "", ""
        )
        table.add_row(pin.policy.name + where, status)
    console.print(table)


@card_app.command("info")
def card_info(
    card: Annotated[Path, typer.Option("--card", "-c", help="Card file.")],
    show_my_number: Annotated[bool, typer.Option(help="Print the My Number unmasked.")] = False,
    face_images: Annotated[
        Path | None,
        typer.Option(
            help="Write the card face's images (name, address, photo, security code, "
            "My Number) to this folder."
        ),
    ] = None,
    ca: Annotated[
        Path | None,
        typer.Option(
            help="J-LIS CA folder whose root checks the signatures (default: $MYNAHIL_HOME/jlis)."
        ),
    ] = None,
) -> None:
    """Show what a card file holds, then what a reader reads from its card-info and card-face
    APs (opened with 照合番号A; the My Number masked unless asked)."""
    _load_or_fail(card)
    _print_card(card, show_my_number=show_my_number)
    _print_jlis_record(card, ca or default_home() / "jlis")
    card_info_data(card, show_my_number=show_my_number, face_images=face_images, ca=ca)


def _print_jlis_record(path: Path, folder: Path) -> None:
    """What J-LIS in ``folder`` recorded about the card: its application date and the person."""
    from mynahil.reference_impl.jlis import CertificateRegistry
    from mynahil.reference_impl.jlis.registry import RegistryFileError

    state = load_card(path)
    if state.auth is None or not (folder / CertificateRegistry.FILE).exists():
        return
    serial = x509.load_der_x509_certificate(state.auth.certificate).serial_number
    try:
        facts = CertificateRegistry(folder).holder_facts(serial)
    except RegistryFileError as exc:
        fail(str(exc))
    if facts is None:
        console.print(f"J-LIS in {escape(str(folder))} has no record of this card")
        return
    console.print(
        f"J-LIS: card applied for on {facts.card_applied_on} (申請受付日), "
        f"person reference {facts.person_ref}"
    )


# --- card attach ---------------------------------------------------------------------------


@card_app.command("attach")
def card_attach(
    card: Annotated[Path, typer.Option("--card", "-c", help="Card file.")],
    vpcd: Annotated[
        str,
        typer.Option(help="HOST:PORT of a vpcd: pcscd's vsmartcard-vpcd or `mynahil … listen`."),
    ] = f"127.0.0.1:{VPCD_DEFAULT_PORT}",
    faults: Annotated[
        str | None, typer.Option(help="Fault profile: a TOML file or 'key=value;…'.")
    ] = None,
    reinsert_after: Annotated[
        float | None,
        typer.Option(help="After a fault pulls the card, put it back after S seconds."),
    ] = None,
    connect_timeout: Annotated[
        float, typer.Option(help="Seconds to keep trying to reach the vpcd.")
    ] = 10.0,
) -> None:
    """Put the card into a (virtual) reader as a vicc client; serve until the vpcd closes."""
    try:
        host, port = parse_host_port(vpcd, VPCD_DEFAULT_PORT)
        profile = load_fault_profile(faults) if faults else None
        stored = CardFile(card)
    except (ValueError, CardFormatError, CardBusy) as exc:
        fail(str(exc))
    emulated = EmulatedCard(stored.state, stored)
    served = FaultyCard(emulated, profile) if profile else emulated
    attachment = ViccAttachment(
        served,
        host,
        port,
        reinsert_after=reinsert_after,
        connect_timeout=connect_timeout,
        on_event=lambda message: err.print(f"[dim]{escape(message)}[/]"),
    )
    signal.signal(signal.SIGTERM, lambda *_: attachment.stop())
    try:
        attachment.serve_forever()
    except ConnectionError as exc:
        fail(str(exc))
    except KeyboardInterrupt:
        attachment.stop()
    finally:
        stored.close()
    err.print(f"served {attachment.stats.apdus} APDUs; card removed")


# --- card unblock --------------------------------------------------------------------------


@card_app.command("unblock")
def card_unblock(
    card: Annotated[Path, typer.Option("--card", "-c", help="Card file.")],
    which: Annotated[PinChoice, typer.Option(help="Which PIN to reset.")] = PinChoice.auth,
    new_pin: Annotated[
        str | None, typer.Option(help="Set a new PIN/password as well (default: keep it).")
    ] = None,
) -> None:
    """What a municipal window does: give a blocked PIN all its tries back."""
    slots = list(PinSlot) if which is PinChoice.all else [PinSlot(which.value)]
    if new_pin is not None and len(slots) > 1:
        fail("--new-pin needs a single --which (the PINs have different formats)")
    try:
        with CardFile(card) as stored:
            state = stored.state
            for slot in slots:
                state = state.with_pin(slot, state.pins[slot].unblocked(new_pin))
            stored.save(state)
    except (CardFormatError, CardBusy, ValueError) as exc:
        fail(str(exc))
    for slot in slots:
        console.print(
            f"{slot.policy.name}: {slot.policy.max_tries} tries"
            + (", new value set" if new_pin else "")
        )


card_app.command("verify-info")(verify_info_command)  # in card_data, beside card info
