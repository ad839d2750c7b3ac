"""Load replay: a scenario's arrival curve as real HTTP load on a running platform, with Locust.

``mynahil loadtest SCENARIO --platform URL --ca DIR`` compresses the curve
(:func:`mynahil.simulator.arrival_curve`) in time, scales it to ``--max-users``, and has Locust
users act as holders with cards issued from the platform's CA: reserve a MyKey ID, then log in with
the card and show it. Writes ``stats.json``, ``stats.csv``, ``loadtest.png``, ``report.md``.

Only :mod:`.plan` is imported here; :mod:`.runner` and :mod:`.locustfile` import Locust, which
monkey-patches the process with gevent, so only the ``loadtest`` command imports them.

Beside it, :mod:`.soak` (``mynahil soak``): the whole stack in one process under a bounded mixed
load (holders, a sample operator), watching latency and memory.
"""

from __future__ import annotations

from .plan import LoadPlan, Tick, build_plan

__all__ = ["LoadPlan", "Tick", "build_plan"]
