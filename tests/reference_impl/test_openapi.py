"""The regeneration command writes docs/openapi.json exactly as it is checked in."""

from __future__ import annotations

from pathlib import Path

from mynahil.reference_impl.openapi import openapi_document

OPENAPI = Path(__file__).resolve().parents[2] / "docs" / "openapi.json"


def test_the_printed_document_is_the_checked_in_file_byte_for_byte() -> None:
    assert openapi_document() + "\n" == OPENAPI.read_text(encoding="utf-8")
