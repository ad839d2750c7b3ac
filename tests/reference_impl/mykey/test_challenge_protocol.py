"""The challenge protocol as a property: replayed, expired and foreign challenges are refused.

Any sequence of challenges asked for one purpose, answered for another, late, or twice, gets
exactly the answer a small model predicts; only a fresh, unused challenge of the right
purpose, signed by the card, issues.
"""

from __future__ import annotations

from datetime import timedelta

import hypothesis.strategies as st
from hypothesis import HealthCheck, given, settings

from mynahil.reference_impl.jlis import JlisCA, KeyPool
from mynahil.reference_impl.mykey import MyKeyError, Purpose
from mynahil.reference_impl.store import SqlStore
from tests.reference_impl.mykey.platform import Platform
from tests.support import examples

steps = st.lists(
    st.tuples(
        st.sampled_from(list(Purpose)),  # what the challenge was asked for
        st.sampled_from([Purpose.ISSUE, Purpose.LOGIN]),  # what it is used for
        st.sampled_from([0, 60, 119, 121, 600]),  # seconds before the answer comes
        st.integers(1, 3),  # how many times the same answer is sent
        st.booleans(),  # signed by the card (or garbage)
    ),
    min_size=1,
    max_size=6,
)


@settings(
    max_examples=examples(30),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(plan=steps)
def test_only_fresh_right_purpose_signed_challenges_pass(
    jlis_ca: JlisCA, key_pool: KeyPool, plan: list[tuple[Purpose, Purpose, int, int, bool]]
) -> None:
    with SqlStore.open("sqlite://") as store:
        platform = Platform(store, jlis_ca, key_pool)
        holder = platform.new_card()
        has_id = False
        ttl = platform.service.policy.challenge_ttl
        for asked, used, delay, times, signed in plan:
            challenge, certificate, signature = platform.prove(holder, asked)
            if not signed:
                signature = bytes(256)
            platform.clock.advance(timedelta(seconds=delay))
            for attempt in range(times):
                if attempt > 0:
                    expected = "challenge_used"
                elif asked is not used:
                    expected = "challenge_foreign"
                elif timedelta(seconds=delay) >= ttl:
                    expected = "challenge_expired"
                elif not signed:
                    expected = "signature_invalid"
                elif used is Purpose.LOGIN and not has_id:
                    expected = "mykey_not_found"
                else:
                    expected = "ok"
                try:
                    if used is Purpose.ISSUE:
                        platform.service.issue(challenge.challenge_id, certificate, signature)
                        has_id = True
                    else:
                        platform.service.login_with_card(
                            challenge.challenge_id, certificate, signature
                        )
                    outcome = "ok"
                except MyKeyError as exc:
                    outcome = exc.code
                assert outcome == expected, (asked, used, delay, attempt, signed)
        _count, problem = store.verify_audit()
        assert problem is None
