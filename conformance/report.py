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
body { font: 14px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 72em; color: #222; padding: 0 1em; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 1.6em; }
table { border-collapse: collapse; width: 100%; margin: .6em 0; }
th, td { border-bottom: 1px solid #ddd; padding: .3em .5em; text-align: left; vertical-align: top; }
th { background: #f4f4f4; } code { font-size: .9em; word-break: break-all; }
.passed { color: #0a7a2f; font-weight: 600; } .failed, .untested { color: #b00020; font-weight: 600; }
.skipped, .planned, .not { color: #8a6d00; } .verdict { font-size: 1.3em; padding: .5em 1em; display: inline-block; }
.ok { background: #e6f4ea; } .bad { background: #fce8e6; } .small { font-size: .85em; color: #555; }
pre { white-space: pre-wrap; font-size: .8em; background: #f8f8f8; padding: .5em; max-height: 20em; overflow: auto; }
</style></head><body>
<h1>MyNa Point conformance report</h1>
<p class="verdict {{ 'ok' if r.passed else 'bad' }}">
{{ r.verdict_label }}{% if r.self_test %}: a run against mynahil's own emulated target checks the suite, it certifies no device
{% elif r.passed and not r.selection.partial %}: every selected requirement passed{% if r.counts.skipped %} ({{ r.counts.skipped }} not applicable, skipped){% endif %}
{% endif %}{% if r.selection.partial %}<br><span class="small">{{ r.selection.note }}</span>{% endif %}</p>
{% if r.refused %}<pre>{{ r.refused }}</pre>{% endif %}
<table>
<tr><th>device</th><td>{{ r.device }}</td></tr>
{% for label, value in (r.identity or {}).items() %}<tr><th>{{ label }}</th><td>{{ value }}</td></tr>
{% endfor %}
<tr><th>target</th><td><code>{{ r.target }}</code> ({{ 'emulated card' if r.emulated else 'device under test' }}){% if r.reader %}, reader <code>{{ r.reader }}</code>{% endif %}</td></tr>
<tr><th>suites</th><td>{{ r.suites | join(', ') }}</td></tr>
{% for label, value in (r.endpoint or {}).items() %}<tr><th>{{ label }}</th><td><code>{{ value }}</code></td></tr>
{% endfor %}{% if 'card' in r.suites %}
<tr><th>interface</th><td>{{ r.device_profile.interface }}</td></tr>
<tr><th>ATR</th><td><code>{{ r.atr or '(none seen)' }}</code>{% if r.expected_atr %}; expected <code>{{ r.expected_atr }}</code>{% if r.device_profile.atr_mask %} under mask <code>{{ r.device_profile.atr_mask }}</code>{% endif %}{% endif %}</td></tr>
<tr><th>time budget</th><td>{{ '%.0f' % r.device_profile.budget_ms }} ms for a whole MyKey read and sign</td></tr>
<tr><th>destructive tests</th><td>{{ r.destructive }}{% if r.destructive_how %}: {{ r.destructive_how }}{% endif %}{% if r.not_judged %}<br><span class="untested">a run without {{ 'all its ' if r.destructive == 'run' }}destructive tests cannot judge {{ r.not_judged | length }} requirement(s)</span>: {{ r.not_judged | join(', ') }} (PIN counters, lockout and PIN change need wrong PINs; their verdict below covers only the non-destructive tests){% endif %}</td></tr>{% endif %}
<tr><th>run</th><td>{{ r.started }}, {{ '%.1f' % r.seconds }} s</td></tr>
<tr><th>results</th><td>{% for k, n in r.counts.items() if n %}{{ n }} {{ k }}{{ ', ' if not loop.last }}{% endfor %}</td></tr>
<tr><th>catalogue check</th><td class="{{ r.catalogue.verdict }}">{{ r.catalogue.verdict }}{% if r.catalogue.untested %}: no test for {{ r.catalogue.untested | join(', ') }}{% endif %}</td></tr>
<tr><th>tool</th><td>{{ r.tool.name }} {{ r.tool.version }}</td></tr>
<tr><th>catalogue SHA-256</th><td><code>{{ r.catalogue_sha256 }}</code> (requirements.toml)</td></tr>
<tr><th>results.json SHA-256</th><td><code>{{ digest }}</code></td></tr>
</table>
<h2>Verdict per requirement</h2>
<table><tr><th>requirement</th><th>verdict</th><th>title</th><th>rule (spec.html)</th><th>tests (seconds)</th></tr>
{% for rid, v in rows %}
<tr><td><code>{{ rid }}</code></td><td class="{{ v.verdict }}">{{ v.verdict }}</td>
<td>{{ v.title }}{% if v.not_judged %}<br><span class="small untested">not judged: its destructive tests did not run</span>{% endif %}{% for f in v.failures %}<br><span class="failed">{{ f.reason }}</span> <span class="small">({{ f.test }})</span>{% endfor %}{% for m in v.measurements %}<br><span class="{{ 'passed' if m.passed else 'failed' }}">{{ m.name }}: {{ '{:,.0f}'.format(m.value) }} {{ m.unit }} of {{ '{:,.0f}'.format(m.limit) }} {{ m.unit }}</span>{% endfor %}{% for reason in v.reasons %}<br><span class="small">skipped: {{ reason }}</span>{% endfor %}</td>
<td class="small"><a href="{{ v.spec }}">{{ v.chapter }}</a></td>
<td class="small">{% for t in v.tests %}{{ t.split('::')[-1] }} ({{ '%.3f' % r.tests[t].seconds }})<br>{% endfor %}</td></tr>
{% endfor %}</table>
<h2>Tests{% if r.traces %} and their APDU traces{% endif %}</h2>
<table><tr><th>test</th><th>outcome</th><th>seconds</th><th>trace and its SHA-256</th><th>detail</th></tr>
{% for name, t in r.tests.items() %}
<tr><td>{{ name.split('::')[-1] }}{% if t.destructive %} <span class="small">(destructive)</span>{% endif %}</td>
<td class="{{ t.outcome }}">{{ t.outcome }}</td><td>{{ '%.3f' % t.seconds }}</td>
<td class="small">{% if name in r.traces %}<a href="{{ r.traces[name].file }}"><code>{{ r.traces[name].file }}</code></a><br><code>{{ r.traces[name].sha256 }}</code>{% endif %}</td>
<td>{% if t.reason %}<strong>{{ t.reason }}</strong>{% endif %}{% if t.message and t.outcome == 'failed' %}<details><summary class="small">traceback</summary><pre>{{ t.message }}</pre></details>{% elif t.message %}<span class="small">{{ t.message }}</span>{% endif %}</td></tr>
{% endfor %}</table>
<p class="small">{% if r.traces %}Replay a trace against the emulated card: <code>mynahil conformance replay TRACE</code>.
{% endif %}The SHA-256 above is of <code>results.json</code> as written next to this page.</p>
</body></html>
"""

_ORDER = {"failed": 0, "untested": 1, "skipped": 2, "planned": 3, "passed": 4, "not selected": 5}


def write_html(path: Path, results: dict[str, Any], digest: str) -> None:
    """Write ``index.html``: failed and untested requirements first."""
    environment = Environment(autoescape=select_autoescape(default=True))
    rows = sorted(
        results["requirements"].items(), key=lambda kv: (_ORDER.get(kv[1]["verdict"], 9), kv[0])
    )
    html = environment.from_string(_TEMPLATE).render(r=results, rows=rows, digest=digest)
    path.write_text(html, encoding="utf-8")
