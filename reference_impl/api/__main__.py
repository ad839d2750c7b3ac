"""Print the OpenAPI document: ``python -m reference_impl.api > docs/openapi.json``."""

from __future__ import annotations

import json

from reference_impl.platform import build_platform

platform = build_platform("sqlite://", None)
print(json.dumps(platform.app.openapi(), indent=2, sort_keys=True, ensure_ascii=False))
platform.close()
