"""The reference client reads the card-info and card-face APs and checks them against the J-LIS
root the platform publishes (issue 14)."""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import replace
from datetime import date
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from mynahil.card import Pin
from mynahil.card_emulator import CardState, emulated_reader
from mynahil.card_emulator.state import match_b_value
from mynahil.reference_impl.client import ClientRefusal, PlatformClient
from mynahil.reference_impl.jlis import JlisCA, KeyPool, lifecycle, random_holder, sign_card_data
from mynahil.reference_impl.platform import ReferencePlatform, build_platform
from tests.support import PASSWORD, PIN


@pytest.fixture
def platform(tmp_path: Path) -> Iterator[ReferencePlatform]:
    built = build_platform(f"sqlite:///{tmp_path / 'p.db'}", tmp_path / "jlis")
    yield built
    built.close()


@pytest.fixture
def client(platform: ReferencePlatform) -> Iterator[PlatformClient]:
    with TestClient(platform.app) as http:
        yield PlatformClient(http)


def issued(platform: ReferencePlatform, key_pool: KeyPool) -> CardState:
    return lifecycle.issue(
        platform.jlis.ca, platform.jlis.registry, random_holder(random.Random(5)),
        pin=PIN, password=PASSWORD, issued_on=date.today(), keys=key_pool,
    )  # fmt: skip


def test_holder_details_and_card_face_verified_against_the_platforms_root(
    platform: ReferencePlatform, client: PlatformClient, key_pool: KeyPool
) -> None:
    state = issued(platform, key_pool)
    info = client.read_holder_details(emulated_reader(state), PIN)
    assert info.my_number == state.holder.my_number
    assert info.basic.name == state.holder.name
    b = match_b_value(state.holder, state.card_expires, state.security_code)
    face = client.read_card_face(emulated_reader(state), b)
    assert face.entries.expiry == f"{state.card_expires:%Y%m%d}"
    assert face.my_number_file is None, "照合番号B does not open the My Number"


def test_data_signed_by_another_ca_is_refused(
    platform: ReferencePlatform, client: PlatformClient, key_pool: KeyPool
) -> None:
    state = issued(platform, key_pool)
    forged = replace(
        state,
        signed=sign_card_data(
            JlisCA.create(), state.holder, state.card_expires, state.security_code
        ),
    )
    with pytest.raises(ClientRefusal, match="valid J-LIS signature") as refused:
        client.read_holder_details(emulated_reader(forged), PIN)
    assert refused.value.code == "card_data_not_genuine"
    with pytest.raises(ClientRefusal) as wrong:
        client.read_holder_details(emulated_reader(state), "0000")
    assert wrong.value.code == "wrong_pin"
    info = client.read_holder_details(
        emulated_reader(state), state.holder.my_number, with_pin=Pin.CARD_INFO_A
    )
    assert info.basic.birth_date == f"{state.holder.birth_date:%Y%m%d}"
