"""The certification report: one self-contained HTML page (inline CSS, no script, no server)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from jinja2 import Environment, select_autoescape

__all__ = ["write_html"]

_TEMPLATE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>MyNa Point conformance: {{ r.device }}</title>
<style>
body { font: 14px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 70em; color: #222; }
h1 { font-size: 1.5em; } table { border-collapse: collapse; width: 100%; margin: 1em 0; }
th, td { border-bottom: 1px solid #ddd; padding: .35em .5em; text-align: left; vertical-align: top; }
th { background: #f4f4f4; } code { font-size: .9em; }
.passed { color: #0a7a2f; font-weight: 600; } .failed, .untested { color: #b00020; font-weight: 600; }
.skipped { color: #8a6d00; } .verdict { font-size: 1.3em; padding: .5em 1em; display: inline-block; }
.ok { background: #e6f4ea; } .bad { background: #fce8e6; }
pre { white-space: pre-wrap; font-size: .8em; background: #f8f8f8; padding: .5em; }
</style></head><body>
<h1>MyNa Point conformance report</h1>
<p class="verdict {{ 'ok' if r.passed else 'bad' }}">
{{ 'CERTIFIED: every selected requirement passed' if r.passed else 'NOT CERTIFIED' }}</p>
<table>
<tr><th>device</th><td>{{ r.device }}</td></tr>
<tr><th>target</th><td><code>{{ r.target }}</code> ({{ 'emulated card' if r.emulated else 'device under test' }})</td></tr>
<tr><th>ATR</th><td><code>{{ r.atr }}</code>{% if r.expected_atr %} (expected <code>{{ r.expected_atr }}</code>){% endif %}</td></tr>
<tr><th>run</th><td>{{ r.started }}, {{ '%.1f' % r.seconds }} s</td></tr>
<tr><th>results.json SHA-256</th><td><code>{{ digest }}</code></td></tr>
</table>
<h2>Verdict per requirement</h2>
<table><tr><th>requirement</th><th>verdict</th><th>title</th><th>source</th><th>tests (s)</th></tr>
{% for rid, v in rows %}
<tr><td><code>{{ rid }}</code></td><td class="{{ v.verdict }}">{{ v.verdict }}</td>
<td>{{ v.title }}</td><td>{{ v.source }}</td>
<td>{% for t in v.tests %}{{ t.split('::')[-1] }} ({{ '%.3f' % r.tests[t].seconds }})<br>{% endfor %}</td></tr>
{% endfor %}</table>
<h2>Tests</h2>
<table><tr><th>test</th><th>outcome</th><th>trace (SHA-256)</th><th>detail</th></tr>
{% for name, t in r.tests.items() %}
<tr><td>{{ name.split('::')[-1] }}</td><td class="{{ t.outcome }}">{{ t.outcome }}</td>
<td>{% if name in r.traces %}<code>{{ r.traces[name].file }}</code><br><code>{{ r.traces[name].sha256[:16] }}…</code>{% endif %}</td>
<td>{% if t.message %}<pre>{{ t.message }}</pre>{% endif %}</td></tr>
{% endfor %}</table>
<p>Replay a trace against the emulated card: <code>mynahil conformance replay TRACE</code>.</p>
</body></html>
"""


def write_html(path: Path, results: dict[str, Any], digest: str) -> None:
    environment = Environment(autoescape=select_autoescape(default=True))
    order = {"failed": 0, "untested": 1, "skipped": 2, "passed": 3}
    rows = sorted(results["requirements"].items(), key=lambda kv: (order[kv[1]["verdict"]], kv[0]))
    html = environment.from_string(_TEMPLATE).render(r=results, rows=rows, digest=digest)
    path.write_text(html, encoding="utf-8")
