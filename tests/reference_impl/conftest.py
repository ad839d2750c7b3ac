"""Fixtures for the reference system: J-LIS (one CA, a small key pool); databases come from
tests/conftest.py."""

from __future__ import annotations

import random

import pytest

from mynahil.reference_impl.jlis import JlisCA, KeyPool


@pytest.fixture(scope="session")
def jlis_ca(tmp_path_factory: pytest.TempPathFactory) -> JlisCA:
    """A CA kept in a temporary folder, shared by every test that only issues from it."""
    return JlisCA.create(tmp_path_factory.mktemp("jlis") / "ca")


@pytest.fixture(scope="session")
def key_pool(tmp_path_factory: pytest.TempPathFactory) -> KeyPool:
    """Four pooled keys, generated once per session."""
    return KeyPool.generate(4, seed=11, cache_dir=tmp_path_factory.mktemp("keys"))


@pytest.fixture
def rng() -> random.Random:
    return random.Random(20240501)
