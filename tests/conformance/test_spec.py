"""The rules ship with the suite (issue 20.2): docs/spec/requirements.md is the catalogue's
rendering, every requirement's rule in the project's own words under an anchor of its ID, each
citation resolving to a listed source; each report carries spec.html and links every
requirement to its anchor, and every link in the report resolves."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

from mynahil.conformance import load_catalogue
from mynahil.conformance.catalogue import load_sources
from mynahil.conformance.spec import SPEC_MARKDOWN, spec_html, spec_markdown

from .conftest import Run


class _Page(HTMLParser):
    """An HTML page's hrefs and element ids."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.hrefs: list[str] = []
        self.ids: set[str] = set()
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name == "href" and value:
                self.hrefs.append(value)
            elif name == "id" and value:
                self.ids.add(value)


def _markdown_anchors(text: str) -> set[str]:
    return set(re.findall(r'<a id="([^"]+)"></a>', text))


def test_the_shipped_spec_is_the_catalogues() -> None:
    assert SPEC_MARKDOWN.read_text(encoding="utf-8") == spec_markdown(load_catalogue()), (
        "regenerate it: python -m mynahil.conformance.spec > docs/spec/requirements.md"
    )


def test_every_requirement_has_its_rule_and_anchor_in_the_shipped_spec() -> None:
    text = SPEC_MARKDOWN.read_text(encoding="utf-8")
    anchors = _markdown_anchors(text)
    sources = load_sources()
    for rid, requirement in load_catalogue().items():
        assert len(requirement.rule.split()) >= 8, f"{rid}: no rule worth the name"
        assert requirement.public or requirement.choice, f"{rid}: neither public nor a choice"
        assert rid in anchors, f"{rid}: no anchor"
        section = text.split(f'<a id="{rid}"></a>', 1)[1].split("\n### ", 1)[0]
        assert requirement.rule[:60] in section, f"{rid}: its rule is not under its anchor"
        for key, _detail in requirement.public_sources():
            assert key in sources
    for link in re.findall(r"\]\(#([^)]+)\)", text):  # every in-page link resolves
        assert link in anchors, link


def test_public_facts_and_the_projects_choices_are_told_apart() -> None:
    catalogue = load_catalogue()
    text = SPEC_MARKDOWN.read_text(encoding="utf-8")
    # a fact only one trace showed, with nothing public to cite, is stated as a choice
    assert not catalogue["JPKI-SEL-006"].public
    assert "one source" in catalogue["JPKI-SEL-006"].choice
    # OpenSC's driver is the public source of the signing command
    key, detail = catalogue["JPKI-SIG-001"].public_sources()[0]
    assert (key, detail.split()[0]) == ("opensc", "card-jpki.c")
    choices = sum(1 for r in catalogue.values() if r.choice)
    cited = sum(1 for r in catalogue.values() if r.public)
    assert text.count("- **The project's choice**") == choices
    assert text.count("- **Public sources**") == cited


def test_spec_html_anchors_every_requirement_and_source() -> None:
    catalogue = load_catalogue()
    page = _Page(spec_html(catalogue))
    assert set(catalogue) <= page.ids
    assert {f"source-{key}" for key in load_sources()} <= page.ids
    for href in page.hrefs:
        assert href.startswith("#"), href
        assert href[1:] in page.ids, href
    assert "<code>00 A4 04 0C 0A D3 92 F0 00 26 01 00 00 00 01</code>" in spec_html(catalogue)


def test_the_report_links_each_requirement_to_its_rule(inproc_run: Run) -> None:
    _code, results, report = inproc_run
    spec = (report / "spec.html").read_text(encoding="utf-8")
    html = (report / "index.html").read_text(encoding="utf-8")
    for rid in results["requirements"]:
        assert f'id="{rid}"' in spec
        assert f'href="spec.html#{rid}"' in html
    assert not re.search(r"(JPKI|SPEC|DESIGN)\.md", html), "the report cites a document"


def test_every_link_in_the_report_resolves(inproc_run: Run) -> None:
    """Relative to the folder the report is written in: the traces, spec.html and the anchor
    in it; nothing points outside the report folder."""
    _code, _results, report = inproc_run
    pages: dict[Path, _Page] = {}
    checked = 0
    for name in ("index.html", "spec.html"):
        for href in _Page((report / name).read_text(encoding="utf-8")).hrefs:
            parts = urlsplit(href)
            assert not parts.scheme, f"{name} links outside: {href}"
            assert not parts.netloc, f"{name} links outside: {href}"
            target = (report / name).parent / unquote(parts.path) if parts.path else report / name
            assert target.resolve().is_relative_to(report.resolve()), href
            assert target.is_file(), f"{name}: {href} does not exist"
            if parts.fragment:
                page = pages.setdefault(target, _Page(target.read_text(encoding="utf-8")))
                assert parts.fragment in page.ids, f"{name}: {href} has no such anchor"
            checked += 1
    assert checked > len(_results["requirements"])
