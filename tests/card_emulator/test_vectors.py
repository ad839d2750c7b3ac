"""The APDU vectors (``tests/vectors/apdu/``): command sequences public clients send, with the
status words JPKI.md's public sources say a real card answers, in the replay format
(``mynahil.conformance.replay``). Each replays on a fresh emulated card; a card that answers one
status word otherwise is named at the first divergence."""

from __future__ import annotations

from pathlib import Path

import pytest

from mynahil.card_emulator import EmulatedCard
from mynahil.conformance.replay import replay_trace
from mynahil.conformance.targets import parse_target
from tests.support import CardFactory

VECTORS = Path(__file__).parents[1] / "vectors" / "apdu"
TRACES = sorted(VECTORS.glob("*.jsonl"))


def test_the_vectors_are_there() -> None:
    assert len(TRACES) >= 6, TRACES


@pytest.mark.parametrize("trace", TRACES, ids=[t.stem for t in TRACES])
def test_each_vector_replays_on_a_fresh_emulated_card(
    trace: Path, card_factory: CardFactory
) -> None:
    result = replay_trace(trace, EmulatedCard(card_factory()))
    assert result.divergence is None, result.divergence.describe()
    assert result.commands == sum(1 for line in trace.read_text().splitlines() if '"sw"' in line)


def test_a_card_that_answers_otherwise_diverges_where_it_differs() -> None:
    card = parse_target("card:defect:sw_63c0_after_lockout").emulated_card(faults="")
    result = replay_trace(VECTORS / "jpki-auth-pin-counter.jsonl", card)
    assert result.divergence is not None
    assert (result.divergence.recorded, result.divergence.emulated) == ("6984", "63c0")
