"""The composition root: one place that wires the store, J-LIS, the services and the HTTP app."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import uvicorn
from fastapi import FastAPI

from reference_impl.api import create_app
from reference_impl.jlis import CertificateRegistry, JlisCA, JlisServices
from reference_impl.mykey import MyKeyService
from reference_impl.store import SqlStore

__all__ = ["ReferencePlatform", "build_platform", "serving"]


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


@contextmanager
def serving(app: FastAPI) -> Iterator[str]:
    """The app on a free loopback port in a background thread (one uvicorn worker); its URL."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error"))
    thread = threading.Thread(target=server.run, name=f"platform-{port}", daemon=True)
    thread.start()
    while not server.started:
        if not thread.is_alive():
            raise RuntimeError(f"the platform did not start on 127.0.0.1:{port}")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
