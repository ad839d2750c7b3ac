"""The platform suite: the MyKey flows and their refusals, through the platform's HTTP API, as
a phone app or PC software would drive them (SPEC.md "The MyKey ID")."""

from __future__ import annotations

import base64
import random
from dataclasses import replace
from datetime import date, datetime, timedelta

import pytest
from cryptography import x509

from mynahil.card_emulator import CardState
from mynahil.conformance.operator_harness import EXTENDED_CAMPAIGN_ID
from mynahil.conformance.platform_harness import PIN, PlatformHarness
from mynahil.conformance.targets import EMULATED_PASSWORD
from mynahil.reference_impl.client import ClientRefusal, PlatformClient
from mynahil.reference_impl.jlis import JlisCA, KeyPool, issue_card, lifecycle, random_holder
from mynahil.reference_impl.mykey import ALPHABET
from mynahil.timezone import JST

PASSWORD = "Conformance-42"
NO_SERVICE = "a platform at a URL has no payment service the harness controls"


def _challenge(h: PlatformHarness, purpose: str) -> tuple[str, bytes]:
    answer = h.http.post("/v1/mykey/challenges", json={"purpose": purpose})
    assert answer.status_code == 201, answer.text
    body = answer.json()
    return body["challenge_id"], base64.b64decode(body["nonce"])


def _proof(challenge_id: str, certificate: bytes, signature: bytes) -> dict[str, str]:
    return {
        "challenge_id": challenge_id,
        "certificate": base64.b64encode(certificate).decode(),
        "signature": base64.b64encode(signature).decode(),
    }


def _problem(answer: object, code: str) -> None:
    import httpx

    assert isinstance(answer, httpx.Response)
    assert answer.headers["content-type"].startswith("application/problem+json"), answer.text
    body = answer.json()
    assert body["code"] == code, body
    assert body["status"] == answer.status_code


def _reserved(h: PlatformHarness) -> tuple[CardState, PlatformClient, str]:
    """A holder with a new card and its MyKey ID: the card, the client, the ID."""
    state = h.new_card()
    client = PlatformClient(h.http)
    return state, client, client.reserve(h.card_api(state), PIN)


@pytest.mark.requirement("SPEC-MYKEY-001")
def test_reservation_gives_the_card_one_id(platform_harness: PlatformHarness) -> None:
    h = platform_harness
    state, client, mykey_id = _reserved(h)
    assert len(mykey_id) == 8
    assert set(mykey_id) <= set(ALPHABET)
    assert client.reserve(h.card_api(state), PIN) == mykey_id
    assert client.reserve(h.card_api(h.new_card()), PIN) != mykey_id


@pytest.mark.requirement("SPEC-MYKEY-002", "SPEC-MYKEY-008")
def test_a_challenge_is_single_use(platform_harness: PlatformHarness) -> None:
    h = platform_harness
    card = h.card_api(h.new_card())
    challenge_id, nonce = _challenge(h, "issue")
    body = _proof(challenge_id, *card.authenticate(PIN, nonce))
    assert h.http.post("/v1/mykey/ids", json=body).status_code == 201
    _problem(h.http.post("/v1/mykey/ids", json=body), "challenge_used")


@pytest.mark.requirement("SPEC-MYKEY-003", "SPEC-MYKEY-008")
def test_a_login_challenge_cannot_issue(platform_harness: PlatformHarness) -> None:
    h = platform_harness
    card = h.card_api(h.new_card())
    challenge_id, nonce = _challenge(h, "login")
    body = _proof(challenge_id, *card.authenticate(PIN, nonce))
    _problem(h.http.post("/v1/mykey/ids", json=body), "challenge_foreign")


@pytest.mark.requirement("SPEC-MYKEY-004", "SPEC-MYKEY-008")
def test_possession_and_trust_are_checked(platform_harness: PlatformHarness) -> None:
    h = platform_harness
    card = h.card_api(h.new_card())
    challenge_id, _nonce = _challenge(h, "issue")
    certificate, signature = card.authenticate(PIN, b"some other nonce")
    _problem(h.http.post("/v1/mykey/ids", json=_proof(challenge_id, certificate, signature)),
             "signature_invalid")  # fmt: skip
    stranger = issue_card(
        JlisCA.create(), random_holder(random.Random(1)), pin=PIN,
        password=EMULATED_PASSWORD, issued_on=h.issued_on, keys=KeyPool.generate(1, seed=9),
    )  # fmt: skip
    challenge_id, nonce = _challenge(h, "issue")
    body = _proof(challenge_id, *h.card_api(stranger).authenticate(PIN, nonce))
    _problem(h.http.post("/v1/mykey/ids", json=body), "certificate_untrusted")


def _login_password(h: PlatformHarness, mykey_id: str, password: str) -> int:
    answer = h.http.post(
        "/v1/mykey/sessions/password", json={"mykey_id": mykey_id, "password": password}
    )
    return answer.status_code


@pytest.mark.requirement("SPEC-MYKEY-005")
def test_card_login_then_password_login(platform_harness: PlatformHarness) -> None:
    h = platform_harness
    state, client, mykey_id = _reserved(h)
    token = client.login(h.card_api(state), PIN)
    auth = {"Authorization": f"Bearer {token}"}
    assert h.http.put("/v1/mykey/me/password", json={"password": PASSWORD},
                      headers=auth).status_code == 204  # fmt: skip
    assert h.http.get("/v1/mykey/me", headers=auth).json()["mykey_id"] == mykey_id
    assert _login_password(h, mykey_id, PASSWORD) == 201
    assert _login_password(h, mykey_id, PASSWORD + "x") == 401


@pytest.mark.requirement("SPEC-MYKEY-006")
def test_a_changed_id_works_at_once_and_the_old_one_stops(
    platform_harness: PlatformHarness,
) -> None:
    h = platform_harness
    state, client, old = _reserved(h)
    auth = {"Authorization": f"Bearer {client.login(h.card_api(state), PIN)}"}
    h.http.put("/v1/mykey/me/password", json={"password": PASSWORD}, headers=auth)
    new = h.http.post("/v1/mykey/me/id", json={}, headers=auth).json()["mykey_id"]
    assert new != old
    assert _login_password(h, new, PASSWORD) == 201
    assert _login_password(h, old, PASSWORD) == 401


@pytest.mark.requirement("SPEC-MYKEY-007")
def test_revocation_is_final_and_the_card_can_start_again(
    platform_harness: PlatformHarness,
) -> None:
    h = platform_harness
    state, client, old = _reserved(h)
    auth = {"Authorization": f"Bearer {client.login(h.card_api(state), PIN)}"}
    assert h.http.delete("/v1/mykey/me", headers=auth).status_code == 204
    with pytest.raises(ClientRefusal):
        client.login(h.card_api(state), PIN)
    fresh = client.reserve(h.card_api(state), PIN)
    assert fresh != old


# --- forgotten credentials, a leaked ID, renewal and reissue (SPEC.md "The MyKey ID") ----------


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.mark.requirement("SPEC-MYKEY-009", "SPEC-MYKEY-008")
def test_a_forgotten_password_or_id_needs_the_card(platform_harness: PlatformHarness) -> None:
    h = platform_harness
    state, client, mykey_id = _reserved(h)
    card_session = _bearer(client.login(h.card_api(state), PIN))
    assert h.http.put("/v1/mykey/me/password", json={"password": PASSWORD},
                      headers=card_session).status_code == 204  # fmt: skip
    _problem(h.http.get("/v1/mykey/me"), "session_invalid")
    answer = h.http.post("/v1/mykey/sessions/password",
                         json={"mykey_id": mykey_id, "password": PASSWORD})  # fmt: skip
    password_session = _bearer(answer.json()["token"])
    _problem(h.http.get("/v1/mykey/me", headers=password_session), "card_login_required")
    _problem(h.http.put("/v1/mykey/me/password", json={"password": "Stolen-Reset-1"},
                        headers=password_session), "card_login_required")  # fmt: skip
    # Forgotten: a fresh card login shows the ID and resets the password.
    card_session = _bearer(client.login(h.card_api(state), PIN))
    assert h.http.get("/v1/mykey/me", headers=card_session).json()["mykey_id"] == mykey_id
    assert h.http.put("/v1/mykey/me/password", json={"password": PASSWORD + "-new"},
                      headers=card_session).status_code == 204  # fmt: skip
    assert _login_password(h, mykey_id, PASSWORD + "-new") == 201
    assert _login_password(h, mykey_id, PASSWORD) == 401


@pytest.mark.requirement("SPEC-MYKEY-010")
def test_a_changed_name_and_a_reissued_card_keep_the_id(
    platform_harness: PlatformHarness,
) -> None:
    h = platform_harness
    state, client, mykey_id = _reserved(h)
    married = replace(state, holder=replace(state.holder, name="Conformance Married-Name",
                                            address="Other Town 2-3-4"))  # fmt: skip
    renamed = lifecycle.renew(h.ca, h.registry, married, on=h.issued_on, keys=h.keys)
    assert client.reserve(h.card_api(renamed), PIN) == mykey_id
    lost_and_replaced = lifecycle.reissue(
        h.ca, h.registry, renamed, on=h.issued_on, pin=PIN, password=EMULATED_PASSWORD,
        keys=h.keys,
    )  # fmt: skip
    assert client.reserve(h.card_api(lost_and_replaced), PIN) == mykey_id
    with pytest.raises(ClientRefusal) as old_card:
        client.login(h.card_api(renamed), PIN)
    assert old_card.value.code == "certificate_revoked"


@pytest.mark.requirement("SPEC-MYKEY-010")
def test_a_reissued_card_keeps_the_chosen_service_and_the_points(
    platform_harness: PlatformHarness,
) -> None:
    h = platform_harness
    if not h.services:
        pytest.skip(NO_SERVICE)
    state, client, _mykey_id = _reserved(h)
    account = h.open_account("pay-a")
    choice = (account.service_id, account.account_id, account.security_code, h.campaign_id)
    chosen = client.apply(h.card_api(state), PIN, *choice)
    assert h.charge(account, 4000) == 1000  # 25%
    before = h.http.get("/v1/points/me", headers=_bearer(client.login(h.card_api(state), PIN)))
    reissued = lifecycle.reissue(
        h.ca, h.registry, state, on=h.issued_on, pin=PIN, password=EMULATED_PASSWORD,
        keys=h.keys,
    )  # fmt: skip
    after = h.http.get("/v1/points/me", headers=_bearer(client.login(h.card_api(reissued), PIN)))
    assert after.json() == before.json()
    assert sum(after.json()["points"].values()) == 1000
    again = client.apply(h.card_api(reissued), PIN, *choice)
    assert again["application_id"] == chosen["application_id"]


def _expired_card(h: PlatformHarness) -> CardState:
    """A card issued six years ago: its certificate ran out at the 5th birthday after that."""
    return lifecycle.issue(
        h.ca, h.registry, random_holder(random.Random(11)), pin=PIN, password=EMULATED_PASSWORD,
        issued_on=h.issued_on - timedelta(days=6 * 366), keys=h.keys,
    )  # fmt: skip


@pytest.mark.requirement("SPEC-MYKEY-011")
def test_an_expired_certificate_is_refused_and_renewal_keeps_the_id(
    platform_harness: PlatformHarness,
) -> None:
    h = platform_harness
    client = PlatformClient(h.http)
    expired = _expired_card(h)
    with pytest.raises(ClientRefusal) as refused:
        client.reserve(h.card_api(expired), PIN)
    assert refused.value.code == "certificate_expired"
    with pytest.raises(ClientRefusal) as refused:
        client.login(h.card_api(expired), PIN)
    assert refused.value.code == "certificate_expired"
    state = h.new_card()
    mykey_id = client.reserve(h.card_api(state), PIN)
    renewed = lifecycle.renew(h.ca, h.registry, state, on=h.issued_on, keys=h.keys)
    assert client.reserve(h.card_api(renewed), PIN) == mykey_id
    renewed_session = _bearer(client.login(h.card_api(renewed), PIN))
    assert h.http.get("/v1/mykey/me", headers=renewed_session).json()["mykey_id"] == mykey_id


@pytest.mark.requirement("SPEC-MYKEY-011")
def test_an_expired_certificate_cannot_apply_for_points(platform_harness: PlatformHarness) -> None:
    h = platform_harness
    if not h.services:
        pytest.skip(NO_SERVICE)
    account = h.open_account("pay-a")
    with pytest.raises(ClientRefusal) as refused:
        PlatformClient(h.http).apply(h.card_api(_expired_card(h)), PIN, account.service_id,
                                     account.account_id, account.security_code,
                                     h.campaign_id)  # fmt: skip
    assert refused.value.code == "certificate_expired"


@pytest.mark.requirement("SPEC-MYKEY-012")
def test_a_leaked_id_is_stopped_with_its_sessions(platform_harness: PlatformHarness) -> None:
    h = platform_harness
    state, client, leaked = _reserved(h)
    holder = _bearer(client.login(h.card_api(state), PIN))
    h.http.put("/v1/mykey/me/password", json={"password": PASSWORD}, headers=holder)
    thief = h.http.post("/v1/mykey/sessions/password",
                        json={"mykey_id": leaked, "password": PASSWORD})  # fmt: skip
    assert thief.status_code == 201
    thiefs_session = _bearer(thief.json()["token"])
    assert h.http.get("/v1/points/me", headers=thiefs_session).status_code == 200
    assert h.http.post("/v1/mykey/me/id", json={}, headers=holder).status_code == 200
    _problem(h.http.get("/v1/points/me", headers=thiefs_session), "session_invalid")
    assert _login_password(h, leaked, PASSWORD) == 401


# --- the payment service, chosen once (SPEC.md "The points") ---------------------------------


@pytest.mark.requirement("SPEC-POINTS-004")
def test_the_chosen_payment_service_never_changes(platform_harness: PlatformHarness) -> None:
    h = platform_harness
    if not h.services:
        pytest.skip(NO_SERVICE)
    state = h.new_card()
    client = PlatformClient(h.http)
    client.reserve(h.card_api(state), PIN)
    first, other = h.open_account("pay-a"), h.open_account("pay-b")
    chosen = client.apply(h.card_api(state), PIN, first.service_id, first.account_id,
                          first.security_code, h.campaign_id)  # fmt: skip
    again = client.apply(h.card_api(state), PIN, first.service_id, first.account_id,
                         first.security_code, h.campaign_id)  # fmt: skip
    assert again["application_id"] == chosen["application_id"]
    with pytest.raises(ClientRefusal) as changed:
        client.apply(h.card_api(state), PIN, other.service_id, other.account_id,
                     other.security_code, h.campaign_id)  # fmt: skip
    assert changed.value.code == "already_applied"
    points = h.http.get("/v1/points/me", headers=_bearer(client.login(h.card_api(state), PIN)))
    assert [a["service_id"] for a in points.json()["applications"]] == ["pay-a"]


# --- reports the platform refuses (SPEC.md "The points"; issue 13) ---------------------------


def _platform_now(h: PlatformHarness) -> datetime:
    return PlatformClient(h.http).business_time()


@pytest.mark.requirement("SPEC-SKEW-001")
def test_a_charge_dated_after_the_platforms_clock_is_refused(
    platform_harness: PlatformHarness,
) -> None:
    h = platform_harness
    if not h.services:
        pytest.skip(NO_SERVICE)
    state, client, _mykey_id = _reserved(h)
    account = h.open_account("pay-a")
    client.apply(h.card_api(state), PIN, account.service_id, account.account_id,
                 account.security_code, h.campaign_id)  # fmt: skip
    ahead = h.till(account, 4000, occurred_at=_platform_now(h) + timedelta(days=30))
    assert (ahead["outcome"], ahead["points"]) == ("future_dated", 0)
    assert h.till(account, 4000)["outcome"] == "granted"  # a charge made now still counts


NO_CLOCK = "the harness cannot move the clock of a platform at a URL"


@pytest.mark.requirement("SPEC-EXPIRED-001")
def test_no_points_while_the_certificate_is_expired_and_again_after_renewal(
    platform_harness: PlatformHarness,
) -> None:
    """Seed 004: while the certificate stays expired MyNa Point cannot be used (no application,
    no points); renewed at the window, the same MyKey ID earns again."""
    h = platform_harness
    if not h.services or h.clock is None:
        pytest.skip(NO_CLOCK if h.services else NO_SERVICE)
    today = _platform_now(h).astimezone(JST).date()
    tomorrow = today + timedelta(days=1)
    # Issued almost five years ago to someone whose birthday is tomorrow: the certificate
    # runs out at the end of tomorrow (its 5th birthday after issuance), the card later.
    state = h.new_card(born=date(1980, tomorrow.month, tomorrow.day),
                       issued_on=today - timedelta(days=4 * 365 + 300))  # fmt: skip
    client = PlatformClient(h.http)
    mykey_id = client.reserve(h.card_api(state), PIN)
    account = h.open_account("pay-a")
    client.apply(h.card_api(state), PIN, account.service_id, account.account_id,
                 account.security_code, h.campaign_id)  # fmt: skip
    assert h.till(account, 4000)["outcome"] == "granted"
    h.travel(timedelta(days=3))
    expired = h.till(account, 4000)
    assert (expired["outcome"], expired["points"]) == ("certificate_expired", 0)
    other = h.open_account("pay-b")
    with pytest.raises(ClientRefusal) as refused:
        client.apply(h.card_api(state), PIN, other.service_id, other.account_id,
                     other.security_code, h.campaign_id)  # fmt: skip
    assert refused.value.code == "certificate_expired"
    renewed = lifecycle.renew(h.ca, h.registry, state,
                              on=_platform_now(h).astimezone(JST).date(), keys=h.keys)  # fmt: skip
    assert client.reserve(h.card_api(renewed), PIN) == mykey_id  # the ID stays
    assert h.till(account, 4000)["outcome"] == "granted"


@pytest.mark.requirement("SPEC-EXPIRED-002")
def test_a_renewal_counts_before_the_renewed_card_is_presented(
    platform_harness: PlatformHarness,
) -> None:
    """Seed 004: renewed at the window, the holder can use MyNa Point again; nothing says they
    must first show the new card to the platform."""
    h = platform_harness
    if not h.services or h.clock is None:
        pytest.skip(NO_CLOCK if h.services else NO_SERVICE)
    today = _platform_now(h).astimezone(JST).date()
    tomorrow = today + timedelta(days=1)
    state = h.new_card(born=date(1980, tomorrow.month, tomorrow.day),
                       issued_on=today - timedelta(days=4 * 365 + 300))  # fmt: skip
    client = PlatformClient(h.http)
    client.reserve(h.card_api(state), PIN)
    account = h.open_account("pay-a")
    client.apply(h.card_api(state), PIN, account.service_id, account.account_id,
                 account.security_code, h.campaign_id)  # fmt: skip
    h.travel(timedelta(days=3))
    assert h.till(account, 4000)["outcome"] == "certificate_expired"
    lifecycle.renew(h.ca, h.registry, state,
                    on=_platform_now(h).astimezone(JST).date(), keys=h.keys)  # fmt: skip
    renewed = h.till(account, 4000)  # the renewed card has not been near the platform
    assert (renewed["outcome"], renewed["points"]) == ("granted", 1000)


# --- the person (issue 13) and the help desk (seed 004) ----------------------------------------


@pytest.mark.requirement("SPEC-PERSON-001")
def test_a_revoked_id_does_not_reset_the_persons_cap_or_choice(
    platform_harness: PlatformHarness,
) -> None:
    """Earn 5,000, revoke the MyKey ID, reserve a new one with the same card: no second choice
    of service, no second cap; the revoked ID's points stay unusable."""
    h = platform_harness
    if not h.services:
        pytest.skip(NO_SERVICE)
    state, client, first_id = _reserved(h)
    account = h.open_account("pay-a")
    client.apply(h.card_api(state), PIN, account.service_id, account.account_id,
                 account.security_code, h.campaign_id)  # fmt: skip
    assert h.charge(account, 20_000) == 5000
    assert h.http.delete("/v1/mykey/me", headers=_bearer(client.login(h.card_api(state), PIN))
                         ).status_code == 204  # fmt: skip
    new_id = client.reserve(h.card_api(state), PIN)
    assert new_id != first_id
    other = h.open_account("pay-b")
    with pytest.raises(ClientRefusal) as second_choice:
        client.apply(h.card_api(state), PIN, other.service_id, other.account_id,
                     other.security_code, h.campaign_id)  # fmt: skip
    assert second_choice.value.code == "already_applied"
    assert h.charge(account, 20_000) == 0  # the person's cap is spent
    mine = h.http.get("/v1/points/me", headers=_bearer(client.login(h.card_api(state), PIN)))
    assert mine.status_code == 200, mine.text
    assert sum(mine.json()["points"].values()) == 0  # the revoked ID's points stay unusable


@pytest.mark.requirement("SPEC-HELPDESK-001")
def test_the_help_desk_stops_a_leaked_id_and_restarts_it(
    platform_harness: PlatformHarness,
) -> None:
    h = platform_harness
    if h.helpdesk_token is None or not h.services:
        pytest.skip("a platform at a URL: the harness holds no help-desk credential")
    state, client, mykey_id = _reserved(h)
    account = h.open_account("pay-a")
    client.apply(h.card_api(state), PIN, account.service_id, account.account_id,
                 account.security_code, h.campaign_id)  # fmt: skip
    holder = _bearer(client.login(h.card_api(state), PIN))
    h.http.put("/v1/mykey/me/password", json={"password": PASSWORD}, headers=holder)
    desk = _bearer(h.helpdesk_token)
    stop = f"/v1/helpdesk/mykeys/{mykey_id}/stop"
    _problem(h.http.post(stop, json={"reason": "leak"}), "staff_unauthenticated")
    _problem(h.http.post(stop, json={}, headers=desk), "invalid_request")  # say why
    answer = h.http.post(stop, json={"reason": "holder reports a leak"}, headers=desk)
    assert answer.status_code == 200, answer.text
    assert answer.json()["status"] == "stopped"
    _problem(h.http.get("/v1/points/me", headers=holder), "session_invalid")
    with pytest.raises(ClientRefusal) as card_login:
        client.login(h.card_api(state), PIN)
    assert card_login.value.code == "mykey_id_stopped"
    _problem(h.http.post("/v1/mykey/sessions/password",
                         json={"mykey_id": mykey_id, "password": PASSWORD}),
             "mykey_id_stopped")  # fmt: skip
    stopped = h.till(account, 4000)
    assert (stopped["outcome"], stopped["points"]) == ("mykey_id_stopped", 0)
    restart = f"/v1/helpdesk/mykeys/{mykey_id}/restart"
    assert h.http.post(restart, json={"reason": "investigated"}, headers=desk).status_code == 200
    assert client.login(h.card_api(state), PIN)
    assert h.till(account, 4000)["outcome"] == "granted"


@pytest.mark.requirement("SPEC-EXTENSION-001")
def test_the_extension_goes_by_the_card_application_date(
    platform_harness: PlatformHarness,
) -> None:
    """Seed 003: holders who applied for their card by the date, including those whose card
    arrived later, may apply and earn in the extension; the certificate's issue date does not
    decide. (The harness's extended campaign: base window ended a week ago, extension for
    cards applied for by ten days ago.)"""
    h = platform_harness
    if not h.services:
        pytest.skip(NO_SERVICE)
    today = _platform_now(h).astimezone(JST).date()
    arrived_later = h.new_card(applied_on=today - timedelta(days=20),
                               issued_on=today - timedelta(days=5))  # fmt: skip
    too_late = h.new_card(applied_on=today - timedelta(days=8), issued_on=today - timedelta(days=5))
    client = PlatformClient(h.http)
    account = h.open_account("pay-a")
    client.reserve(h.card_api(arrived_later), PIN)
    client.apply(h.card_api(arrived_later), PIN, account.service_id, account.account_id,
                 account.security_code, EXTENDED_CAMPAIGN_ID)  # fmt: skip
    assert h.till(account, 4000)["outcome"] == "granted"
    late = h.open_account("pay-a")
    client.reserve(h.card_api(too_late), PIN)
    with pytest.raises(ClientRefusal) as refused:
        client.apply(h.card_api(too_late), PIN, late.service_id, late.account_id,
                     late.security_code, EXTENDED_CAMPAIGN_ID)  # fmt: skip
    assert refused.value.code == "campaign_closed"


@pytest.mark.requirement("SPEC-BONUS-001")
def test_a_bonus_is_paid_only_for_a_registration_the_registry_holds(
    platform_harness: PlatformHarness,
) -> None:
    """Round 2's bonuses are paid only when the registration exists: the platform asks the
    registry that holds it (here the health-insurance-use registry), not the holder."""
    h = platform_harness
    if h.window_token is None or not h.services:
        pytest.skip("a platform at a URL: the harness holds no municipal-window credential")
    state, client, _mykey_id = _reserved(h)
    account = h.open_account("pay-a")
    client.apply(h.card_api(state), PIN, account.service_id, account.account_id,
                 account.security_code, EXTENDED_CAMPAIGN_ID)  # fmt: skip
    with pytest.raises(ClientRefusal) as unregistered:
        client.claim_bonus(h.card_api(state), PIN, EXTENDED_CAMPAIGN_ID, "health_insurance")
    assert unregistered.value.code == "registration_missing"
    assert state.auth is not None
    serial = x509.load_der_x509_certificate(state.auth.certificate).serial_number
    registered = h.http.post(
        "/v1/registries/health-insurance/registrations",
        json={"certificate_serial": str(serial),
              "registered_on": _platform_now(h).astimezone(JST).date().isoformat()},
        headers=_bearer(h.window_token),
    )  # fmt: skip
    assert registered.status_code == 201, registered.text
    paid = client.claim_bonus(h.card_api(state), PIN, EXTENDED_CAMPAIGN_ID, "health_insurance")
    assert paid["points"] == 7500
