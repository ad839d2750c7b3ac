"""A point system over each store."""

from __future__ import annotations

import pytest

from mynahil.reference_impl.jlis import JlisCA, KeyPool
from mynahil.reference_impl.store import SqlStore
from tests.reference_impl.points.harness import START, PointsPlatform


@pytest.fixture
def points(store: SqlStore, jlis_ca: JlisCA, key_pool: KeyPool) -> PointsPlatform:
    platform = PointsPlatform(store, jlis_ca, key_pool)
    platform.advance_to(START)
    return platform
