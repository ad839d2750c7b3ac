"""Secrets and personal data never reach the logs or the audit log (threat model T-LOG).

The whole holder and operator path runs over HTTP with every logger at DEBUG; afterwards no
log line, audit record or stored value contains the page password, a session token, the
security code, the card's My Number or its PIN.
"""

from __future__ import annotations

import logging
import random
import re
from datetime import date
from pathlib import Path

import httpx
import pytest

from mynahil.card_emulator import emulated_reader
from mynahil.reference_impl.client import PlatformClient
from mynahil.reference_impl.jlis import KeyPool, lifecycle, random_holder
from mynahil.reference_impl.operator.books import Account
from mynahil.reference_impl.platform import build_platform, serving
from mynahil.reference_impl.sandbox import sample_operator
from tests.reference_impl.points.test_http import AS_OF

PASSWORD = "Unmistakable-Pw-8812"
CODE = "SEC-CODE-55501"


def test_no_secret_in_any_log_or_record(
    tmp_path: Path, key_pool: KeyPool, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    platform = build_platform(f"sqlite:///{tmp_path / 'p.db'}", tmp_path / "jlis", as_of=AS_OF)
    state = lifecycle.issue(
        platform.jlis.ca, platform.jlis.registry, random_holder(random.Random(4)), pin="1234",
        password="ABC123", issued_on=date(2020, 7, 1), keys=key_pool,
    )  # fmt: skip
    with (
        serving(platform.app) as url,
        sample_operator(
            platform, url, operator_id="op", operator_name="Op", service_id="pay",
            service_name="Pay",
        ) as operator,
        httpx.Client(base_url=url) as http,
    ):  # fmt: skip
        # The security code the platform's signed verify call carries to the operator's app.
        operator.books.accounts["acct-1"] = Account("acct-1", CODE, "Hanako")
        client = PlatformClient(http)
        mykey_id = client.reserve(emulated_reader(state), "1234")
        token = client.login(emulated_reader(state), "1234")
        auth = {"Authorization": f"Bearer {token}"}
        assert http.put("/v1/mykey/me/password", json={"password": PASSWORD},
                        headers=auth).status_code == 204  # fmt: skip
        wrong = http.post("/v1/mykey/sessions/password",
                          json={"mykey_id": mykey_id, "password": PASSWORD + "x"})  # fmt: skip
        assert wrong.status_code == 401
        client.apply(emulated_reader(state), "1234", "pay", "acct-1", CODE)
    audit = "\n".join(str(r) for r in platform.store.audit_records())
    from sqlalchemy import select

    from mynahil.reference_impl.store import metadata

    with platform.store.engine.connect() as connection:
        stored = "\n".join(
            " ".join(str(v) for v in row)
            for table in metadata.sorted_tables
            for row in connection.execute(select(table))
        )
    platform.close()
    assert len(caplog.records) > 5  # the check below looks at real log output
    for secret in (PASSWORD, token, CODE, state.holder.my_number):
        assert secret not in caplog.text
        assert secret not in audit
        assert secret not in stored
    # The PIN as a value of its own: "1234" may occur by chance inside a hash or a serial's
    # 40-odd digits (seen), which is no leak.
    assert not re.search(r"(?<![0-9A-Za-z])1234(?![0-9A-Za-z])", audit)
