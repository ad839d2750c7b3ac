"""A whole MyKey platform per test, on each store."""

from __future__ import annotations

import pytest

from mynahil.reference_impl.jlis import JlisCA, KeyPool
from mynahil.reference_impl.store import SqlStore
from tests.reference_impl.mykey.platform import Platform


@pytest.fixture
def platform(store: SqlStore, jlis_ca: JlisCA, key_pool: KeyPool) -> Platform:
    """The service over a fresh store and its own J-LIS registry (the CA is shared)."""
    return Platform(store, jlis_ca, key_pool)
