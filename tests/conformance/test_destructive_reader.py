"""Destructive certification through a reader (issue 20.8): ``pcsc:`` with
``--allow-destructive`` has one card, and the lockout test locks it. With a fresh-card hook each
destructive test gets a new card and a correct card is CERTIFIED; without one they run last, the
lockout last of all, and a defective card is still caught. Both through real pcscd and its vpcd
reader, the emulated card attached as a vicc client."""

from __future__ import annotations

import shlex
import socket
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from mynahil.card_emulator import EmulatedCard
from mynahil.card_emulator.vicc import ViccAttachment
from mynahil.conformance import load_catalogue
from mynahil.conformance.cli import run_target
from mynahil.conformance.defects import DefectiveCard
from mynahil.conformance.targets import CardSlot, parse_target
from tests.support import PASSWORD, PIN

pytestmark = pytest.mark.pcsc

READER = "pcsc:Virtual PCD 00 00"
CARD_IDS = {r.id for r in load_catalogue().values() if r.suite == "card"}
# the requirements with destructive tests (PIN counters, lockout, PIN change)
PIN_RULES = "PIN or SPEC-CARD-001 or CINFO-001"
# a small script a hook runs: ask the changer for a fresh card, exit 0 once it is in
_ASK = (
    "import socket, sys\n"
    "s = socket.socket(socket.AF_UNIX)\n"
    "s.connect(sys.argv[1])\n"
    "s.sendall(b'fresh')\n"
    "sys.exit(0 if s.recv(2) == b'ok' else 1)\n"
)


class CardChanger:
    """A lab's card robot in miniature: an emulated card in pcscd's virtual reader, swapped for a
    newly issued one whenever a client of its Unix socket asks."""

    def __init__(self, make_card: Callable[[], EmulatedCard], folder: Path) -> None:
        self.make_card = make_card
        self.slot = CardSlot(make_card())
        self.cards = 1
        self.path = folder / "changer.sock"
        self.server = socket.socket(socket.AF_UNIX)
        self.server.bind(str(self.path))
        self.server.listen()
        self.attachment = ViccAttachment(self.slot, "127.0.0.1", 35963)
        self.thread = threading.Thread(target=self._serve, daemon=True)

    @property
    def command(self) -> str:
        """What a vendor passes to --fresh-card: a script that returns once the card is in."""
        script = self.path.with_name("fresh-card.py")
        script.write_text(_ASK, encoding="utf-8")
        return shlex.join([sys.executable, str(script), str(self.path)])

    def _serve(self) -> None:
        while True:
            try:
                client, _ = self.server.accept()
            except OSError:
                return  # closed
            with client:
                if client.recv(5) == b"fresh":
                    self.slot.card = self.make_card()
                    self.cards += 1
                    client.sendall(b"ok")

    def __enter__(self) -> CardChanger:
        self.attachment.start()
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.close()
        self.attachment.stop()


@pytest.fixture
def issuer() -> Callable[[str | None], EmulatedCard]:
    target = parse_target("card:vpcd")

    def make(defect: str | None) -> EmulatedCard:
        card = target.emulated_card()
        assert isinstance(card, EmulatedCard)
        return DefectiveCard(card.state, defect) if defect else card

    return make


def test_a_correct_card_is_certified_destructively_with_a_fresh_card_each(
    tmp_path: Path, pcsc_stack: None, issuer: Callable[[str | None], EmulatedCard]
) -> None:
    with CardChanger(lambda: issuer(None), tmp_path) as changer:
        code, results = run_target(
            READER, tmp_path / "report", allow_destructive=True, fresh_card=changer.command,
            pin=PIN, sign_password=PASSWORD, card_info_pin=PIN,
        )  # fmt: skip
        cards = changer.cards
    failed = {k: v["failures"] for k, v in results["requirements"].items() if v["failures"]}
    assert code == 0, failed
    assert results["passed"] is True
    assert results["verdict_label"] == "CERTIFIED"
    assert results["destructive"] == "run"
    destructive = [n for n, t in results["tests"].items() if t["destructive"]]
    assert all(results["tests"][n]["outcome"] != "failed" for n in destructive)
    verdicts = {rid: results["requirements"][rid]["verdict"] for rid in CARD_IDS}
    for rid in ("JPKI-PIN-002", "JPKI-PIN-003", "JPKI-PIN-004", "JPKI-PIN-006", "SPEC-CARD-001"):
        assert verdicts[rid] == "passed", rid
    assert results["not_judged"] == []
    # one card to start with, then one per destructive test; the report says how they ran
    assert cards == 1 + len(destructive)
    assert f"({len(destructive)} cards)" in results["destructive_how"]
    assert changer.command in (tmp_path / "report" / "index.html").read_text(encoding="utf-8")
    assert list(results["tests"])[-1].endswith("test_third_wrong_pin_blocks_for_good")


def test_a_defective_card_is_still_caught_on_the_one_card(
    tmp_path: Path, pcsc_stack: None, issuer: Callable[[str | None], EmulatedCard]
) -> None:
    """Without a hook: destructive tests after the others, the lockout last; once the defect
    leaves a try spent, the destructive tests after it are skipped and named as not judged."""
    with CardChanger(lambda: issuer("no_reset_on_correct_pin"), tmp_path) as changer:
        code, results = run_target(
            READER, tmp_path / "report", allow_destructive=True, pin=PIN,
            sign_password=PASSWORD, card_info_pin=PIN, extra=["-k", PIN_RULES],
        )  # fmt: skip
        cards = changer.cards
    assert cards == 1
    assert code != 0
    verdicts = {k: v["verdict"] for k, v in results["requirements"].items()}
    assert verdicts["JPKI-PIN-002"] == "failed"
    tests = results["tests"]
    order = [n.split("::")[-1] for n in tests]  # the order they ran in
    assert order[-1] == "test_third_wrong_pin_blocks_for_good"
    first_destructive = next(i for i, n in enumerate(tests) if tests[n]["destructive"])
    assert all(t["destructive"] for t in list(tests.values())[first_destructive:])
    lockout = next(
        t for n, t in tests.items() if n.endswith("test_third_wrong_pin_blocks_for_good")
    )
    assert lockout["outcome"] == "skipped"
    assert "no longer fresh" in lockout["message"]
    assert "auth PIN: 2 of 3 tries" in lockout["message"]
    assert "JPKI-PIN-003" in results["not_judged"]
    assert "lockout last" in results["destructive_how"]
    assert "test_third_wrong_pin_blocks_for_good" in results["destructive_how"]
