"""The specification the catalogue cites, shipped with the suite in its own words.

Each requirement's rule is stated in the catalogue (``requirements.toml``: ``rule``, with its
``public`` sources and the project's own ``choice``), grouped into the chapter of the card facts
or scheme rules it belongs to; :func:`spec_markdown` renders it as ``docs/spec/requirements.md``
(shipped in the wheel as ``share/mynahil/docs/spec/``) and :func:`spec_html` as the
``spec.html`` every report folder carries, with a stable anchor per requirement (its ID), so the
report links each row to its rule instead of citing documents a vendor does not have.
"""

from __future__ import annotations

import re
from collections import defaultdict

from jinja2 import Environment, select_autoescape
from markupsafe import Markup, escape

from mynahil.paths import docs_dir

from .catalogue import Requirement, load_sources

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


_INTRO = (
    "Each requirement states its rule in this project's own words, under an anchor that is its "
    "ID (reports link every row to it). **Public sources** name where its facts come from "
    "(listed under [Sources](#sources)); **The project's choice** marks what the emulated card "
    "or the reference platform decided where nothing public says: the suite checks it, but it "
    "is not known of the real card or scheme. A rule marked *planned* is recorded before its "
    "test."
)


def _markdown_escape(text: str) -> str:
    """``<`` and ``>`` outside code spans, which Markdown would read as HTML."""
    parts = text.split("`")
    for i in range(0, len(parts), 2):
        parts[i] = parts[i].replace("<", "&lt;").replace(">", "&gt;")
    return "`".join(parts)


def _cited(requirement: Requirement) -> str:
    return "; ".join(
        f"[{key}](#source-{key})" + (f": {_markdown_escape(detail)}" if detail else "")
        for key, detail in requirement.public_sources()
    )


def spec_markdown(catalogue: dict[str, Requirement], sources: dict[str, str] | None = None) -> str:
    sources = load_sources() if sources is None else sources
    lines = [
        "# The rules the conformance suite checks",
        "",
        "Generated from `conformance/requirements.toml` (`python -m mynahil.conformance.spec`).",
        _INTRO,
        "",
    ]
    for name, requirements in _chapters(catalogue):
        lines += [f"## {name}", ""]
        for r in requirements:
            planned = ", planned" if r.planned else ""
            lines += [
                f'### <a id="{r.id}"></a>{r.id}: {_markdown_escape(r.title)}',
                "",
                f"*{r.suite} suite{planned}*",
                "",
                _markdown_escape(r.rule),
                "",
            ]
            if r.public:
                lines.append(f"- **Public sources**: {_cited(r)}")
            if r.choice:
                lines.append(f"- **The project's choice**: {_markdown_escape(r.choice)}")
            lines.append("")
    lines += ['## <a id="sources"></a>Sources', ""]
    lines += [f'- <a id="source-{key}"></a>**{key}**: {text}' for key, text in sources.items()]
    lines.append("")
    return "\n".join(lines)


_HTML = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>MyNa Point conformance: the rules</title>
<style>body { font: 14px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 60em; padding: 0 1em; }
section:target { background: #fff6cc; } h3 { margin-bottom: .2em; } .small { color: #555; font-size: 90%; }
code { background: #f4f4f4; padding: 0 .2em; }</style>
</head><body><h1>The rules the conformance suite checks</h1>
<p>{{ intro }}</p>
{% for name, requirements in chapters %}<h2>{{ name }}</h2>
{% for r in requirements %}<section id="{{ r.id }}"><h3>{{ r.id }}: {{ r.title }}</h3>
<p class="small">{{ r.suite }} suite{{ ', planned' if r.planned }}</p>
<p>{{ r.rule | code }}</p>
{% if r.public %}<p class="small"><strong>Public sources</strong>: {% for key, detail in r.public_sources() %}<a href="#source-{{ key }}">{{ key }}</a>{% if detail %}: {{ detail | code }}{% endif %}{{ '; ' if not loop.last }}{% endfor %}</p>{% endif %}
{% if r.choice %}<p class="small"><strong>The project's choice</strong>: {{ r.choice | code }}</p>{% endif %}
</section>
{% endfor %}{% endfor %}
<h2 id="sources">Sources</h2><ul>
{% for key, text in sources.items() %}<li id="source-{{ key }}"><strong>{{ key }}</strong>: {{ text }}</li>
{% endfor %}</ul>
</body></html>
"""


def _code_spans(text: str) -> Markup:
    """Escaped text with its `code spans` as <code>."""
    escaped = str(escape(text))  # every < & > " ' of the catalogue's text is escaped first
    return Markup(re.sub(r"`([^`]*)`", r"<code>\1</code>", escaped))  # noqa: S704


def spec_html(catalogue: dict[str, Requirement], sources: dict[str, str] | None = None) -> str:
    environment = Environment(autoescape=select_autoescape(default=True))
    environment.filters["code"] = _code_spans
    return environment.from_string(_HTML).render(
        chapters=_chapters(catalogue),
        sources=load_sources() if sources is None else sources,
        intro=_INTRO.replace("[Sources](#sources)", "Sources").replace("**", ""),
    )


if __name__ == "__main__":
    from .catalogue import load_catalogue

    print(spec_markdown(load_catalogue()), end="")
