"""A throw-away PostgreSQL schema for a benchmark run (dropped afterwards)."""

from __future__ import annotations

import os
import secrets
import sys
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import create_engine, text

POSTGRES = os.environ.get(
    "MYNAHIL_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


@contextmanager
def scratch_schema(url: str = POSTGRES) -> Iterator[str | None]:
    """A URL whose connections see a new, empty schema; None if the server is unreachable."""
    schema = f"bench_{secrets.token_hex(4)}"
    try:
        engine = create_engine(url, connect_args={"connect_timeout": 3})
        with engine.begin() as connection:
            connection.execute(text(f'CREATE SCHEMA "{schema}"'))
        engine.dispose()
    except Exception as exc:
        print(f"PostgreSQL not measured: {exc}", file=sys.stderr)
        yield None
        return
    sep = "&" if "?" in url else "?"
    try:
        yield f"{url}{sep}options=-csearch_path%3D{schema}"
    finally:
        engine = create_engine(url)
        with engine.begin() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        engine.dispose()
