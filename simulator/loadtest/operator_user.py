"""The Locust side of the operator replay: an operator user that sends signed report batches.

Imports Locust (gevent's monkey-patching): only the ``loadtest`` command imports it.
"""

from __future__ import annotations

import base64
import itertools
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from locust import FastHttpUser, constant_pacing, task
from locust.runners import MasterRunner

from mynahil.reference_impl.points.signing import Signer
from mynahil.timezone import JST

from ..operators.registration import OperatorIdentity
from .operators import Acknowledged, batch_body
from .plan import LoadPlan
from .runner import LoadTestConfig, Outcome, _start, _work, follow_curve, locust_environment
from .timeline import Timeline

__all__ = ["OperatorReplay", "OperatorUser", "run_operator_replay"]

_ACKS_KEY = "mynahil_operator_acks"


@dataclass
class OperatorReplay:
    identities: list[OperatorIdentity]
    batch: int
    resend_share: float
    acknowledged: Acknowledged
    plan: LoadPlan


class _Setup:
    replay: OperatorReplay | None = None
    turn = itertools.count()


class OperatorUser(FastHttpUser):
    """One registered operator: a signed batch of charges every ``pacing`` seconds; now and
    then its last acknowledged batch again (a retry after a lost answer: decided once)."""

    wait_time = constant_pacing(1.0)
    network_timeout = 60.0
    connection_timeout = 10.0
    insecure = False

    def on_start(self) -> None:
        replay = _Setup.replay
        if replay is None:
            raise RuntimeError("mynahil.simulator.loadtest.operator_user: no replay configured")
        self.identity = replay.identities[next(_Setup.turn) % len(replay.identities)]
        key = Ed25519PrivateKey.from_private_bytes(base64.b64decode(self.identity.private_key))
        self.signer = Signer(self.identity.operator_id, key)
        self.rng = random.Random()
        self.last: bytes | None = None
        self.started = time.time()
        # The platform's business clock: a charge is never dated after it (the platform refuses
        # a report dated more than 5 minutes ahead as future_dated and keeps nothing).
        health = self.client.get("/v1/health", name="health")
        self.platform_time = datetime.fromisoformat(health.json()["time"])

    @task
    def report(self) -> None:
        replay = _Setup.replay
        assert replay is not None
        if self.last is not None and self.rng.random() < replay.resend_share:
            body = self.last
        else:
            # The transactions happen at the replayed moment of the curve (JST).
            elapsed = (time.time() - self.started) * replay.plan.compress
            at = replay.plan.start.replace(tzinfo=JST) + timedelta(seconds=elapsed)
            platform_now = self.platform_time + timedelta(seconds=time.time() - self.started)
            at = min(at, platform_now)  # the curve drives the rate; the clock bounds the date
            body, _ = batch_body(self.identity, replay.batch, at, self.rng)
        target = f"/v1/operators/{self.identity.operator_id}/transactions"
        headers = self.signer.headers("POST", target, body)
        headers["Content-Type"] = "application/json"
        name = f"report: {self.identity.operator_id}"
        with self.client.request("POST", target, data=body.decode(), headers=headers, name=name,
                                 catch_response=True) as resp:  # fmt: skip
            if resp.status_code != 200:
                resp.failure(f"HTTP {resp.status_code}")
                return
            try:
                decisions = resp.json()["decisions"]
            except (ValueError, KeyError):
                resp.failure("answer is not a list of decisions")
                return
            resp.success()
        replay.acknowledged.add(self.identity.operator_id, decisions)
        self.last = body


def run_operator_replay(
    replay: OperatorReplay, config: LoadTestConfig, say: Callable[[str], None] = print
) -> Outcome | None:
    """Replay the operators' curve against ``config.platform_url``; None for a worker."""
    logging.getLogger("locust").setLevel(logging.WARNING)
    _Setup.replay = replay
    OperatorUser.wait_time = constant_pacing(replay.plan.pacing)
    plan = replay.plan
    timeline = Timeline()
    env = locust_environment(OperatorUser, plan, config.platform_url, timeline)
    acknowledged = replay.acknowledged
    if config.mode == "worker":

        def send_acks(client_id: str, data: dict[str, Any]) -> None:
            data[_ACKS_KEY] = acknowledged.drain()

        env.events.report_to_master.add_listener(send_acks)  # type: ignore[no-untyped-call]
        _work(env, config, timeline, say)
        return None
    if config.mode == "master":

        def take_acks(client_id: str, data: dict[str, Any]) -> None:
            acknowledged.absorb(data.get(_ACKS_KEY, {}))

        env.events.worker_report.add_listener(take_acks)  # type: ignore[no-untyped-call]
    runner = _start(env, config, timeline, say)
    say(
        f"replaying operators' reports: {plan.hours:g} h from {plan.start:%Y-%m-%d %H:%M} in "
        f"{plan.duration_s} s (x{plan.compress:g}); peak {plan.peak_users} operator users, "
        f"{replay.batch} reports per batch"
    )
    started, finished = follow_curve(runner, config, timeline, say)
    workers = runner.worker_count if isinstance(runner, MasterRunner) else 1
    runner.quit()
    return Outcome(
        plan=plan, config=config, started=started, finished=finished,
        entries={name: entry for (name, _method), entry in env.stats.entries.items()},
        total=env.stats.total, timeline=timeline.rows(started), cards_issued=0,
        cards_reused=0, workers=workers,
        errors={f"{e.name}: {e.error}": e.occurrences for e in env.stats.errors.values()},
    )  # fmt: skip
