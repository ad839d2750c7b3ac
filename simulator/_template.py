# ruff: noqa: E501  (HTML lines read better unbroken)
"""The HTML report's Jinja2 template (kept in a module so it ships with the package)."""

from __future__ import annotations

REPORT_TEMPLATE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>mynahil simulation: {{ summary.scenario }}</title>
<style>
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 1100px; color: #222; }
h1 { font-size: 1.6rem; } h2 { border-bottom: 1px solid #ccc; padding-bottom: .2rem; }
table { border-collapse: collapse; margin: .5rem 0 1rem; }
td, th { border: 1px solid #ccc; padding: .25rem .6rem; text-align: right; }
th { background: #f4f4f4; } td:first-child, th:first-child { text-align: left; }
.ok { color: #176d2c; font-weight: bold; } .bad { color: #a31515; font-weight: bold; }
img { max-width: 100%; border: 1px solid #eee; margin: .5rem 0; }
.note { color: #555; font-size: .9rem; }
</style></head><body>
<h1>Simulation of {{ summary.scenario }}</h1>
<p>{{ summary.description }}</p>
<p class="note">{{ summary.run.start }} to {{ summary.run.end }}; regions: {{ summary.regions | join(", ") }};
seed {{ summary.seed }}; {{ summary.replications }} replication(s); 95% confidence intervals are
t-based over replications.</p>

<h2>Calibration: simulated vs published</h2>
<p class="note">Every published applications figure of the scenario's data file (people,
cumulative from the opening). Fit rows must be within ±10%, holdout rows (after the cut-off,
never used to fit) within ±20%.</p>
<table><tr><th>figure</th><th>date</th><th>published (people)</th><th>simulated (people)</th><th>error</th><th>role</th><th>within tolerance</th><th>source</th></tr>
{% for row in calibration %}<tr><td>{{ row.label }}</td><td>{{ row.period }}</td>
<td>{{ "{:,}".format(row.published) }}</td>
<td>{% if row.simulated is none %}not covered{% else %}{{ "{:,}".format(row.simulated) }}{% endif %}</td>
<td>{% if row.error is none %}-{% else %}{{ "%+.1f" % (row.error * 100) }}%{% endif %}</td>
<td>{{ row.role }}</td>
<td>{% if row.ok is none %}-{% elif row.ok %}<span class="ok">yes (±{{ "%.0f" % (row.tolerance * 100) }}%)</span>{% else %}<span class="bad">no (±{{ "%.0f" % (row.tolerance * 100) }}%)</span>{% endif %}</td>
<td><a href="{{ row.url }}">{{ row.source }}</a></td></tr>
{% endfor %}</table>
{% if plots.cumulative %}<img alt="cumulative applications" src="{{ plots.cumulative }}">{% endif %}

<h2>Input parameters</h2>
<table><tr><th>parameter</th><th>value</th><th>from</th></tr>
{% for name, value, origin in parameters %}<tr><td>{{ name }}</td><td>{{ value }}</td><td>{{ origin }}</td></tr>
{% endfor %}</table>

<h2>Headline figures</h2>
<table><tr><th>figure</th><th>unit</th><th>mean</th><th>95% CI</th></tr>
{% for name, m in summary.metrics.items() %}<tr><td>{{ name }}</td><td>{{ unit_of(name) }}</td><td>{{ fmt(m.mean) }}</td>
<td>{{ fmt(m.ci95[0]) }} .. {{ fmt(m.ci95[1]) }}</td></tr>
{% endfor %}</table>

<h2>Arrivals and completions</h2>
{% for key in ["channels", "lockouts"] %}{% if plots[key] %}<img alt="{{ key }}" src="{{ plots[key] }}">{% endif %}{% endfor %}

<h2>Queues at procedure spots</h2>
{% if plots.waits %}<img alt="waits" src="{{ plots.waits }}">{% endif %}

<h2>Platform</h2>
{% if plots.platform %}<img alt="platform" src="{{ plots.platform }}">{% endif %}

{% if sweep %}<h2>What-if sweep: {{ sweep.sweep.field }}</h2>
{% if sweep.target %}<p>Target: <code>{{ sweep.target.text }}</code>.
{% if sweep.best is not none %}Smallest value that meets it: <b>{{ fmt(sweep.best) }}</b>.
{% else %}<span class="bad">No swept value meets it.</span>{% endif %}</p>{% endif %}
<table><tr><th>{{ sweep_labels[0] }}</th><th>{{ sweep_labels[1] }}</th><th>meets target</th></tr>
{% for p in sweep.points %}<tr><td>{{ fmt(p.value) }}</td><td>{{ fmt(p.measured) }}</td>
<td>{% if p.met is none %}-{% elif p.met %}<span class="ok">yes</span>{% else %}<span class="bad">no</span>{% endif %}</td></tr>
{% endfor %}</table>
{% if plots.sweep %}<img alt="sweep" src="{{ plots.sweep }}">{% endif %}{% endif %}

{% if hil %}<h2>Hardware in the loop: assumed vs measured</h2>
<p>{{ hil.people }} simulated holders made the MyKey reservation for real against {{ hil.target }}.</p>
<table><tr><th>quantity</th><th>assumed by the scenario</th><th>measured</th></tr>
{% for row in hil.rows %}<tr><td>{{ row[0] }}</td><td>{{ row[1] }}</td><td>{{ row[2] }}</td></tr>{% endfor %}
</table>
{% if plots.hil %}<img alt="hil" src="{{ plots.hil }}">{% endif %}{% endif %}
{{ operators_html }}
<h2>What is approximated</h2>
<p class="note">Holders are drawn in cohorts (channel x hour x region); queues are computed per
time step as M/M/c (Erlang C, Allen-Cunneen for the platform) below saturation and as a fluid
backlog above it; platform p95 response adds the wait and service 95th percentiles (an upper
bound). See simulator/README.md.</p>
</body></html>
"""
