"""An operator profile: who a payment vendor's service is and where the harness meets it.

A vendor certifying their own operator endpoint (``operator:URL``) describes it in a TOML
file (``scenarios/operators/example.toml`` is a commented one). The harness's platform is
configured from it: the operator and its payment service are registered with the vendor's
public key and verify URL, and the platform listens where the vendor's service reports.
"""

from __future__ import annotations

import base64
import binascii
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Final
from urllib.parse import urlsplit

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from pydantic import Field

from mynahil.config import ConfigModel, Name, Positive, Text, validated
from mynahil.files import read_toml
from mynahil.paths import mynahil_home
from mynahil.tls import client_verify

__all__ = [
    "OperatorProfile",
    "OperatorProfileError",
    "OperatorProfileFile",
    "load_operator_profile",
]

DEFAULT_LISTEN: Final = "127.0.0.1:8700"


class OperatorProfileFile(ConfigModel):
    """An operator profile (``scenarios/operators/example.toml``): a vendor's payment service
    and where the harness meets it. Relative paths are relative to the file's folder."""

    name: Name = Field(description="the service's name, as the report shows it")
    target: Text = Field("", description="operator:URL, the base URL of the service's hooks")
    operator_id: Name = Field(description="the operator ID the service signs its reports with")
    service_id: Name = Field(description="the payment service ID holders choose")
    public_key: Name = Field(
        description="the service's Ed25519 public key: base64 of its 32 raw bytes, or a PEM file"
    )
    verify_url: Text = Field(
        "", description="where the platform verifies accounts (default: URL/v1/verify-account)"
    )
    platform_listen: Text = Field(
        DEFAULT_LISTEN,
        description=f"HOST:PORT the harness's platform listens on (default {DEFAULT_LISTEN})",
    )
    platform_url: Text = Field(
        "", description="the platform's URL as the service reaches it (default http://LISTEN)"
    )
    harness_dir: Text = Field("", description="folder keeping the harness's platform key")
    wait_s: Annotated[float, Positive(600)] = Field(
        10.0, description="seconds to wait for a report or a credit to arrive (default 10)"
    )
    ca_file: Text = Field("", description="a CA bundle (PEM) for an https service, private CA")
    description: Text = Field("", description="free text")


class OperatorProfileError(ValueError):
    """A profile the harness cannot use; the message names the file and the field."""


@dataclass(frozen=True, slots=True)
class OperatorProfile:
    name: str
    url: str  # the hooks' base URL (the part of the target after "operator:")
    operator_id: str
    service_id: str
    public_key: bytes  # raw Ed25519, 32 bytes
    verify_url: str
    platform_host: str
    platform_port: int
    platform_url: str
    harness_dir: Path
    wait_s: float = 10.0
    ca_file: Path | None = None
    description: str = ""

    @property
    def target(self) -> str:
        return f"operator:{self.url}"

    @property
    def tls_verify(self) -> ssl.SSLContext | bool:
        """What httpx's ``verify`` takes: a context trusting the private CA when one is
        named (for the hooks and the platform's verify calls), else the system's store."""
        return client_verify(self.ca_file) if self.ca_file else True


def _url(value: str, where: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise OperatorProfileError(f"{where}: an http:// or https:// URL, got {value!r}")
    return value.rstrip("/")


def _public_key(value: str, base: Path, where: str) -> bytes:
    path = (base / value).expanduser()
    if value.endswith(".pem") or path.is_file():
        try:
            key = load_pem_public_key(path.read_bytes())
        except (OSError, ValueError) as exc:
            raise OperatorProfileError(f"{where}: cannot read a PEM public key: {exc}") from None
        if not isinstance(key, Ed25519PublicKey):
            raise OperatorProfileError(f"{where}: {path} is not an Ed25519 public key")
        return key.public_bytes_raw()
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise OperatorProfileError(f"{where}: neither base64 nor a PEM file: {value!r}") from None
    if len(raw) != 32:
        raise OperatorProfileError(f"{where}: an Ed25519 key is 32 bytes, this is {len(raw)}")
    return raw


def _listen(value: str, where: str) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise OperatorProfileError(f"{where}: HOST:PORT with a port of 1-65535, got {value!r}")
    return host, int(port)


def load_operator_profile(path: Path, target: str | None = None) -> OperatorProfile:
    """The profile in ``path``; ``target`` (``operator:URL``) overrides the file's target.

    Relative paths inside the file are relative to the file's folder.
    """
    from mynahil.reference_impl.platform import (
        reachable_host,  # late: the plugin imports this module
    )

    file = validated(
        OperatorProfileFile, read_toml(path, OperatorProfileError), OperatorProfileError,
        source=str(path),
    )  # fmt: skip
    spec = (target or file.target).strip()
    if not spec.startswith("operator:"):
        raise OperatorProfileError(
            f"{path}: target: operator:URL, the base URL of the service's hooks, got {spec!r}"
        )
    url = _url(spec.removeprefix("operator:"), f"{path}: target")
    base = path.resolve().parent
    host, port = _listen(file.platform_listen.strip(), f"{path}: platform_listen")
    given = file.harness_dir.strip()
    harness_dir = Path(given) if given else mynahil_home() / "operator-harness" / file.operator_id
    ca_file = base / file.ca_file.strip() if file.ca_file.strip() else None
    if ca_file is not None and not ca_file.is_file():
        raise OperatorProfileError(f"{path}: ca_file: no file {ca_file}")
    return OperatorProfile(
        name=file.name,
        url=url,
        operator_id=file.operator_id,
        service_id=file.service_id,
        public_key=_public_key(file.public_key, base, f"{path}: public_key"),
        verify_url=_url(
            file.verify_url.strip() or f"{url}/v1/verify-account", f"{path}: verify_url"
        ),
        platform_host=host,
        platform_port=port,
        platform_url=_url(
            file.platform_url.strip() or f"http://{reachable_host(host)}:{port}",
            f"{path}: platform_url",
        ),
        harness_dir=(base / harness_dir.expanduser()),
        wait_s=file.wait_s,
        ca_file=ca_file,
        description=file.description.strip(),
    )
