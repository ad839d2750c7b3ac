"""Print the OpenAPI document: ``python -m mynahil.reference_impl.openapi > docs/openapi.json``.

Beside the composition root, not in ``api/``: it builds the whole platform, which imports the
API, so from inside ``api/`` it made a cycle (api -> platform -> api)."""

from __future__ import annotations

import json

from mynahil.reference_impl.platform import build_platform


def openapi_document() -> str:
    """The document the platform serves at /openapi.json, as checked in."""
    platform = build_platform("sqlite://", None)
    try:
        return json.dumps(platform.app.openapi(), indent=2, sort_keys=True, ensure_ascii=False)
    finally:
        platform.close()


if __name__ == "__main__":
    print(openapi_document())
