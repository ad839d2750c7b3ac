"""The composition root: one place that wires the store, J-LIS, the services and the HTTP app."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from fastapi import FastAPI

from reference_impl.api import create_app
from reference_impl.jlis import CertificateRegistry, JlisCA, JlisServices
from reference_impl.mykey import MyKeyService
from reference_impl.store import SqlStore

__all__ = ["ReferencePlatform", "build_platform"]


@dataclass
class ReferencePlatform:
    store: SqlStore
    jlis: JlisServices
    mykey: MyKeyService
    app: FastAPI

    def close(self) -> None:
        self.store.dispose()


def build_platform(db_url: str, jlis_folder: Path | None) -> ReferencePlatform:
    """The platform on ``db_url`` trusting the J-LIS CA in ``jlis_folder`` (in memory if None).

    The folder is the one ``mynahil card new`` issues from, so its cards are trusted and its
    registry knows their certificates.
    """
    ca = JlisCA.open(jlis_folder) if jlis_folder else JlisCA.create()
    jlis = JlisServices(ca, CertificateRegistry(jlis_folder))
    store = SqlStore.open(db_url)
    mykey = MyKeyService(store, jlis)
    return ReferencePlatform(store, jlis, mykey, create_app(mykey, jlis))
