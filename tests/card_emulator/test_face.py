"""The card face's photo: rendered once, then read from the cache folder by every process."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image

from mynahil.card_emulator import face


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("MYNAHIL_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache" / "face-photos"


def kept(cache: Path) -> list[Path]:
    return sorted(cache.glob("*.jp2")) if cache.is_dir() else []


def test_a_photo_is_rendered_once_and_then_read_back(cache: Path) -> None:
    drawn = face._photo.__wrapped__(3, True)
    assert Image.open(io.BytesIO(drawn)).format == "JPEG2000"
    [file] = kept(cache)
    assert file.read_bytes() == drawn == face._draw_photo(3, True), "deterministic"
    assert face._photo.__wrapped__(3, True) == drawn
    assert len(kept(cache)) == 1, "read back, not rendered again"
    face._photo.__wrapped__(3, False)
    assert len(kept(cache)) == 2, "each variant has its own file"


def test_a_torn_or_foreign_file_is_rendered_again(cache: Path) -> None:
    drawn = face._photo.__wrapped__(5, False)
    [file] = kept(cache)
    for bad in (drawn[:7], b"", b"not a photo at all"):
        file.write_bytes(bad)
        assert face._photo.__wrapped__(5, False) == drawn
        assert file.read_bytes() == drawn, "repaired in place"


def test_a_cache_folder_that_cannot_be_written_only_costs_the_reuse(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("MYNAHIL_CACHE", str(blocker))
    assert face._photo.__wrapped__(1, True) == face._draw_photo(1, True)
