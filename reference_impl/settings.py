"""How ``mynahil serve`` is configured: command-line options, else ``MYNAHIL_*`` environment
variables, else these defaults; validated once, with errors that name the setting.

| setting | environment | default |
| --- | --- | --- |
| db | ``MYNAHIL_DB`` | SQLite at ``$MYNAHIL_HOME/platform.db`` |
| host, port | ``MYNAHIL_HOST``, ``MYNAHIL_PORT`` | 127.0.0.1, 8000 |
| workers (processes; more than one needs PostgreSQL) | ``MYNAHIL_WORKERS`` | 1 |
| threads (blocking calls a worker runs at once) | ``MYNAHIL_THREADS`` | 4 (PostgreSQL), 40 |
| jlis (the J-LIS CA folder) | ``MYNAHIL_JLIS`` | ``$MYNAHIL_HOME/jlis`` |
| as_of (replay a campaign) | ``MYNAHIL_AS_OF`` | none: real time |
| log_format, log_level | ``MYNAHIL_LOG_FORMAT``, ``MYNAHIL_LOG_LEVEL`` | json, info |
| tls_cert, tls_key | ``MYNAHIL_TLS_CERT``, ``MYNAHIL_TLS_KEY`` | none: plain HTTP |
| ca_file (trust for operators' and registries' https) | ``MYNAHIL_CA_FILE`` | the system's |
| registries (their base URL, when remote) | ``MYNAHIL_REGISTRIES`` | none: the ones beside J-LIS |
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from mynahil.paths import mynahil_home

__all__ = ["PlatformSettings", "SettingsError", "load_settings"]


class SettingsError(ValueError):
    """Settings that cannot be used; the message names each setting and its variable."""


class PlatformSettings(BaseSettings):
    """The platform server's settings (see the module's table). The TLS files are checked
    where they are used (:func:`mynahil.tls.check_server_files`: both or neither, readable,
    the key the certificate's)."""

    model_config = SettingsConfigDict(env_prefix="MYNAHIL_", extra="ignore", frozen=True)

    db: str = ""
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    workers: int = Field(1, ge=1, le=64)
    threads: int | None = Field(None, ge=1, le=1024)
    jlis: Path | None = None
    as_of: date | None = None
    log_format: Literal["json", "text"] = "json"
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    tls_cert: Path | None = None
    tls_key: Path | None = None
    ca_file: Path | None = None
    registries: str | None = None
    """The base URL of the health-insurance and public-fund registries when they run
    elsewhere (``…/v1/registries/{kind}/people/{person_ref}`` answers there)."""

    @field_validator("registries")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError(f"{value!r} is not an http:// or https:// URL")
        return value

    @property
    def db_url(self) -> str:
        return self.db or f"sqlite:///{mynahil_home() / 'platform.db'}"

    @property
    def jlis_folder(self) -> Path:
        return self.jlis or mynahil_home() / "jlis"

    @property
    def as_of_moment(self) -> datetime | None:
        """``as_of`` as noon in Japan (03:00 UTC): campaign days are Japan days."""
        return datetime.combine(self.as_of, time(3, 0), UTC) if self.as_of else None

    def environment(self) -> dict[str, str]:
        """These settings as the ``MYNAHIL_*`` variables that give them back: what
        ``mynahil serve --workers N`` hands to each worker process."""
        values = self.model_dump(exclude_defaults=True)
        return {f"MYNAHIL_{name.upper()}": str(value) for name, value in values.items()}

    def problem_with_workers(self) -> str | None:
        """Why these settings cannot run :attr:`workers` processes, or None."""
        if self.workers > 1 and not self.db_url.startswith("postgresql"):
            return (
                f"--workers {self.workers} needs PostgreSQL (--db postgresql+psycopg://…): "
                "SQLite serves one worker"
            )
        return None


def load_settings(**given: Any) -> PlatformSettings:
    """Settings from ``given`` (command-line values; None means not given), then the
    environment, then the defaults. Raises :class:`SettingsError` naming what is wrong."""
    chosen = {name: value for name, value in given.items() if value is not None}
    try:
        return PlatformSettings(**chosen)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            name = ".".join(str(part) for part in error["loc"]) or "settings"
            where = f"--{name.replace('_', '-')} / MYNAHIL_{name.upper()}" if error["loc"] else name
            problems.append(f"{where}: {error['msg']}")
        raise SettingsError("; ".join(problems)) from None
