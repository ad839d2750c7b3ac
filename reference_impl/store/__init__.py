"""The reference platform's storage: SQLite by default, PostgreSQL for deployments.

``SqlStore.open(url)`` connects and migrates; ``store.transaction()`` is the
:class:`~mynahil.reference_impl.mykey.ports.Store` the services use. The schema lives in
:data:`metadata` and is created by Alembic (:func:`migrate`, :func:`upgrade`).
"""

from __future__ import annotations

from .sql import SqlStore, make_engine, migrate, upgrade
from .tables import metadata

__all__ = ["SqlStore", "make_engine", "metadata", "migrate", "upgrade"]
