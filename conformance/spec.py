"""The specification the catalogue cites, shipped with the suite in its own words.

Each requirement's rule is stated in the catalogue (``requirements.toml``), grouped into the
chapter of the card facts or scheme rules it belongs to; :func:`spec_markdown` renders it as
``docs/spec/requirements.md`` and :func:`spec_html` as the ``spec.html`` every report folder
carries, with a stable anchor per requirement (its ID), so the report links each row to its
rule instead of citing documents a vendor does not have.
"""

from __future__ import annotations

import re
from collections import defaultdict

from jinja2 import Environment, select_autoescape

from mynahil.paths import docs_dir

from .catalogue import Requirement

__all__ = ["SPEC_MARKDOWN", "chapter", "spec_html", "spec_markdown"]

SPEC_MARKDOWN = docs_dir() / "spec" / "requirements.md"  # the checkout's, or the wheel's copy
_PARTS = {
    "JPKI.md": "The card",
    "SPEC.md": "The scheme",
    "DESIGN.md": "The platform",
    "README": "The reference platform",
    "Issue 13": "The platform",
}


def chapter(requirement: Requirement) -> str:
    """The chapter a requirement's rule belongs to ("The card: PINs"), from its source."""
    source = requirement.source
    document, _, section = source.partition(":")
    part = next((p for key, p in _PARTS.items() if document.startswith(key)), "Other rules")
    if not section or document not in _PARTS:
        return part
    return f"{part}: {re.split(r'[(;.,]', section)[0].strip()}"


def _chapters(catalogue: dict[str, Requirement]) -> list[tuple[str, list[Requirement]]]:
    grouped: dict[str, list[Requirement]] = defaultdict(list)
    for requirement in sorted(catalogue.values(), key=lambda r: r.id):
        grouped[chapter(requirement)].append(requirement)
    return sorted(grouped.items())


def spec_markdown(catalogue: dict[str, Requirement]) -> str:
    lines = [
        "# The rules the conformance suite checks",
        "",
        "Generated from `conformance/requirements.toml` (`python -m conformance.spec`); each",
        "requirement's anchor is its ID, which reports link to. A rule marked *planned* is",
        "recorded before its test.",
        "",
    ]
    for name, requirements in _chapters(catalogue):
        lines += [f"## {name}", ""]
        for r in requirements:
            planned = " *(planned)*" if r.planned else ""
            lines.append(f'- <a id="{r.id}"></a>**{r.id}** ({r.suite}){planned}: {r.title}')
        lines.append("")
    return "\n".join(lines)


_HTML = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>MyNa Point conformance: the rules</title>
<style>body { font: 14px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 60em; padding: 0 1em; }
dt { font-weight: 600; margin-top: .6em; } dt:target, dt:target + dd { background: #fff6cc; }</style>
</head><body><h1>The rules the conformance suite checks</h1>
<p>Each requirement's anchor is its ID; the report links every row here.</p>
{% for name, requirements in chapters %}<h2>{{ name }}</h2><dl>
{% for r in requirements %}<dt id="{{ r.id }}">{{ r.id }} <small>({{ r.suite }}{{ ', planned' if r.planned }})</small></dt><dd>{{ r.title }}</dd>
{% endfor %}</dl>{% endfor %}
</body></html>
"""


def spec_html(catalogue: dict[str, Requirement]) -> str:
    environment = Environment(autoescape=select_autoescape(default=True))
    return environment.from_string(_HTML).render(chapters=_chapters(catalogue))


if __name__ == "__main__":
    from .catalogue import load_catalogue

    print(spec_markdown(load_catalogue()), end="")
