"""The emulated registries beside J-LIS: one book per kind, keyed by the person reference,
kept durably in the J-LIS folder and shared between processes."""

from __future__ import annotations

import json
import threading
from datetime import date
from pathlib import Path

import pytest

from mynahil.reference_impl.gateways import LocalRegistries
from mynahil.reference_impl.registries import (
    Registration,
    RegistrationBook,
    RegistrationFileError,
    RegistryKind,
    open_registries,
)

HEALTH = RegistryKind.HEALTH_INSURANCE
FUND = RegistryKind.PUBLIC_FUND_ACCOUNT


def test_kinds_have_slugs_for_urls_and_the_command_line() -> None:
    assert [k.slug for k in RegistryKind] == ["health-insurance", "public-fund"]
    assert RegistryKind.from_slug("public-fund") is FUND
    with pytest.raises(ValueError, match="health-insurance, public-fund"):
        RegistryKind.from_slug("tax")


def test_a_registration_is_made_once_and_keeps_its_first_day(tmp_path: Path) -> None:
    book = RegistrationBook(HEALTH, tmp_path)
    assert book.registration("p1") is None
    assert book.register("p1", date(2022, 7, 1)) == Registration(HEALTH, "p1", date(2022, 7, 1))
    assert book.register("p1", date(2023, 1, 1)).registered_on == date(2022, 7, 1)
    again = RegistrationBook(HEALTH, tmp_path)  # a restart, or another process
    assert again.registration("p1") == Registration(HEALTH, "p1", date(2022, 7, 1))
    assert RegistrationBook(FUND, tmp_path).registration("p1") is None  # its own book
    body = json.loads((tmp_path / "registries" / "health-insurance.json").read_text())
    assert body["registrations"] == [{"person_ref": "p1", "registered_on": "2022-07-01"}]


def test_two_books_on_one_file_do_not_lose_registrations(tmp_path: Path) -> None:
    books = [RegistrationBook(FUND, tmp_path), RegistrationBook(FUND, tmp_path)]

    def register(book: RegistrationBook, start: int) -> None:
        for n in range(start, 40, 2):
            book.register(f"p{n}", date(2022, 7, 1))

    threads = [threading.Thread(target=register, args=(books[i], i)) for i in (0, 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(RegistrationBook(FUND, tmp_path).registrations()) == 40


def test_bad_person_refs_and_files_are_named(tmp_path: Path) -> None:
    book = RegistrationBook(HEALTH, tmp_path)
    with pytest.raises(ValueError, match="person_ref"):
        book.register("../etc", date(2022, 7, 1))
    path = tmp_path / "registries" / "health-insurance.json"
    path.parent.mkdir()
    path.write_text('{"format": "mynahil-registrations/1", "kind": "public_fund_account"}')
    with pytest.raises(RegistrationFileError, match=r"health-insurance\.json"):
        book.registration("p1")


def test_the_platform_port_answers_by_bonus_kind() -> None:
    books = open_registries(None)
    books[HEALTH].register("p1", date(2022, 7, 1))
    port = LocalRegistries(books)
    assert port.registered_on("health_insurance", "p1") == date(2022, 7, 1)
    assert port.registered_on("public_fund_account", "p1") is None
    assert port.registered_on("tax_refund", "p1") is None  # no registry holds that kind
