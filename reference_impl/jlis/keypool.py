"""Where a card's RSA key pairs come from: fresh for real cards, a shared pool for load tests.

RSA-2048 generation runs at a few dozen keys a second, which is what limits issuing thousands
of emulated cards. :class:`KeyPool` generates a few keys once, keeps them in a cache file and
hands them out again and again. Pooled keys are therefore SHARED between cards: two cards may
hold the same private key. That is acceptable for load tests only, never for cards whose keys
stand for distinct people. Each card still gets its own certificates, with unique serial
numbers (the CA allocates those, not the pool), so the MyKey IDs stay distinct.
"""

from __future__ import annotations

import contextlib
import math
import random
import re
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from mynahil.files import flocked as _locked
from mynahil.files import write_atomically
from mynahil.paths import cache_dir as default_cache_dir

__all__ = ["KEY_SIZE", "PUBLIC_EXPONENT", "FreshKeys", "KeyPool", "KeySource", "default_cache_dir"]

KEY_SIZE = 2048
PUBLIC_EXPONENT = 65537

_PEM_BLOCK = re.compile(
    rb"-----BEGIN PRIVATE KEY-----\r?\n.*?-----END PRIVATE KEY-----\r?\n?", re.DOTALL
)


@runtime_checkable
class KeySource(Protocol):
    """Anything that hands out RSA-2048 private keys for new cards."""

    def new_key(self) -> rsa.RSAPrivateKey: ...


def _generate() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=PUBLIC_EXPONENT, key_size=KEY_SIZE)


class FreshKeys:
    """A new key pair for every request: what a real card does (its keys are made on the card)."""

    def new_key(self) -> rsa.RSAPrivateKey:
        return _generate()


class KeyPool:
    """A fixed set of keys handed out in a seeded, reproducible order (load tests only).

    Every key is shared by every card it is drawn for; see the module docstring.
    """

    def __init__(self, keys: Sequence[rsa.RSAPrivateKey], seed: int) -> None:
        if not keys:
            raise ValueError("a key pool needs at least one key")
        self._keys = tuple(keys)
        self._rng = random.Random(seed)

    @classmethod
    def generate(cls, size: int, seed: int, cache_dir: Path | None = None) -> KeyPool:
        """A pool of ``size`` keys, loaded from ``cache_dir/keypool-<size>.pem`` when that file
        holds ``size`` usable keys, otherwise generated and written there.

        A missing, truncated or corrupt cache file is regenerated; a cache folder that cannot
        be written only costs the reuse (a warning, the keys are still returned). Processes
        sharing a cache folder take turns, so only the first one generates.
        """
        if size < 1:
            raise ValueError(f"a key pool needs at least one key, not {size}")
        folder = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        path = folder / f"keypool-{size}.pem"
        with contextlib.ExitStack() as stack:
            try:
                folder.mkdir(parents=True, exist_ok=True)
                stack.enter_context(_locked(folder / f"keypool-{size}.lock"))
            except OSError as exc:
                warnings.warn(f"key pool cache {folder} unusable ({exc})", stacklevel=2)
                return cls([_generate() for _ in range(size)], seed)
            keys = _read_cache(path, size)
            if keys is None:
                keys = [_generate() for _ in range(size)]
                try:
                    _write_cache(path, keys)
                except OSError as exc:
                    warnings.warn(f"cannot write key pool cache {path} ({exc})", stacklevel=2)
        return cls(keys, seed)

    @property
    def keys(self) -> tuple[rsa.RSAPrivateKey, ...]:
        """Every key in the pool, in cache-file order."""
        return self._keys

    def draw(self) -> rsa.RSAPrivateKey:
        """A key chosen by the pool's seeded generator (the same sequence for the same seed)."""
        return self._rng.choice(self._keys)

    def new_key(self) -> rsa.RSAPrivateKey:
        """:class:`KeySource`: a draw from the pool."""
        return self.draw()

    def __len__(self) -> int:
        return len(self._keys)


def _read_cache(path: Path, size: int) -> list[rsa.RSAPrivateKey] | None:
    """The cached keys, or None when the file is absent or not exactly ``size`` good keys."""
    try:
        data = path.read_bytes()
    except OSError:
        return None
    blocks = _PEM_BLOCK.findall(data)
    if len(blocks) != size or _PEM_BLOCK.sub(b"", data).strip():
        return None
    keys: list[rsa.RSAPrivateKey] = []
    for block in blocks:
        try:
            # OpenSSL's own check tests p and q for primality (~40 ms a key); the arithmetic
            # in _consistent catches any damage a file can suffer at a fraction of the cost.
            key = serialization.load_pem_private_key(
                block, password=None, unsafe_skip_rsa_key_validation=True
            )
        except (ValueError, TypeError):
            return None
        if not isinstance(key, rsa.RSAPrivateKey) or not _consistent(key):
            return None
        keys.append(key)
    return keys


def _consistent(key: rsa.RSAPrivateKey) -> bool:
    """Whether ``key`` is a well-formed RSA-2048, e = 65537 key whose parts agree."""
    private = key.private_numbers()
    public = private.public_numbers
    p, q, d = private.p, private.q, private.d
    if public.e != PUBLIC_EXPONENT or public.n.bit_length() != KEY_SIZE or p * q != public.n:
        return False
    lam = math.lcm(p - 1, q - 1)
    return (
        (public.e * d) % lam == 1
        and private.dmp1 == d % (p - 1)
        and private.dmq1 == d % (q - 1)
        and (private.iqmp * q) % p == 1
    )


def _write_cache(path: Path, keys: Sequence[rsa.RSAPrivateKey]) -> None:
    """Concatenated PKCS#8 PEM, written atomically: temp file, fsync, rename, fsync the folder."""
    payload = b"".join(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        for key in keys
    )
    write_atomically(path, payload)
