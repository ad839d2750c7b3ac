"""The rules ship with the suite (issue 20.2): docs/spec/requirements.md is the catalogue's
rendering, with an anchor per requirement, and each report carries spec.html and links every
requirement to its anchor instead of citing JPKI.md or SPEC.md."""

from __future__ import annotations

import re

from conformance import load_catalogue
from conformance.spec import SPEC_MARKDOWN, spec_markdown

from .conftest import Run


def test_the_shipped_spec_is_the_catalogues() -> None:
    assert SPEC_MARKDOWN.read_text(encoding="utf-8") == spec_markdown(load_catalogue()), (
        "regenerate it: python -m conformance.spec > docs/spec/requirements.md"
    )
    text = SPEC_MARKDOWN.read_text(encoding="utf-8")
    for rid in load_catalogue():
        assert f'<a id="{rid}"></a>' in text


def test_the_report_links_each_requirement_to_its_rule(inproc_run: Run) -> None:
    _code, results, report = inproc_run
    spec = (report / "spec.html").read_text(encoding="utf-8")
    html = (report / "index.html").read_text(encoding="utf-8")
    for rid in results["requirements"]:
        assert f'id="{rid}"' in spec
        assert f'href="spec.html#{rid}"' in html
    assert not re.search(r"(JPKI|SPEC|DESIGN)\.md", html), "the report cites a document"
