"""File-ID enums format as the numbers they are: the conformance suite's assertion messages
(``f"EF {fid:04X} …"``) must show their reason, not crash with ValueError."""

from __future__ import annotations

import pytest

from mynahil.jpki import CardFaceFile, CardInfoFile, JpkiFile


@pytest.mark.parametrize("fid", [*JpkiFile, *CardInfoFile, *CardFaceFile], ids=repr)
def test_a_file_id_formats_as_hex(fid: int) -> None:
    assert f"{fid:04X}" == f"{int(fid):04X}"
    assert f"EF {fid:04x}" == f"EF {int(fid):04x}"


def test_plain_formatting_is_unchanged() -> None:
    assert f"{JpkiFile.AUTH_CERT}" == str(JpkiFile.AUTH_CERT)
    assert f"{JpkiFile.AUTH_CERT:04X}" == "000A"
