"""The cardholder client: what the phone app and the PC software do.

It talks to the card through the Card API (any transport) and to the platform over HTTP,
and turns every failure into advice a person can act on.
"""

from __future__ import annotations

import base64
import ssl
from dataclasses import dataclass
from datetime import datetime
from types import TracebackType
from typing import Any

import httpx
from cryptography import x509

from mynahil.card import CardFace, CardInfo, MyNumberCard, NoCertificate, Pin, PinBlocked, WrongPin
from mynahil.card_emulator.pin import AUTH_PIN
from mynahil.carddata import CardDataInvalid
from mynahil.tls import client_verify, tls_failure
from mynahil.transports import CardRemovedError, TransportError

__all__ = ["ClientRefusal", "PlatformClient", "advice_for"]

_ADVICE = {
    "certificate_expired": "Your card's certificate has expired. Renew it at your municipal window "
    "(it is free); your MyKey ID and points stay.",
    "certificate_revoked": "This card's certificate is suspended (reported lost?). Contact your "
    "municipal window or the card hotline.",
    "certificate_untrusted": "The platform does not trust this card's certificate.",
    "mykey_not_found": "This card has no MyKey ID yet. Reserve one first.",
    "mykey_id_taken": "That MyKey ID is taken. Choose another.",
    "account_taken": "That payment service ID belongs to someone else's MyKey ID. Enter the ID "
    "shown in your own payment app.",
    "account_not_verified": "The payment service did not recognise that payment service ID and "
    "security code. Check both in the service's app.",
    "already_applied": "You already chose a payment service for this campaign; it cannot be "
    "changed.",
}


class ClientRefusal(Exception):
    """Something the person must act on; ``code`` is stable, the message is the advice."""

    def __init__(self, code: str, advice: str) -> None:
        super().__init__(advice)
        self.code = code


def advice_for(exc: Exception) -> ClientRefusal:
    """Card-side failures in the person's words."""
    if isinstance(exc, WrongPin):
        return ClientRefusal(
            "wrong_pin",
            f"Wrong PIN: {exc.tries_left} {'try' if exc.tries_left == 1 else 'tries'} left. "
            "After three wrong PINs in a row the card locks.",
        )
    if isinstance(exc, PinBlocked):
        return ClientRefusal(
            "pin_blocked",
            "The card's PIN is locked after three wrong entries. Only your municipal window can "
            "reset it: bring the card and an ID.",
        )
    if isinstance(exc, NoCertificate):
        return ClientRefusal(
            "no_certificate",
            "This card holds no electronic certificate. Your municipal window can issue one.",
        )
    if isinstance(exc, CardRemovedError):
        return ClientRefusal(
            "card_removed",
            "The card left the reader. Keep the phone still on the card (no case, not on a metal "
            "table) until it finishes, then try again.",
        )
    if isinstance(exc, TransportError):
        return ClientRefusal("reader_error", f"Could not talk to the card: {exc}")
    raise exc


@dataclass
class PlatformClient:
    """The platform's HTTP API, seen from the holder's device."""

    http: httpx.Client

    @classmethod
    def connect(
        cls, base_url: str, timeout: float = 10.0, verify: ssl.SSLContext | bool | None = None
    ) -> PlatformClient:
        """``verify`` checks an https platform's certificate (default: ``client_verify()``:
        ``$MYNAHIL_CA_FILE``, else the system's trust store)."""
        trust = client_verify() if verify is None else verify
        return cls(httpx.Client(base_url=base_url.rstrip("/"), timeout=timeout, verify=trust))

    def __enter__(self) -> PlatformClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.http.close()

    def business_time(self) -> datetime:
        """The platform's business time (``serve --as-of`` replays a campaign), from
        ``/v1/health``. httpx.HTTPError when the platform does not answer (or its certificate
        does not verify), ValueError when the answer tells no time."""
        response = self.http.get("/v1/health")
        response.raise_for_status()
        try:
            return datetime.fromisoformat(str(response.json()["time"]))
        except (KeyError, TypeError) as exc:
            raise ValueError(f"/v1/health tells no time: {response.text[:200]}") from exc

    def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        try:
            response = self.http.post(path, json=body)
        except httpx.HTTPError as exc:
            failure = tls_failure(exc)
            if failure is not None:
                raise ClientRefusal(
                    "platform_untrusted",
                    f"Refusing the platform at {self.http.base_url}: {failure}",
                ) from None
            raise ClientRefusal(
                "platform_unreachable", f"Cannot reach the platform: {exc}"
            ) from None
        data: dict[str, Any] = response.json() if response.content else {}
        if response.is_error:
            code = str(data.get("code", f"http_{response.status_code}"))
            raise ClientRefusal(code, _ADVICE.get(code, str(data.get("detail", response.text))))
        return data

    def _proof(self, card: MyNumberCard, pin: str, purpose: str) -> dict[str, str]:
        problem = AUTH_PIN.problem(pin)
        if problem is not None:  # before anything reaches the card: a wrong try costs a try
            raise ClientRefusal(
                "malformed_pin", f"Not a PIN: {problem}. Nothing was sent to the card."
            )
        challenge = self._post("/v1/mykey/challenges", {"purpose": purpose})
        nonce = base64.b64decode(challenge["nonce"])
        try:
            certificate, signature = card.authenticate(pin, nonce)
        except Exception as exc:  # card-side failures become advice; anything else re-raises
            raise advice_for(exc) from exc
        return {
            "challenge_id": challenge["challenge_id"],
            "certificate": base64.b64encode(certificate).decode(),
            "signature": base64.b64encode(signature).decode(),
        }

    def reserve(self, card: MyNumberCard, pin: str, chosen_id: str | None = None) -> str:
        """Reservation (予約): the card's MyKey ID, issued now or already held."""
        body: dict[str, Any] = self._proof(card, pin, "issue")
        if chosen_id:
            body["chosen_id"] = chosen_id
        return str(self._post("/v1/mykey/ids", body)["mykey_id"])

    def apply(
        self,
        card: MyNumberCard,
        pin: str,
        service_id: str,
        account_id: str,
        security_code: str,
        campaign_id: str | None = None,
    ) -> dict[str, Any]:
        """Application (申込): choose the payment service, with the card; the application."""
        body: dict[str, Any] = self._proof(card, pin, "login")
        body.update(service_id=service_id, account_id=account_id, security_code=security_code)
        if campaign_id:
            body["campaign_id"] = campaign_id
        return self._post("/v1/points/applications", body)

    def claim_bonus(
        self, card: MyNumberCard, pin: str, campaign_id: str, kind: str
    ) -> dict[str, Any]:
        """A registration bonus (round 2), with the card; the ledger entry's summary."""
        body: dict[str, Any] = self._proof(card, pin, "login")
        body.update(campaign_id=campaign_id, kind=kind)
        return self._post("/v1/points/bonuses", body)

    def login(self, card: MyNumberCard, pin: str) -> str:
        """A card login; returns the session token."""
        return str(self._post("/v1/mykey/sessions/card", self._proof(card, pin, "login"))["token"])

    def jlis_root(self) -> x509.Certificate:
        """The J-LIS root the platform publishes (``GET /v1/jlis/ca/auth``); it certifies the
        key that signs the card-info and card-face data."""
        try:
            response = self.http.get("/v1/jlis/ca/auth")
            response.raise_for_status()
            return x509.load_der_x509_certificate(response.content)
        except (httpx.HTTPError, ValueError) as exc:
            raise ClientRefusal(
                "platform_unreachable", f"Cannot get the J-LIS root from the platform: {exc}"
            ) from None

    def read_holder_details(
        self, card: MyNumberCard, pin: str, *, with_pin: Pin = Pin.CARD_INFO
    ) -> CardInfo:
        """What a form-filling app does with the card-info AP (券面事項入力補助): the My Number
        and the four basic facts, checked against the J-LIS signature before they are used."""
        root = self.jlis_root()
        try:
            info = card.read_card_info(pin, with_pin=with_pin, signed=True)
            info.verify(root)
        except CardDataInvalid as exc:
            raise ClientRefusal(
                "card_data_not_genuine",
                f"The card's data does not carry a valid J-LIS signature ({exc}). Do not use it; "
                "the card may be forged or damaged.",
            ) from None
        except Exception as exc:
            raise advice_for(exc) from exc
        return info

    def read_card_face(
        self, card: MyNumberCard, value: str, *, with_pin: Pin = Pin.FACE_B
    ) -> CardFace:
        """What an identity-check app does with the card face: the images and dates, opened
        with 照合番号B (default) or A, checked against the J-LIS signatures."""
        root = self.jlis_root()
        try:
            face = card.read_card_face(value, with_pin=with_pin)
            face.verify(root)
        except CardDataInvalid as exc:
            raise ClientRefusal(
                "card_data_not_genuine",
                f"The card face does not carry a valid J-LIS signature ({exc}).",
            ) from None
        except Exception as exc:
            raise advice_for(exc) from exc
        return face
