"""The operator signing contract's published test vectors (docs/operator-signing-vectors.json)
hold for this implementation: a vendor checks their code offline against the same file, so
any drift in the signed bytes, the encodings or the checks fails here first."""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from mynahil.reference_impl.points.errors import PointsError
from mynahil.reference_impl.points.signing import (
    MAX_SKEW,
    Signer,
    check_signature,
    public_key_bytes,
    string_to_sign,
)

VECTORS_FILE = Path(__file__).resolve().parents[3] / "docs" / "operator-signing-vectors.json"
VECTORS: list[dict[str, Any]] = json.loads(VECTORS_FILE.read_text(encoding="utf-8"))["vectors"]


def _key(vector: dict[str, Any]) -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(bytes.fromhex(vector["private_key_seed_hex"]))


def _at(vector: dict[str, Any]) -> datetime:
    return datetime.fromtimestamp(int(vector["timestamp"]), UTC)


def test_there_are_at_least_three_distinct_vectors() -> None:
    assert len(VECTORS) >= 3
    assert len({v["signature_base64"] for v in VECTORS}) == len(VECTORS)
    assert {v["method"] for v in VECTORS} >= {"GET", "POST"}
    assert any("?" in v["target"] for v in VECTORS), "a vector must cover a query string"
    assert any(v["body_base64"] == "" for v in VECTORS), "a vector must cover an empty body"


@pytest.mark.parametrize("vector", VECTORS, ids=[v["name"] for v in VECTORS])
def test_vector_matches_the_implementation(vector: dict[str, Any]) -> None:
    key = _key(vector)
    raw_public = public_key_bytes(key)
    assert base64.b64encode(raw_public).decode() == vector["public_key_base64"]
    assert raw_public.hex() == vector["public_key_hex"]

    body = base64.b64decode(vector["body_base64"])
    assert body == vector["body_utf8"].encode("utf-8")
    assert hashlib.sha256(body).hexdigest() == vector["body_sha256_hex"]

    signed = string_to_sign(
        vector["method"], vector["target"], vector["timestamp"], vector["nonce"], body
    )
    assert signed.hex() == vector["string_to_sign_hex"]
    assert signed == vector["string_to_sign"].encode("utf-8")

    headers = Signer(vector["signer"], key).headers(
        vector["method"], vector["target"], body, now=_at(vector), nonce=vector["nonce"]
    )
    assert headers == vector["headers"]
    assert headers["X-Mynahil-Signature"] == vector["signature_base64"]


@pytest.mark.parametrize("vector", VECTORS, ids=[v["name"] for v in VECTORS])
def test_vector_verifies_and_its_alterations_do_not(vector: dict[str, Any]) -> None:
    public = bytes.fromhex(vector["public_key_hex"])
    body = base64.b64decode(vector["body_base64"])
    method, target, headers = vector["method"], vector["target"], vector["headers"]
    now = _at(vector)

    accepted = check_signature(public, method, target, headers, body, now)
    assert (accepted.signer, accepted.nonce) == (vector["signer"], vector["nonce"])
    # The clock-skew window is inclusive at exactly MAX_SKEW either way.
    check_signature(public, method, target, headers, body, now + MAX_SKEW)
    check_signature(public, method, target, headers, body, now - MAX_SKEW)

    def refusal(**change: Any) -> str:
        args: dict[str, Any] = {
            "public_key": public,
            "method": method,
            "target": target,
            "headers": headers,
            "body": body,
            "now": now,
        }
        args.update(change)
        with pytest.raises(PointsError) as caught:
            check_signature(**args)
        return caught.value.code

    assert refusal(now=now + MAX_SKEW + timedelta(seconds=1)) == "request_stale"
    assert refusal(now=now - MAX_SKEW - timedelta(seconds=1)) == "request_stale"
    assert refusal(body=body + b" ") == "request_signature_invalid"
    assert refusal(target=target + "x") == "request_signature_invalid"
    other = "GET" if method != "GET" else "POST"
    assert refusal(method=other) == "request_signature_invalid"
    assert refusal(headers={**headers, "X-Mynahil-Nonce": "another-nonce"}) == (
        "request_signature_invalid"
    )
    assert refusal(public_key=bytes(32 - 1) + b"\x01") == "request_signature_invalid"


@pytest.mark.parametrize(
    "timestamp", ["+1767225600", "1_767_225_600", "1767225600.0", "\uff11\uff17\uff16\uff17", ""]
)
def test_a_timestamp_is_decimal_digits_only(timestamp: str) -> None:
    """Each of these is signed correctly, yet refused: the contract says digits only, so a
    Go or Java parser never has to guess what Python's int() would have accepted."""
    key = Ed25519PrivateKey.from_private_bytes(bytes(32))
    body = b"{}"
    nonce = "nonce-0001"
    signature = key.sign(string_to_sign("POST", "/x", timestamp, nonce, body))
    headers = {
        "X-Mynahil-Signer": "op",
        "X-Mynahil-Timestamp": timestamp,
        "X-Mynahil-Nonce": nonce,
        "X-Mynahil-Signature": base64.b64encode(signature).decode(),
    }
    with pytest.raises(PointsError) as caught:
        check_signature(
            public_key_bytes(key),
            "POST",
            "/x",
            headers,
            body,
            datetime.fromtimestamp(1767225600, UTC),
        )
    assert caught.value.code == "request_unsigned"
    assert "X-Mynahil-" in str(caught.value)


@pytest.mark.parametrize("nonce", ["short", "x" * 65, "nonce with space", "nonce-été-0001"])
def test_a_nonce_is_8_to_64_visible_ascii_characters(nonce: str) -> None:
    key = Ed25519PrivateKey.from_private_bytes(bytes(32))
    now = datetime.fromtimestamp(1767225600, UTC)
    headers = Signer("op", key).headers("POST", "/x", b"{}", now=now, nonce=nonce)
    with pytest.raises(PointsError) as caught:
        check_signature(public_key_bytes(key), "POST", "/x", headers, b"{}", now)
    assert caught.value.code == "request_unsigned"
    assert "X-Mynahil-Nonce" in str(caught.value)


def test_the_java_example_signs_the_report_vector() -> None:
    """docs/examples/SignVector.java hard-codes vector "report": its constants must stay the
    vector's (it was run once with OpenJDK 17 and printed the vector's signature)."""
    java = (VECTORS_FILE.parent / "examples" / "SignVector.java").read_text(encoding="utf-8")
    report = next(v for v in VECTORS if v["name"] == "report")
    body_literal = report["body_utf8"].replace('"', '\\"')
    for constant in (
        f'"{report["private_key_seed_hex"]}"',
        f'"{report["public_key_base64"]}"',
        f'"{body_literal}"',
        f'"{report["method"]}", "{report["target"]}"',
        f'"{report["timestamp"]}", "{report["nonce"]}"',
        '"\\n"',
    ):
        assert constant in java, constant
