"""The demo's platform part: cards reserve MyKey IDs through the reference platform over HTTPS.

A real server (uvicorn on a loopback port, TLS with a throwaway CA made here) with its own
SQLite database and J-LIS; each story is what a cardholder lives through, told by the
cardholder client's own words.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import date
from pathlib import Path

import httpx

from mynahil.card_emulator import CardFile, CardState, PinSlot, emulated_reader, save_card
from mynahil.card_emulator.pin import DEFAULT_PASSWORD, DEFAULT_PIN
from mynahil.reference_impl.client import ClientRefusal, PlatformClient
from mynahil.reference_impl.jlis import lifecycle, random_holder
from mynahil.reference_impl.platform import build_platform, serving
from mynahil.reference_impl.staff import Role

from ..tls import client_verify, make_throwaway_pki

__all__ = ["platform_stories"]

Story = Callable[[str, str, str], None]
PIN, PASSWORD = DEFAULT_PIN, DEFAULT_PASSWORD


def _reserve(client: PlatformClient, path: Path, pin: str) -> str:
    """`mynahil client reserve` in miniature: the card file in a reader, the ID or the advice."""
    with CardFile(path) as stored:
        try:
            return client.reserve(emulated_reader(stored.state, stored), pin)
        except ClientRefusal as refusal:
            return f"refused: {refusal.code}"


def platform_stories(folder: Path, story: Story, progress: Callable[[str], None]) -> str:
    """Run the stories; returns the platform's database URL (for `mynahil audit verify`)."""
    db_url = f"sqlite:///{folder / 'platform.db'}"
    platform = build_platform(db_url, folder / "platform-jlis")
    rng = random.Random(7)
    jlis = platform.jlis

    def new_card(name: str) -> Path:
        state = lifecycle.issue(
            jlis.ca, jlis.registry, random_holder(rng), pin=PIN, password=PASSWORD,
            issued_on=date.today(),
        )  # fmt: skip
        path = folder / "cards" / f"{name}.json"
        save_card(state, path)
        return path

    def replace_state(path: Path, state: CardState) -> None:
        save_card(state, path)

    progress("platform stories: reservation, wrong PIN, lockout, renewal, reissue (HTTPS)")
    pki = make_throwaway_pki(folder / "tls")  # seed 004: traffic to the platform is encrypted
    try:
        with (
            serving(platform.app, tls=pki) as url,
            httpx.Client(base_url=url, timeout=10, verify=client_verify(pki.ca_file)) as http,
            httpx.Client(base_url=url, timeout=10, verify=True) as untrusting,
        ):
            client = PlatformClient(http)
            alice = new_card("alice")
            story(
                "The platform speaks HTTPS; a client without its CA refuses the certificate",
                "refused: platform_untrusted",
                _reserve(PlatformClient(untrusting), alice, PIN),
            )
            first = _reserve(client, alice, PIN)
            story(
                "Reservation gives an 8-character MyKey ID",
                "8 characters",
                f"{len(first)} characters",
            )
            story(
                "Reserving again with the same card gives the same ID",
                first,
                _reserve(client, alice, PIN),
            )
            story(
                "A wrong PIN is refused with the tries left",
                "refused: wrong_pin",
                _reserve(client, alice, "0000"),
            )
            for _ in range(2):
                _reserve(client, alice, "0000")
            story(
                "Three wrong PINs lock the card",
                "refused: pin_blocked",
                _reserve(client, alice, PIN),
            )
            with CardFile(alice) as stored:  # the municipal window
                stored.save(
                    stored.state.with_pin(PinSlot.AUTH, stored.state.pins[PinSlot.AUTH].unblocked())
                )
            story(
                "After the window unblocks the PIN, the same ID comes back",
                first,
                _reserve(client, alice, PIN),
            )
            renewed = lifecycle.renew(
                jlis.ca, jlis.registry, CardFile(alice, lock=False).state, on=date.today()
            )
            replace_state(alice, renewed)
            story("A renewed certificate keeps the MyKey ID", first, _reserve(client, alice, PIN))
            old = CardFile(alice, lock=False).state
            # The hotline suspends over HTTP with a staff credential (`mynahil staff add`).
            serials = lifecycle.card_serials(old).values()
            paths = [f"/v1/jlis/certificates/{serial}/suspension" for serial in serials]
            story(
                "Reporting a card lost needs a staff credential",
                "refused: 401",
                f"refused: {http.post(paths[0]).status_code}",
            )
            _member, token = platform.staff.add("Demo lost-card hotline", Role.JLIS_HOTLINE)
            for path in paths:
                http.post(path, headers={"Authorization": f"Bearer {token}"}).raise_for_status()
            story(
                "A card reported lost is refused",
                "refused: certificate_revoked",
                _reserve(client, alice, PIN),
            )
            new_path = folder / "cards" / "alice-reissued.json"
            save_card(
                lifecycle.reissue(
                    jlis.ca, jlis.registry, old, on=date.today(), pin=PIN, password=PASSWORD
                ),
                new_path,
            )
            story(
                "The reissued card gets the same MyKey ID", first, _reserve(client, new_path, PIN)
            )
            bob = new_card("bob")
            story(
                "Another holder gets another ID",
                "different",
                "different" if _reserve(client, bob, PIN) != first else "same",
            )
        count, problem = platform.store.verify_audit()
        story(
            "The audit chain of all this is intact",
            "intact",
            "intact" if problem is None and count else str(problem),
        )
    finally:
        platform.close()
    return db_url
