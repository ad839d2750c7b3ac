"""The ``mynahil`` command line: one entry point, a subcommand for each job."""

from __future__ import annotations

import os
import random
import signal
import sys
from contextlib import ExitStack
from datetime import UTC, date, datetime, time
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer
from cryptography import x509
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from card_emulator import (
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
    parse_host_port,
    save_card,
)

from .extras import MissingExtra
from .vpcd_protocol import VPCD_DEFAULT_PORT

if TYPE_CHECKING:
    from reference_impl.client import PlatformClient

    from .card import MyNumberCard

app = typer.Typer(
    name="mynahil",
    help="MyNa Point hardware-in-the-loop simulator and conformance harness.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
client_app = typer.Typer(
    help="The cardholder client: what the phone app and the PC software do.", no_args_is_help=True
)
card_app = typer.Typer(
    help="Emulated My Number cards: make, inspect, attach to a reader, unblock.",
    no_args_is_help=True,
)
app.add_typer(card_app, name="card")
app.add_typer(client_app, name="client")
audit_app = typer.Typer(help="The platform's hash-chained audit log.", no_args_is_help=True)
app.add_typer(audit_app, name="audit")

console = Console()
err = Console(stderr=True, soft_wrap=True)  # errors stay on one greppable line


def fail(message: str, code: int = 2) -> NoReturn:
    err.print(f"[bold red]error:[/] {escape(message)}")
    raise typer.Exit(code)


def display_url(url: str) -> str:
    """A database URL fit to print: never its password."""
    from reference_impl.store.admin import display_url as shown

    return shown(url)


def read_secret(given: str | None, *, option: str, env: str, prompt: str) -> str:
    """A PIN or password: from ``$env``, else a hidden prompt in a terminal. On the command
    line it still works, with a warning: argv is visible to every user (``ps``)."""
    if given is not None:
        err.print(
            f"[yellow]warning:[/] {option} on the command line is visible to other users of "
            f"this machine (ps); set ${env} or let mynahil ask for it"
        )
        return given
    from_env = os.environ.get(env)
    if from_env is not None:
        return from_env
    if sys.stdin.isatty():
        return str(typer.prompt(prompt, hide_input=True))
    fail(f"{option}: not given; set ${env}, or run in a terminal to be asked")


def default_home() -> Path:
    return Path(os.environ.get("MYNAHIL_HOME", Path.home() / ".mynahil"))


def _parse_date(text: str | None, option: str) -> date | None:
    if text is None:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        fail(f"{option} {text!r} is not a date (YYYY-MM-DD)")


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
    pin: Annotated[str, typer.Option(help="User-authentication PIN: 4 digits.")] = "1234",
    password: Annotated[
        str, typer.Option(help="Signing password: 6-16 of A-Z and 0-9.")
    ] = "ABC123",
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
    from reference_impl.jlis import (
        CertificateRegistry,
        JlisCA,
        default_applied_on,
        is_minor,
        lifecycle,
        random_holder,
    )

    if out.exists() and not force:
        fail(f"{out} exists; pass --force to replace it")
    if expired and issued_on:
        fail("--expired picks the issuance date itself; drop --issued-on")
    today = date.today()
    issued = _parse_date(issued_on, "--issued-on") or (
        date(today.year - 6, today.month, min(today.day, 28)) if expired else today
    )
    applied = _parse_date(applied_on, "--applied-on")
    if applied is not None and applied > issued:
        fail(f"--applied-on {applied} is after the issuance date {issued}: apply first")
    birth = _parse_date(birth_date, "--birth-date")
    if birth is not None and birth > (applied or issued):
        fail(f"--birth-date {birth} is after the card-application date {applied or issued}")
    if minor:
        if birth is None:
            birth = date(issued.year - 12, issued.month, min(issued.day, 28))
        applied_for = applied or default_applied_on(issued, birth)
        if not is_minor(birth, applied_for):
            fail(
                f"--minor with --birth-date {birth}: not a minor on the card-application date "
                f"{applied_for}"
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
    from .cli_card_data import card_info_data

    _load_or_fail(card)
    _print_card(card, show_my_number=show_my_number)
    _print_jlis_record(card, ca or default_home() / "jlis")
    card_info_data(card, show_my_number=show_my_number, face_images=face_images, ca=ca)


def _print_jlis_record(path: Path, folder: Path) -> None:
    """What J-LIS in ``folder`` recorded about the card: its application date and the person."""
    from reference_impl.jlis import CertificateRegistry
    from reference_impl.jlis.registry import RegistryFileError

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


# --- client ------------------------------------------------------------------------------


def _client_session(
    stack: ExitStack, card: Path | None, transport: str, platform: str, ca_file: Path | None
) -> tuple[MyNumberCard, PlatformClient]:
    """The card on its wire and the platform client, closed when ``stack`` closes."""
    from reference_impl.client import PlatformClient

    from .card import MyNumberCard
    from .tls import TlsConfigError, client_verify
    from .transports import TransportError, open_transport

    try:
        verify = client_verify(ca_file)
    except TlsConfigError as exc:
        fail(str(exc))
    emulated: EmulatedCard | None = None
    if not transport.startswith("pcsc"):
        if card is None:
            fail(f"--transport {transport} drives an emulated card: give --card PATH")
        try:
            stored = stack.enter_context(CardFile(card))
        except (CardFormatError, CardBusy) as exc:
            fail(str(exc))
        emulated = EmulatedCard(stored.state, stored)
    try:
        wire = open_transport(transport, emulated)
        wire.connect()
    except (ValueError, TransportError) as exc:
        fail(str(exc))
    stack.callback(wire.disconnect)
    client = PlatformClient.connect(platform, verify=verify)
    stack.callback(client.http.close)
    return MyNumberCard(wire), client


CardOption = Annotated[
    Path | None, typer.Option("--card", "-c", help="Emulated card file (not for pcsc:…).")
]
PinOption = Annotated[
    str | None,
    typer.Option(
        help="The card's user-authentication PIN (4 digits). Better: $MYNAHIL_PIN, or leave it "
        "out and be asked (hidden); on the command line other users can see it."
    ),
]


def _pin(given: str | None) -> str:
    return read_secret(given, option="--pin", env="MYNAHIL_PIN", prompt="PIN (4 digits)")


TransportOption = Annotated[
    str, typer.Option(help="inproc, socket, vpcd[:PORT] or pcsc[:READER] (a real card).")
]
CaFileOption = Annotated[
    Path | None,
    typer.Option(
        "--ca-file",
        envvar="MYNAHIL_CA_FILE",
        help="CA certificate(s), PEM, that an https server's certificate must chain to "
        "(default: the system's trust store).",
    ),
]


@client_app.command("apply")
def client_apply(
    platform: Annotated[str, typer.Option(help="Base URL of the platform.")],
    service: Annotated[str, typer.Option(help="The payment service you choose.")],
    account: Annotated[str, typer.Option(help="Your payment service ID (from its app).")],
    security_code: Annotated[str, typer.Option(help="The security code the service gave.")],
    card: CardOption = None,
    transport: TransportOption = "inproc",
    campaign: Annotated[str | None, typer.Option(help="Default: the one open today.")] = None,
    ca_file: CaFileOption = None,
    pin: PinOption = None,
) -> None:
    """Application: choose your payment service, with the card (final: it never changes)."""
    from contextlib import ExitStack

    from reference_impl.client import ClientRefusal, advice_for

    from .transports import TransportError

    secret = _pin(pin)
    with ExitStack() as stack:
        holder_card, client = _client_session(stack, card, transport, platform, ca_file)
        try:
            applied = client.apply(holder_card, secret, service, account, security_code, campaign)
        except ClientRefusal as refusal:
            fail(f"{refusal} [{refusal.code}]", code=1)
        except TransportError as exc:
            fail(str(advice_for(exc)), code=1)
    console.print(
        f"applied for {escape(applied['campaign_id'])} with {escape(applied['service_id'])} "
        f"(payment service ID {escape(applied['account_id'])}); this choice is final"
    )


@client_app.command("reserve")
def client_reserve(
    platform: Annotated[str, typer.Option(help="Base URL of the MyKey platform.")],
    card: CardOption = None,
    transport: TransportOption = "inproc",
    chosen_id: Annotated[
        str | None, typer.Option(help="Pick your MyKey ID (portal style).")
    ] = None,
    ca_file: CaFileOption = None,
    pin: PinOption = None,
) -> None:
    """Reservation: get the card's MyKey ID (printed alone on the last line)."""
    from contextlib import ExitStack

    from reference_impl.client import ClientRefusal, advice_for

    from .transports import TransportError

    secret = _pin(pin)
    with ExitStack() as stack:
        holder_card, client = _client_session(stack, card, transport, platform, ca_file)
        try:
            mykey_id = client.reserve(holder_card, secret, chosen_id)
        except ClientRefusal as refusal:
            fail(f"{refusal} [{refusal.code}]", code=1)
        except TransportError as exc:
            fail(str(advice_for(exc)), code=1)
    err.print("MyKey ID:")
    typer.echo(mykey_id)  # plain: scripts read the last line


# --- serve -------------------------------------------------------------------------------


@app.command("serve")
def serve(
    db: Annotated[
        str | None, typer.Option(help="sqlite:///path or postgresql+psycopg://… [$MYNAHIL_DB]")
    ] = None,
    port: Annotated[
        int | None, typer.Option(help="Port to listen on (default 8000) [$MYNAHIL_PORT].")
    ] = None,
    host: Annotated[
        str | None,
        typer.Option(help="Interface to listen on (default 127.0.0.1) [$MYNAHIL_HOST]."),
    ] = None,
    ca: Annotated[
        Path | None,
        typer.Option(help="J-LIS CA folder (default: $MYNAHIL_HOME/jlis) [$MYNAHIL_JLIS]."),
    ] = None,
    as_of: Annotated[
        str | None,
        typer.Option(
            help="Start the platform's clock at this date (JST noon), e.g. 2020-09-01, "
            "to replay a campaign; it then runs at real speed [$MYNAHIL_AS_OF]."
        ),
    ] = None,
    tls_cert: Annotated[
        Path | None,
        typer.Option(
            help="Serve HTTPS with this certificate (PEM, chain first); needs --tls-key "
            "[$MYNAHIL_TLS_CERT]."
        ),
    ] = None,
    tls_key: Annotated[
        Path | None, typer.Option(help="The private key (PEM) of --tls-cert [$MYNAHIL_TLS_KEY].")
    ] = None,
    ca_file: CaFileOption = None,
    registries: Annotated[
        str | None,
        typer.Option(
            help="Ask the health-insurance and public-fund registries at this base URL "
            "(https verified with --ca-file) instead of the ones beside J-LIS "
            "[$MYNAHIL_REGISTRIES]."
        ),
    ] = None,
    log_format: Annotated[
        str | None,
        typer.Option(help="json (default: one object a line) or text [$MYNAHIL_LOG_FORMAT]."),
    ] = None,
    log_level: Annotated[
        str | None,
        typer.Option(help="debug, info (default), warning or error [$MYNAHIL_LOG_LEVEL]."),
    ] = None,
) -> None:
    """Run the reference platform (MyKey, J-LIS, points) over HTTP(S); SQLite by default.

    Every option can come from its MYNAHIL_* environment variable instead. --ca-file here is
    what the platform trusts when it calls operators' https verify URLs and the registries."""
    import uvicorn
    from sqlalchemy.exc import SQLAlchemyError

    from reference_impl.api.logs import configure_logging
    from reference_impl.platform import build_platform, remote_registries, server_options
    from reference_impl.settings import SettingsError, load_settings

    from .tls import TlsConfigError, check_server_files, client_verify

    try:
        settings = load_settings(
            db=db, port=port, host=host, jlis=ca, as_of=_parse_date(as_of, "--as-of"),
            tls_cert=tls_cert, tls_key=tls_key, ca_file=ca_file, registries=registries,
            log_format=log_format, log_level=log_level,
        )  # fmt: skip
        secure = check_server_files(settings.tls_cert, settings.tls_key)
        operator_tls = client_verify(settings.ca_file)
    except (SettingsError, TlsConfigError) as exc:
        fail(str(exc))
    url = settings.db_url
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).expanduser().parent.mkdir(parents=True, exist_ok=True)
    configure_logging(settings.log_format, settings.log_level)
    as_of_moment = (
        datetime.combine(settings.as_of, time(3, 0), UTC) if settings.as_of else None
    )  # noon in Japan: campaign days are Japan days
    try:
        platform = build_platform(
            url, settings.jlis_folder, as_of=as_of_moment, operator_tls=operator_tls,
            registrations=remote_registries(settings.registries, operator_tls),
        )  # fmt: skip
    except (ValueError, SQLAlchemyError) as exc:
        fail(f"cannot start on {display_url(url)}: {exc}")
    shown = escape(display_url(url))
    scheme = "https" if secure else "http"
    err.print(
        f"platform on {scheme}://{settings.host}:{settings.port} (OpenAPI at /openapi.json, "
        f"docs at /docs), database {shown}"
        + (f", registries at {escape(settings.registries)}" if settings.registries else "")
    )
    try:
        uvicorn.run(
            platform.app, host=settings.host, port=settings.port, log_config=None,
            access_log=False,  # the platform writes its own access records (request IDs)
            ssl_certfile=settings.tls_cert if secure else None,
            ssl_keyfile=settings.tls_key if secure else None,
            **server_options(),
        )  # fmt: skip
    finally:
        platform.close()


def _as_of(text: str | None) -> datetime | None:
    """A date as noon in Japan (03:00 UTC): campaign days are Japan days."""
    day = _parse_date(text, "--as-of")
    return datetime.combine(day, time(3, 0), UTC) if day else None


# --- audit -------------------------------------------------------------------------------


def default_db_url() -> str:
    """The platform's database when --db is not given: $MYNAHIL_DB, else the local SQLite."""
    return os.environ.get("MYNAHIL_DB") or f"sqlite:///{default_home() / 'platform.db'}"


@audit_app.command("verify")
def audit_verify(
    db: Annotated[
        str | None, typer.Option(help="Database URL (default: the local SQLite).")
    ] = None,
) -> None:
    """Prove the audit chain intact, or name the first record that was tampered with."""
    from sqlalchemy.exc import SQLAlchemyError

    from reference_impl.store import SqlStore

    url = db or default_db_url()
    try:
        store = SqlStore.open(url, migrate=False)
    except (ValueError, SQLAlchemyError) as exc:
        fail(f"cannot open {display_url(url)}: {exc}")
    try:
        count, problem = store.verify_audit()
    except SQLAlchemyError as exc:
        fail(f"cannot read the audit log of {display_url(url)}: {exc}")
    finally:
        store.dispose()
    if problem is not None:
        err.print(
            f"[bold red]TAMPERED[/]: {escape(str(problem))} ({count} records before it are intact)"
        )
        raise typer.Exit(1)
    console.print(f"audit log intact: {count} records, every hash links")


# --- readers and demo ----------------------------------------------------------------------


@app.command("readers")
def readers() -> None:
    """List the PC/SC readers pcscd knows."""
    from .transports import TransportError, list_readers

    try:
        names = list_readers()
    except TransportError as exc:
        fail(str(exc))
    for name in names:
        typer.echo(name)
    if not names:
        err.print("no readers")


@app.command("demo")
def demo(
    out: Annotated[Path, typer.Option(help="Folder for the report.")] = Path("reports"),
    runs: Annotated[int, typer.Option(min=1, max=10_000, help="Flows per transport.")] = 20,
) -> None:
    """The main job: cards through every wire this machine has, and a report under reports/."""
    from .demo import run_demo

    with console.status("starting") as status:
        report = run_demo(out, runs=runs, progress=status.update)
    table = Table(title="MyKey card flow (read certificate, verify PIN, sign)")
    for column in ("transport", "card", "median ms", "p95 ms", "APDUs", "signatures"):
        table.add_column(column)
    for t in report.transports:
        table.add_row(
            t.transport,
            t.card,
            f"{t.median_ms:.2f}",
            f"{t.p95_ms:.2f}",
            str(t.apdus_per_flow),
            "all valid" if t.all_signatures_valid else "[red]INVALID[/]",
        )
    console.print(table)
    for story in report.stories:
        mark = "[green]ok[/]" if story["outcome"] == "as expected" else "[red]UNEXPECTED[/]"
        console.print(f"{mark} {escape(story['story'])}: {escape(story['observed'])}")
    if report.opensc:
        console.print(
            f"OpenSC: {report.opensc['certificates_listed']}; "
            f"signature {report.opensc['signature']}"
        )
    for what, why in report.skipped.items():
        console.print(f"[yellow]skipped {what}[/]: {escape(why)}")
    console.print(f"report: [bold]{report.report_dir}/report.md[/] (and report.json)")
    if not report.ok:
        raise typer.Exit(1)


def _show_version(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version

        try:
            console.print(f"mynahil {version('mynahil')}")
        except PackageNotFoundError:  # a checkout on sys.path, never installed
            console.print("mynahil (not installed)")
        raise typer.Exit


@app.callback()
def _root(
    _version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_show_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """MyNa Point hardware-in-the-loop simulator and conformance harness."""


def main() -> None:
    try:
        app()
    except BrokenPipeError:
        sys.exit(0)
    except MissingExtra as exc:  # an optional part a command needs is not installed
        err.print(f"[bold red]error:[/] {escape(str(exc))}")
        sys.exit(2)


def _register_subcommands() -> None:
    """Command groups kept in their own modules (they import this one for its helpers)."""
    from conformance.cli import app as conformance_app
    from simulator.cli import calibrate, loadtest, scenarios_app, simulate

    from .cli_card_data import verify_info_command
    from .cli_db import db_app
    from .cli_helpdesk import helpdesk_app
    from .cli_points import operator_app, points_app
    from .cli_registry import registry_app
    from .cli_soak import soak
    from .cli_staff import staff_app

    card_app.command("verify-info")(verify_info_command)
    app.add_typer(operator_app, name="operator")
    app.add_typer(points_app, name="points")
    app.add_typer(staff_app, name="staff")
    app.add_typer(registry_app, name="registry")
    app.add_typer(helpdesk_app, name="helpdesk")
    app.command("simulate")(simulate)
    app.add_typer(scenarios_app, name="scenarios")
    app.command("calibrate")(calibrate)
    app.command("soak")(soak)
    app.command("loadtest")(loadtest)
    app.add_typer(conformance_app, name="conformance")
    app.add_typer(db_app, name="db")


_register_subcommands()
