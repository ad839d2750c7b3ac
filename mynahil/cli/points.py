"""``mynahil operator …`` (what a payment operator runs) and ``mynahil points …`` (what the
platform's own staff run): keys, registration, the sample operator, settlement,
reconciliation and the ledger's invariants."""

from __future__ import annotations

import base64
import binascii
import json
import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.table import Table

from ._common import (
    CaFileOption,
    console,
    default_db_url,
    display_url,
    err,
    fail,
    opened_store,
)

if TYPE_CHECKING:
    from mynahil.reference_impl.points import PointsBooks

__all__ = ["operator_app", "points_app"]

operator_app = typer.Typer(
    help="For payment operators: keys, registration, settlement, reconciliation, and a sample "
    "payment service.",
    no_args_is_help=True,
)
points_app = typer.Typer(
    help="The point system's books: monthly settlement files and the ledger's invariants.",
    no_args_is_help=True,
)

PlatformUrl = Annotated[str, typer.Option("--platform", help="Base URL of the platform.")]
OperatorId = Annotated[str, typer.Option("--operator", help="Your operator ID.")]
KeyFile = Annotated[Path, typer.Option("--key", help="Your Ed25519 private key (PEM).")]
Month = Annotated[str, typer.Option(help="The month, in Japan time: YYYY-MM.")]
DbUrl = Annotated[
    str | None, typer.Option("--db", help="Database URL (default: the local SQLite).")
]


def _load_key(path: Path) -> object:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    try:
        key = load_pem_private_key(path.read_bytes(), password=None)
    except OSError as exc:
        fail(f"--key {path}: {exc.strerror or exc}")
    except ValueError:
        fail(f"--key {path}: not a PEM private key (make one with: mynahil operator keygen)")
    if not isinstance(key, Ed25519PrivateKey):
        fail(f"--key {path}: an Ed25519 key is needed")
    return key


def _verify(ca_file: Path | None) -> object:
    from ..tls import TlsConfigError, client_verify

    try:
        return client_verify(ca_file)
    except TlsConfigError as exc:
        fail(str(exc))


def _client(platform: str, operator: str, key: Path, ca_file: Path | None) -> object:
    import ssl

    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from mynahil.reference_impl.operator import OperatorClient
    from mynahil.reference_impl.points.signing import Signer

    private = _load_key(key)
    assert isinstance(private, Ed25519PrivateKey)
    verify = _verify(ca_file)
    assert isinstance(verify, ssl.SSLContext | bool)
    return OperatorClient.connect(platform, Signer(operator, private), verify=verify)


def _raw_public_key(value: str, option: str) -> bytes:
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        fail(f"{option} is not base64")
    if len(raw) != 32:
        fail(f"{option} must be a raw Ed25519 public key (32 bytes, base64)")
    return raw


@contextmanager
def _books(db: str | None) -> Iterator[PointsBooks]:
    """The point system's books on the platform's database, and nothing else: the staff's
    commands need neither J-LIS's keys nor the HTTP app."""
    from mynahil.reference_impl.points import PointsBooks, load_scheme

    with opened_store(db) as store:
        yield PointsBooks(store, load_scheme())


def _month(month: str) -> str:
    from mynahil.reference_impl.points.settlement import month_bounds

    try:
        month_bounds(month)
    except ValueError as exc:
        fail(f"--month: {exc}")
    return month


@operator_app.command("keygen")
def keygen(out: Annotated[Path, typer.Option(help="Where to write the private key.")]) -> None:
    """A new Ed25519 signing key; prints the public key to register with the platform."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import (
        Encoding,
        NoEncryption,
        PrivateFormat,
    )

    from mynahil.reference_impl.points.signing import public_key_bytes

    from ..files import write_atomically

    if out.exists():
        fail(f"--out {out} exists; not overwriting a key")
    key = Ed25519PrivateKey.generate()
    out.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(out, key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()))
    out.chmod(0o600)
    err.print(f"private key written to {escape(str(out))}; public key:")
    typer.echo(base64.b64encode(public_key_bytes(key)).decode())


@operator_app.command("register")
def register(
    operator: OperatorId,
    name: Annotated[str, typer.Option(help="The operator's name, as holders see it.")],
    public_key: Annotated[str, typer.Option(help="Base64 public key from `keygen`.")],
    service: Annotated[
        list[str], typer.Option(help="A payment service, ID[:NAME]; repeat for several.")
    ],
    verify_url: Annotated[
        str | None, typer.Option(help="Where the platform verifies accounts (POST).")
    ] = None,
    db: DbUrl = None,
) -> None:
    """Register an operator and its services with the platform (platform staff, on its DB)."""
    from mynahil.reference_impl.points import Operator, PaymentService, PointsError

    raw_key = _raw_public_key(public_key, "--public-key")
    services = []
    for spec in service:
        service_id, _, label = spec.partition(":")
        if not service_id.strip():
            fail(f"--service {spec!r}: give ID or ID:NAME")
        services.append(PaymentService(service_id.strip(), operator, label.strip() or service_id))
    with _books(db) as books:
        try:
            books.register_operator(
                Operator(operator, name, raw_key, verify_url=verify_url), services
            )
        except PointsError as exc:
            fail(str(exc), code=1)
    console.print(f"registered {escape(operator)} with {', '.join(s.service_id for s in services)}")


@operator_app.command("run")
def run_sample_operator(
    platform: PlatformUrl,
    operator: OperatorId,
    key: KeyFile,
    service: Annotated[str, typer.Option(help="The payment service ID it runs.")],
    port: Annotated[int, typer.Option(min=1, max=65535)] = 8100,
    host: str = "127.0.0.1",
    platform_key: Annotated[
        str | None,
        typer.Option(
            help="The platform's public key (base64), as `conformance operator-setup` prints "
            "it; given, the service starts without the platform and stamps charges with its "
            "own clock. Otherwise both are fetched from the platform."
        ),
    ] = None,
    tls_cert: Annotated[
        Path | None,
        typer.Option(help="Serve HTTPS with this certificate (PEM); needs --tls-key."),
    ] = None,
    tls_key: Annotated[Path | None, typer.Option(help="The private key of --tls-cert.")] = None,
    ca_file: CaFileOption = None,
) -> None:
    """Run the sample payment service (accounts, verify calls, a till that reports charges).

    --ca-file is what it trusts when it calls an https platform."""
    from collections.abc import Callable
    from datetime import datetime

    import httpx
    import uvicorn

    from mynahil.reference_impl.client import PlatformClient
    from mynahil.reference_impl.operator import OperatorBooks, OperatorClient, create_operator_app
    from mynahil.reference_impl.platform import shifted_clock

    from ..tls import TlsConfigError, check_server_files, tls_failure

    try:
        secure = check_server_files(tls_cert, tls_key)
    except TlsConfigError as exc:
        fail(str(exc))
    verify = _verify(ca_file)
    assert isinstance(verify, ssl.SSLContext | bool)
    base = platform.rstrip("/")
    clock: Callable[[], datetime] | None
    if platform_key is not None:
        trusted = _raw_public_key(platform_key, "--platform-key")
        clock = None  # the wall clock
    else:
        try:
            with httpx.Client(base_url=base, timeout=10, verify=verify) as http:
                answer = http.get("/v1/points/platform-key")
                trusted = base64.b64decode(answer.json()["public_key"])
                # Follow the platform's business time: charges land in the campaign it replays.
                platform_now = PlatformClient(http).business_time()
            clock = shifted_clock(platform_now)  # at once: a late offset would lag behind
        except (httpx.HTTPError, ValueError, KeyError) as exc:
            why = tls_failure(exc) or exc
            fail(f"cannot fetch the platform's key and time from {platform}: {why}")
    # Not the sandbox's sample_operator: the platform is remote and the operator is registered
    # with it beforehand (`operator register`), with the key file given here.
    client = _client(platform, operator, key, ca_file)
    assert isinstance(client, OperatorClient)
    books = OperatorBooks(operator, service)
    me = f"{'https' if secure else 'http'}://{host}:{port}"
    err.print(
        f"sample operator {escape(operator)} on {me}; register its verify URL "
        f"{me}/v1/verify-account with the platform"
    )
    operator_app = create_operator_app(books, trusted, client, clock)
    uvicorn.run(
        operator_app, host=host, port=port, log_level="warning",
        ssl_certfile=tls_cert if secure else None, ssl_keyfile=tls_key if secure else None,
    )  # fmt: skip


@operator_app.command("settlement")
def settlement(
    platform: PlatformUrl,
    operator: OperatorId,
    key: KeyFile,
    month: Month,
    format: Annotated[str, typer.Option(help="csv or json.")] = "csv",
    out: Annotated[Path | None, typer.Option(help="Write to a file instead.")] = None,
    ca_file: CaFileOption = None,
) -> None:
    """Fetch the month's settlement from the platform (signed request)."""
    from mynahil.reference_impl.operator import OperatorClient
    from mynahil.reference_impl.points import PointsError

    if format not in ("csv", "json"):
        fail("--format must be csv or json")
    client = _client(platform, operator, key, ca_file)
    assert isinstance(client, OperatorClient)
    try:
        result = client.settlement(_month(month), format)
    except PointsError as exc:
        fail(f"{exc} [{exc.code}]", code=1)
    text = result if isinstance(result, str) else json.dumps(result, indent=2, ensure_ascii=False)
    if out is None:
        typer.echo(text, nl=False)
    else:
        out.write_text(text, encoding="utf-8")
        err.print(f"settlement written to {escape(str(out))}")


@operator_app.command("reconcile")
def reconcile(
    platform: PlatformUrl,
    operator: OperatorId,
    key: KeyFile,
    month: Month,
    records: Annotated[
        Path, typer.Option(help="Your books: CSV with transaction_id,kind,amount,points.")
    ],
    ca_file: CaFileOption = None,
) -> None:
    """Compare your books with the platform's; list every difference (exit 1 if any)."""
    from mynahil.reference_impl.operator import OperatorClient
    from mynahil.reference_impl.points import PointsError
    from mynahil.reference_impl.points.settlement import parse_operator_records

    try:
        text = records.read_text(encoding="utf-8")
        parse_operator_records(text)
    except OSError as exc:
        fail(f"--records {records}: {exc.strerror or exc}")
    except ValueError as exc:
        fail(f"--records {records}: {exc}")
    client = _client(platform, operator, key, ca_file)
    assert isinstance(client, OperatorClient)
    try:
        differences = client.reconcile(_month(month), text)
    except PointsError as exc:
        fail(f"{exc} [{exc.code}]", code=1)
    if not differences:
        console.print(f"{month}: your books and the platform's agree")
        return
    table = Table("transaction", "problem", "yours", "platform's", title=f"{month}: differences")
    for d in differences:
        table.add_row(d["transaction_id"], d["problem"], str(d["operator"]), str(d["platform"]))
    console.print(table)
    raise typer.Exit(1)


@points_app.command("settle")
def settle(
    operator: OperatorId,
    month: Month,
    out: Annotated[Path, typer.Option(help="Folder for the CSV and JSON files.")] = Path("reports"),
    db: DbUrl = None,
) -> None:
    """Write an operator's monthly settlement (CSV and JSON) from the platform's database."""
    from mynahil.reference_impl.points import PointsError

    with _books(db) as books:
        try:
            result = books.settlement(operator, _month(month))
        except PointsError as exc:
            fail(str(exc), code=1)
    out.mkdir(parents=True, exist_ok=True)
    stem = out / f"settlement-{operator}-{month}"
    stem.with_suffix(".csv").write_text(result.to_csv(), encoding="utf-8")
    stem.with_suffix(".json").write_text(result.to_json(), encoding="utf-8")
    table = Table("service", "granted", "taken back", "bonus", "net", title=f"{operator} {month}")
    for service_id, line in result.totals().items():
        table.add_row(service_id, *(f"{line[k]:,}" for k in ("granted", "taken_back", "bonus",
                                                                "net")))  # fmt: skip
    console.print(table)
    err.print(f"written: {escape(str(stem))}.csv and .json")


@points_app.command("check")
def check(db: DbUrl = None) -> None:
    """Check the ledger's invariants over the whole database (exit 1 naming each violation)."""
    from sqlalchemy.exc import SQLAlchemyError

    url = db or default_db_url()
    with _books(url) as books:
        try:
            problems = books.violations()
        except SQLAlchemyError as exc:
            fail(f"cannot read the ledger of {display_url(url)}: {exc}")
    if problems:
        for problem in problems:
            err.print(f"[bold red]violation[/]: {escape(problem)}")
        raise typer.Exit(1)
    console.print("ledger sound: totals match entries, caps hold, no grant without application")
