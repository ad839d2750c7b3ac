"""What an operator of the platform relies on: a readiness probe that asks the database, and
API docs that render with no CDN (the browser fetches every asset from the platform)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, text

from mynahil.reference_impl.platform import ReferencePlatform, build_platform, serving


@pytest.fixture
def served(store_url: str, tmp_path: Path) -> Iterator[tuple[str, str]]:
    platform: ReferencePlatform = build_platform(store_url, tmp_path / "jlis")
    try:
        with serving(platform.app) as url:
            yield url, store_url
    finally:
        platform.close()


def test_ready_while_the_database_answers_and_503_when_it_cannot(
    served: tuple[str, str],
) -> None:
    url, store_url = served
    answer = httpx.get(f"{url}/v1/ready", timeout=10)
    assert answer.status_code == 200
    assert answer.json() == {"status": "ready", "database": "ok"}

    engine = create_engine(store_url)  # the schema disappears under the running platform
    with engine.begin() as connection:
        connection.execute(text("DROP TABLE alembic_version"))
    engine.dispose()
    answer = httpx.get(f"{url}/v1/ready", timeout=10)
    assert answer.status_code == 503
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.headers["retry-after"] == "5"
    assert answer.json()["code"] == "not_ready"
    assert httpx.get(f"{url}/v1/health", timeout=10).status_code == 200  # alive, not ready


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_docs_pages_load_every_asset_from_the_platform(served: tuple[str, str], page: str) -> None:
    url, _ = served
    html = httpx.get(f"{url}{page}", timeout=10)
    assert html.status_code == 200
    assets = re.findall(r"""(?:src|href)=["']([^"']+)["']""", html.text)
    scripts = [a for a in assets if a.endswith(".js")]
    assert scripts, html.text
    for asset in assets:
        assert asset.startswith("/"), f"{page} loads {asset} from outside the platform"
        fetched = httpx.get(f"{url}{asset}", timeout=10)
        assert fetched.status_code == 200, asset
        assert len(fetched.content) > 1000, asset
    assert "/openapi.json" in html.text
