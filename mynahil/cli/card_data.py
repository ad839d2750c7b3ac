"""``mynahil card info`` (what a reader reads from the card-info and card-face APs) and
``mynahil card verify-info`` (the relying party's check of the J-LIS signatures over them).

Both drive the card through the Card API, as a reader application does: an emulated card file
in process, or a real card on a PC/SC reader (``--transport pcsc:READER``).
"""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from cryptography import x509
from rich.markup import escape
from rich.table import Table

from ._common import console, default_home, fail

if TYPE_CHECKING:
    from ..card import CardFace, CardInfo, MyNumberCard

__all__ = ["read_card_data", "verify_info_command", "write_face_images"]

_SEX = {"1": "male", "2": "female", "9": "not stated"}
FACE_IMAGE_FILES = {
    "name.png": "name_png",
    "address.png": "address_png",
    "photo.jp2": "photo_jp2",
    "security-code.png": "security_code_png",
}


def _masked(number: str, show: bool) -> str:
    return number if show else "*" * 8 + number[-4:]


def _open_card(stack: ExitStack, card: Path | None, transport: str) -> tuple[MyNumberCard, str]:
    """The Card API over ``transport``, and the 照合番号A an emulated card file prints
    ("" for a real card: then --pin is needed)."""
    from mynahil.card_emulator import emulated_reader, load_card

    from ..card import MyNumberCard
    from ..transports import TransportError, open_transport

    if transport.startswith("pcsc"):
        try:
            wire = stack.enter_context(open_transport(transport))
        except TransportError as exc:
            fail(str(exc))
        return MyNumberCard(wire), ""
    if card is None:
        fail("give --card PATH (an emulated card file), or --transport pcsc:READER")
    from mynahil.card_emulator import CardFormatError

    try:
        state = load_card(card)
    except CardFormatError as exc:
        fail(str(exc))
    # The card file is only read: the counters this command touches are not written back.
    return emulated_reader(state), state.holder.my_number


def read_card_data(
    api: MyNumberCard, match_a: str, pin: str | None
) -> tuple[CardInfo, CardFace | None]:
    """The card-info AP (signed files included) and the card face: after the card-info PIN
    when given, else 照合番号A (the My Number, which an emulated card file prints)."""
    from ..card import Pin

    if pin:
        info = api.read_card_info(pin, signed=True)
    else:
        info = api.read_card_info(match_a, with_pin=Pin.CARD_INFO_A, signed=True)
    try:
        face = api.read_card_face(info.my_number, with_pin=Pin.FACE_A)
    except Exception as exc:  # a card without J-LIS-signed data has no card-face files
        from ..card import CardError

        if not isinstance(exc, CardError):
            raise
        face = None
    return info, face


def write_face_images(face: CardFace, folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, attribute in FACE_IMAGE_FILES.items():
        path = folder / name
        path.write_bytes(getattr(face.entries, attribute))
        written.append(path)
    if face.my_number_png is not None:
        path = folder / "my-number.png"
        path.write_bytes(face.my_number_png)
        written.append(path)
    return written


def card_data_table(
    info: CardInfo, face: CardFace | None, *, show_my_number: bool, verdict: str
) -> Table:
    table = Table(
        title="as a reader reads it (card-info and card-face APs)",
        show_header=False,
        title_justify="left",
    )
    table.add_column(style="bold")
    table.add_column()
    b = info.basic
    table.add_row("card-info AP", f"{b.name}, {b.address}")
    table.add_row("", f"born {b.birth_date}, sex {b.sex} ({_SEX.get(b.sex, '?')})")
    table.add_row("", f"My Number {_masked(info.my_number, show_my_number)}")
    table.add_row("J-LIS signature", verdict)
    if face is None:
        table.add_row("card-face AP", "no card-face files (a card file from before they existed)")
        return table
    e = face.entries
    table.add_row("card-face AP", f"born {e.birth}, sex {e.sex}, card valid until {e.expiry}")
    sizes = ", ".join(
        f"{name} {len(getattr(e, attr)):,} B" for name, attr in FACE_IMAGE_FILES.items()
    )
    table.add_row("", sizes)
    table.add_row("", f"EF 0002 is {len(face.entries_file):,} bytes")
    return table


def _root_from(root: Path | None, ca: Path | None) -> x509.Certificate:

    if root is None:
        folder = ca or default_home() / "jlis"
        root = folder / "auth-ca.crt.pem"
        if not root.exists():
            fail(f"no J-LIS root at {root}: give --root FILE or --ca FOLDER")
    try:
        data = root.read_bytes()
    except OSError as exc:
        fail(f"--root {root}: {exc.strerror}")
    try:
        if data.startswith(b"-----"):
            return x509.load_pem_x509_certificate(data)
        return x509.load_der_x509_certificate(data)
    except ValueError:
        fail(f"--root {root}: not an X.509 certificate (PEM or DER)")


def verdict_of(info: CardInfo, face: CardFace | None, root: x509.Certificate | None) -> str:
    from ..carddata import CardDataInvalid

    if root is None:
        return "not checked (no J-LIS root: run `mynahil card verify-info`)"
    try:
        info.verify(root)
        if face is not None:
            face.verify(root)
    except CardDataInvalid as exc:
        return f"[red]does NOT verify[/]: {escape(str(exc))}"
    return "[green]verifies[/] (EF 0003 and the card face, chained to the J-LIS root)"


CardOption = Annotated[
    Path | None, typer.Option("--card", "-c", help="Emulated card file (not for pcsc:…).")
]
TransportOption = Annotated[
    str, typer.Option(help="inproc (the card file) or pcsc[:READER] (a real card).")
]
PinOption = Annotated[
    str | None,
    typer.Option(
        help="The card-info PIN (4 digits); default: 照合番号A, the My Number the card file "
        "prints (a real card needs --pin)."
    ),
]


def verify_info_command(
    card: CardOption = None,
    transport: TransportOption = "inproc",
    pin: PinOption = None,
    root: Annotated[
        Path | None,
        typer.Option(
            help="The J-LIS root (PEM or DER; the platform publishes it at "
            "/v1/jlis/ca/auth). Default: the one in --ca."
        ),
    ] = None,
    ca: Annotated[
        Path | None, typer.Option(help="J-LIS CA folder (default: $MYNAHIL_HOME/jlis).")
    ] = None,
) -> None:
    """The relying party's check: read the card-info AP (and the card face) and verify EF 0003's
    signature, the card face's signatures and their certificate (EF 0004) up to the J-LIS root.
    Exit 0 when genuine, 1 when the data does not verify."""
    from ..card import CardError
    from ..carddata import CardDataInvalid

    anchor = _root_from(root, ca)
    with ExitStack() as stack:
        api, match_a = _open_card(stack, card, transport)
        if not pin and not match_a:
            fail("a real card needs --pin (the card-info PIN)")
        try:
            info, face = read_card_data(api, match_a, pin)
        except CardError as exc:
            fail(str(exc))
    try:
        info.verify(anchor)
        console.print("card-info AP: [green]genuine[/] (EF 0003 verifies, EF 0004 chains to "
                      "the J-LIS root)")  # fmt: skip
        if face is not None:
            face.verify(anchor)
            console.print("card-face AP: [green]genuine[/] (EF 0001, 0002, 0005 verify)")
    except CardDataInvalid as exc:
        console.print(f"[red]NOT genuine[/]: {escape(str(exc))}")
        raise typer.Exit(1) from None


def card_info_data(
    card: Path,
    *,
    show_my_number: bool,
    face_images: Path | None,
    ca: Path | None,
) -> None:
    """The reader's view for ``mynahil card info`` (called after the file's own table)."""
    from ..card import CardError

    folder = ca or default_home() / "jlis"
    anchor_path = folder / "auth-ca.crt.pem"
    anchor = _root_from(anchor_path, None) if anchor_path.exists() else None
    with ExitStack() as stack:
        api, match_a = _open_card(stack, card, "inproc")
        try:
            info, face = read_card_data(api, match_a, None)
        except CardError as exc:
            fail(f"reading the card-info AP: {exc}")
    console.print(
        card_data_table(
            info, face, show_my_number=show_my_number, verdict=verdict_of(info, face, anchor)
        )
    )
    if face_images is not None:
        if face is None:
            fail("this card has no card-face files to write (re-issue it with `card new`)")
        for path in write_face_images(face, face_images):
            console.print(f"wrote {escape(str(path))}")
