"""`mynahil db` for a DBA, on SQLite and PostgreSQL, and no database password ever printed."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from mynahil.cli import app
from mynahil.reference_impl.store.admin import current_revision, head_revision


def _run(*argv: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(argv))
    return result.exit_code, result.output


def test_upgrade_then_current_on_each_store(store_url: str) -> None:
    assert current_revision(store_url) is None
    code, output = _run("db", "current", "--db", store_url, "--check")
    assert code == 1, output
    assert "never migrated" in output

    code, output = _run("db", "upgrade", "--db", store_url)
    assert code == 0, output
    assert current_revision(store_url) == head_revision()

    code, output = _run("db", "current", "--db", store_url, "--check")
    assert code == 0, output
    assert "up to date" in output


@pytest.mark.parametrize(
    ("url", "dialect_marker"),
    [("sqlite:///any.db", "CREATE TRIGGER ledger_no_update"),
     ("postgresql+psycopg://dba@db.example/platform", "LANGUAGE plpgsql"),
     # percent-encoded: a password with an @ in it, a schema chosen through libpq's options
     ("postgresql+psycopg://dba:p%40ss@db.example/platform?options=-csearch_path%3Dmykey",
      "LANGUAGE plpgsql")],
)  # fmt: skip
def test_sql_prints_each_dialects_migration_without_connecting(
    url: str, dialect_marker: str
) -> None:
    code, output = _run("db", "sql", "--db", url)
    assert code == 0, output
    assert "CREATE TABLE ledger" in output
    assert dialect_marker in output
    code, output = _run("db", "sql", "--db", url, "--from", "0001", "--to", "0002")
    assert code == 0
    assert "CREATE TABLE challenges" not in output
    assert "CREATE TABLE ledger" in output


def test_a_missing_sqlite_file_is_named_not_created(tmp_path: Path) -> None:
    path = tmp_path / "none.db"
    code, output = _run("db", "current", "--db", f"sqlite:///{path}")
    assert code == 1
    assert "no such database" in output
    assert not path.exists()


@pytest.mark.parametrize("command", [["serve"], ["db", "current"], ["db", "upgrade"],
                                     ["audit", "verify"], ["points", "check"]])  # fmt: skip
def test_no_command_prints_the_database_password(command: list[str]) -> None:
    """A password in --db never reaches the terminal (nor logs that capture it)."""
    url = "postgresql+psycopg://platform:s3cret-PW@127.0.0.1:1/mynahil"
    code, output = _run(*command, "--db", url)
    assert code != 0
    assert "s3cret-PW" not in output
    assert "platform:***@127.0.0.1:1" in output


def test_a_sqlite_url_with_options_names_its_file(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'synced.db'}?synchronous=full"
    code, output = _run("db", "upgrade", "--db", url)
    assert code == 0, output
    assert (tmp_path / "synced.db").exists()
    code, output = _run("db", "current", "--db", url, "--check")
    assert code == 0, output
