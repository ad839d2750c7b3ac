"""`mynahil serve --registries URL`: the health-insurance and public-fund registries run as a
service of their own (here a second server, over TLS with a CA made for the test), and the
platform asks them, not the books beside its J-LIS, when a bonus is claimed."""

from __future__ import annotations

import random
from datetime import date
from pathlib import Path

import pytest
from cryptography import x509

from mynahil.card_emulator import emulated_reader
from mynahil.reference_impl.client import ClientRefusal, PlatformClient
from mynahil.reference_impl.jlis import KeyPool, lifecycle, random_holder
from mynahil.reference_impl.platform import build_platform, remote_registries, serving
from mynahil.reference_impl.points import RegistryUnreachable
from mynahil.reference_impl.registries import RegistryKind
from mynahil.reference_impl.sandbox import sample_operator
from mynahil.tls import CA_FILE_ENV, client_verify, make_throwaway_pki
from tests.support import MYNAHIL, PASSWORD, PIN, free_port, running

HEALTH = RegistryKind.HEALTH_INSURANCE


@pytest.mark.slow
def test_serve_asks_registries_served_elsewhere_over_tls(
    tmp_path: Path, key_pool: KeyPool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(CA_FILE_ENV, raising=False)
    jlis, db = tmp_path / "jlis", f"sqlite:///{tmp_path / 'platform.db'}"
    # The platform's database and J-LIS, prepared as `card new` does; the sample operator is
    # registered in that database (as `operator register` does) before `serve` starts on it.
    setup = build_platform(db, jlis)
    try:
        state = lifecycle.issue(
            setup.jlis.ca, setup.jlis.registry, random_holder(random.Random(7)), pin=PIN,
            password=PASSWORD, issued_on=date(2022, 6, 1), keys=key_pool,
        )  # fmt: skip
        assert state.auth is not None
        serial = x509.load_der_x509_certificate(state.auth.certificate).serial_number
        facts = setup.jlis.holder_facts(serial)
        assert facts is not None

        # The registries' own server: its books only, in another folder, over HTTPS.
        pki = make_throwaway_pki(tmp_path / "tls")
        registries = build_platform(
            f"sqlite:///{tmp_path / 'registries.db'}", tmp_path / "elsewhere"
        )
        registries.registries[HEALTH].register(facts.person_ref, date(2021, 12, 1))
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        serve = [*MYNAHIL, "serve", "--db", db, "--ca", str(jlis), "--port", str(port),
                 "--as-of", "2022-07-01", "--ca-file", str(pki.ca_file)]  # fmt: skip
        with (
            serving(registries.app, tls=pki) as registries_url,
            sample_operator(
                setup,
                url,
                operator_id="qr-inc",
                operator_name="QR Inc.",
                service_id="qr-pay",
                service_name="QR Pay",
            ) as operator,
            running([*serve, "--registries", registries_url], f"{url}/v1/health"),
        ):
            card = emulated_reader(state)
            client = PlatformClient.connect(url)
            client.reserve(card, PIN)
            account = operator.books.open_account("Hanako")
            client.apply(card, PIN, "qr-pay", account.account_id, account.security_code, "round2")
            # Only the other server's book has the registration: the platform asked it.
            granted = client.claim_bonus(card, PIN, "round2", "health_insurance")
            assert (granted["points"], granted["account_id"]) == (7500, account.account_id)
            with pytest.raises(ClientRefusal) as missing:  # its 404, over the same wire
                client.claim_bonus(card, PIN, "round2", "public_fund_account")
            assert missing.value.code == "registration_missing"
            # The same setting trusting another CA: the registries' certificate does not verify.
            other = make_throwaway_pki(tmp_path / "other")
            untrusting = remote_registries(registries_url, client_verify(other.ca_file))
            assert untrusting is not None
            with pytest.raises(RegistryUnreachable, match="did not verify"):
                untrusting.registered_on(HEALTH.value, facts.person_ref)
        registries.close()
    finally:
        setup.close()
