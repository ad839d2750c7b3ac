"""Key sources: fresh keys for real cards, a cached, seeded pool for load tests."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from mynahil.reference_impl.jlis import FreshKeys, KeyPool, KeySource
from mynahil.reference_impl.jlis.keypool import default_cache_dir


def public_numbers(pool: KeyPool) -> list[rsa.RSAPublicNumbers]:
    return [key.public_key().public_numbers() for key in pool.keys]


def test_pool_keys_are_rsa_2048_with_e_65537(key_pool: KeyPool) -> None:
    assert len(key_pool) == 4
    for key in key_pool.keys:
        assert key.key_size == 2048
        assert key.public_key().public_numbers().e == 65537


def test_draws_are_reproducible_for_a_seed(key_pool: KeyPool) -> None:
    def draws(seed: int) -> list[int]:
        pool = KeyPool(key_pool.keys, seed)
        return [key_pool.keys.index(pool.draw()) for _ in range(40)]

    assert draws(3) == draws(3)
    assert draws(3) != draws(4)
    assert set(draws(3)) == {0, 1, 2, 3}


def test_pool_and_fresh_keys_are_key_sources(key_pool: KeyPool) -> None:
    assert isinstance(key_pool, KeySource)
    assert isinstance(FreshKeys(), KeySource)
    assert key_pool.new_key() in key_pool.keys


def test_fresh_keys_are_new_each_time() -> None:
    source = FreshKeys()
    first, second = source.new_key(), source.new_key()
    assert first.key_size == 2048
    assert first.public_key().public_numbers() != second.public_key().public_numbers()


def test_cache_file_is_reused(tmp_path: Path) -> None:
    first = KeyPool.generate(2, seed=1, cache_dir=tmp_path)
    cache = tmp_path / "keypool-2.pem"
    written = cache.stat()
    second = KeyPool.generate(2, seed=9, cache_dir=tmp_path)
    assert public_numbers(second) == public_numbers(first)
    assert cache.stat().st_ino == written.st_ino  # loaded, not rewritten
    assert cache.read_bytes().count(b"-----BEGIN PRIVATE KEY-----") == 2


def _garbage(path: Path) -> None:
    path.write_bytes(b"not a key\n")


def _truncated(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])


def _one_key_short(path: Path) -> None:
    data = path.read_bytes()
    end = data.index(b"-----END PRIVATE KEY-----") + len(b"-----END PRIVATE KEY-----\n")
    path.write_bytes(data[:end])


def _wrong_key_size(path: Path) -> None:
    small = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    pem = small.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    path.write_bytes(pem * 2)


def _flipped_character(path: Path) -> None:
    """One base64 character changed deep inside the first key's integers."""
    data = bytearray(path.read_bytes())
    spot = data.index(b"-----BEGIN PRIVATE KEY-----\n") + 28 + 600
    data[spot] = ord("A") if data[spot] != ord("A") else ord("B")
    path.write_bytes(bytes(data))


def _trailing_junk(path: Path) -> None:
    path.write_bytes(path.read_bytes() + b"junk\n")


@pytest.fixture(scope="module")
def good_cache(tmp_path_factory: pytest.TempPathFactory) -> tuple[bytes, KeyPool]:
    """A valid two-key cache file's bytes and the pool it holds (generated once)."""
    folder = tmp_path_factory.mktemp("good-cache")
    pool = KeyPool.generate(2, seed=1, cache_dir=folder)
    return (folder / "keypool-2.pem").read_bytes(), pool


@pytest.mark.parametrize(
    "damage",
    [_garbage, _truncated, _one_key_short, _wrong_key_size, _flipped_character, _trailing_junk],
)
def test_damaged_cache_is_regenerated(
    tmp_path: Path, good_cache: tuple[bytes, KeyPool], damage: Callable[[Path], None]
) -> None:
    data, original = good_cache
    cache = tmp_path / "keypool-2.pem"
    cache.write_bytes(data)
    assert public_numbers(KeyPool.generate(2, seed=1, cache_dir=tmp_path)) == public_numbers(
        original
    )
    damage(cache)
    pool = KeyPool.generate(2, seed=1, cache_dir=tmp_path)
    assert len(pool) == 2
    assert all(key.key_size == 2048 for key in pool.keys)
    assert public_numbers(pool) != public_numbers(original)
    assert public_numbers(KeyPool.generate(2, seed=1, cache_dir=tmp_path)) == public_numbers(pool)


def test_unusable_cache_folder_still_gives_keys(tmp_path: Path) -> None:
    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("")
    with pytest.warns(UserWarning, match="unusable"):
        pool = KeyPool.generate(1, seed=1, cache_dir=not_a_folder)
    assert len(pool) == 1


def test_default_cache_folder_follows_mynahil_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MYNAHIL_CACHE", str(tmp_path / "cache"))
    assert default_cache_dir() == tmp_path / "cache"
    KeyPool.generate(1, seed=1)
    assert (tmp_path / "cache" / "keypool-1.pem").is_file()
    monkeypatch.delenv("MYNAHIL_CACHE")
    assert default_cache_dir() == Path.home() / ".cache" / "mynahil"


def test_empty_pool_is_refused() -> None:
    with pytest.raises(ValueError, match="at least one key"):
        KeyPool.generate(0, seed=1)
    with pytest.raises(ValueError, match="at least one key"):
        KeyPool([], seed=1)
