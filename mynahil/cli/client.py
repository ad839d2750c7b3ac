"""``mynahil client``: what the phone app and the PC software do with a card and the platform."""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from mynahil.card_emulator import CardBusy, CardFile, CardFormatError, EmulatedCard, open_transport

from ._common import CaFileOption, console, err, fail, read_secret

if TYPE_CHECKING:
    from mynahil.reference_impl.client import PlatformClient

    from ..card import MyNumberCard

client_app = typer.Typer(
    help="The cardholder client: what the phone app and the PC software do.", no_args_is_help=True
)


def _client_session(
    stack: ExitStack, card: Path | None, transport: str, platform: str, ca_file: Path | None
) -> tuple[MyNumberCard, PlatformClient]:
    """The card on its wire and the platform client, closed when ``stack`` closes."""
    from mynahil.reference_impl.client import PlatformClient

    from ..card import MyNumberCard
    from ..tls import TlsConfigError, client_verify
    from ..transports import TransportError

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
        # Not emulated_reader: --transport names the wire (inproc, socket, vpcd, pcsc).
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
    from mynahil.reference_impl.client import ClientRefusal, advice_for

    from ..transports import TransportError

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
    from mynahil.reference_impl.client import ClientRefusal, advice_for

    from ..transports import TransportError

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
