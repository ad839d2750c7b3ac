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
from typing import Final
from urllib.parse import urlsplit

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from mynahil.files import read_toml
from mynahil.tls import client_verify

__all__ = ["OperatorProfile", "OperatorProfileError", "load_operator_profile"]

DEFAULT_LISTEN: Final = "127.0.0.1:8700"
_FIELDS: Final = {
    "name": "the service's name, as the report shows it",
    "target": "operator:URL, the base URL of the service's conformance hooks",
    "operator_id": "the operator ID the service signs its reports with",
    "service_id": "the payment service ID holders choose",
    "public_key": "the service's Ed25519 public key: base64 of its 32 raw bytes, or a PEM file",
    "verify_url": "where the platform verifies accounts (default: URL/v1/verify-account)",
    "platform_listen": f"HOST:PORT the harness's platform listens on (default {DEFAULT_LISTEN})",
    "platform_url": "the platform's URL as the service reaches it (default http://LISTEN)",
    "harness_dir": "folder keeping the harness's platform key between runs",
    "wait_s": "seconds to wait for a report or a credit to arrive (default 10)",
    "ca_file": "a CA bundle (PEM) for an https service with a private CA",
    "description": "free text",
}


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
    from reference_impl.platform import reachable_host  # late: the plugin imports this module

    data = read_toml(path, OperatorProfileError)
    unknown = sorted(set(data) - set(_FIELDS))
    if unknown:
        raise OperatorProfileError(
            f"{path}: {unknown[0]}: unknown field (known: {', '.join(_FIELDS)})"
        )
    text: dict[str, str] = {}
    for key, value in data.items():
        if key != "wait_s" and not isinstance(value, str):
            raise OperatorProfileError(f"{path}: {key}: {_FIELDS[key]}, got {value!r}")
        if isinstance(value, str):
            text[key] = value.strip()
    for key in ("name", "operator_id", "service_id", "public_key"):
        if not text.get(key):
            raise OperatorProfileError(f"{path}: {key}: {_FIELDS[key]} is needed")
    spec = target or text.get("target", "")
    if not spec.startswith("operator:"):
        raise OperatorProfileError(f"{path}: target: {_FIELDS['target']}, got {spec!r}")
    url = _url(spec.removeprefix("operator:"), f"{path}: target")
    base = path.resolve().parent
    host, port = _listen(text.get("platform_listen", DEFAULT_LISTEN), f"{path}: platform_listen")
    wait = data.get("wait_s", 10)
    if isinstance(wait, bool) or not isinstance(wait, int | float) or not 0 < wait <= 600:
        raise OperatorProfileError(f"{path}: wait_s: seconds, more than 0 and at most 600")
    harness_dir = Path(
        text.get("harness_dir") or f"~/.mynahil/operator-harness/{text['operator_id']}"
    )
    ca_file = base / text["ca_file"] if text.get("ca_file") else None
    if ca_file is not None and not ca_file.is_file():
        raise OperatorProfileError(f"{path}: ca_file: no file {ca_file}")
    return OperatorProfile(
        name=text["name"],
        url=url,
        operator_id=text["operator_id"],
        service_id=text["service_id"],
        public_key=_public_key(text["public_key"], base, f"{path}: public_key"),
        verify_url=_url(
            text.get("verify_url") or f"{url}/v1/verify-account", f"{path}: verify_url"
        ),
        platform_host=host,
        platform_port=port,
        platform_url=_url(
            text.get("platform_url") or f"http://{reachable_host(host)}:{port}",
            f"{path}: platform_url",
        ),
        harness_dir=(base / harness_dir.expanduser()),
        wait_s=float(wait),
        ca_file=ca_file,
        description=text.get("description", ""),
    )
