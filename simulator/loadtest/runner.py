"""Running Locust as a library: local (one process), master, or worker.

Import this only from the ``loadtest`` command: it imports Locust (and so gevent's
monkey-patching). ``run`` returns the figures the report writes; a worker returns None.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gevent  # type: ignore[import-untyped]
from locust import User
from locust.env import Environment
from locust.runners import STATE_STOPPED, MasterRunner, Runner
from locust.stats import RequestStats, StatsEntry

from mynahil.tls import client_verify

from .cards import CardDeck, issue_cards, platform_date
from .locustfile import STAGES, CurveShape, Holder, configure
from .plan import LoadPlan
from .timeline import Timeline, stage_of

__all__ = ["LoadTestConfig", "Outcome", "run"]

_TIMELINE_KEY = "mynahil_timeline"


@dataclass
class LoadTestConfig:
    platform_url: str
    ca: Path
    stages: tuple[str, ...] = STAGES
    mode: str = "local"  # local | master | worker
    master_host: str = "127.0.0.1"
    master_port: int = 5557
    master_bind_host: str = "*"
    expect_workers: int = 1
    cards: int | None = None
    seed: int = 1
    ca_file: str | None = None  # what an https platform's certificate must chain to


@dataclass
class Outcome:
    """What the run measured: Locust's stats entries and our per-second timeline."""

    plan: LoadPlan
    config: LoadTestConfig
    started: float
    finished: float
    entries: dict[str, StatsEntry]
    total: StatsEntry
    timeline: list[dict[str, Any]]
    cards_issued: int
    cards_reused: int
    workers: int
    errors: dict[str, int] = field(default_factory=dict)

    def stage_entries(self) -> dict[str, StatsEntry]:
        """The steps of each stage merged into one entry (Locust's own histogram merge)."""
        merged: dict[str, StatsEntry] = {}
        for name, entry in self.entries.items():
            stage = stage_of(name)
            if stage not in merged:
                merged[stage] = StatsEntry(entry.stats, stage, "", use_response_times_cache=False)
            merged[stage].extend(entry)
        return merged


def run(
    plan: LoadPlan, config: LoadTestConfig, say: Callable[[str], None] = print
) -> Outcome | None:
    """Replay ``plan`` against ``config.platform_url``; None for a worker."""
    logging.getLogger("locust").setLevel(logging.WARNING)
    timeline = Timeline()
    deck = _deal_cards(plan, config, say)
    env = locust_environment(Holder, plan, config.platform_url, timeline)
    if config.mode == "worker":
        _work(env, config, timeline, say)
        return None
    runner = _start(env, config, timeline, say)
    say(
        f"replaying {plan.hours:g} h from {plan.start:%Y-%m-%d %H:%M} in {plan.duration_s} s "
        f"(x{plan.compress:g}); peak {plan.peak_users} users"
    )
    started, finished = follow_curve(runner, config, timeline, say)
    workers = runner.worker_count if isinstance(runner, MasterRunner) else 1
    runner.quit()
    return Outcome(
        plan=plan,
        config=config,
        started=started,
        finished=finished,
        entries={name: entry for (name, _method), entry in env.stats.entries.items()},
        total=env.stats.total,
        timeline=timeline.rows(started),
        cards_issued=len(deck.cards) if deck is not None else 0,
        cards_reused=deck.reused if deck is not None else 0,
        workers=workers,
        errors={f"{e.name}: {e.error}": e.occurrences for e in env.stats.errors.values()},
    )


def locust_environment(
    user_class: type[User], plan: LoadPlan, platform_url: str, timeline: Timeline
) -> Environment:
    """A Locust environment that follows ``plan``'s curve against the platform, every request
    recorded in ``timeline`` as well as in Locust's own stats."""
    env = Environment(
        user_classes=[user_class],
        shape_class=CurveShape(plan),
        host=platform_url.rstrip("/"),
        stop_timeout=None,
    )
    env.stats = RequestStats(use_response_times_cache=False)

    def on_request(
        name: str, response_time: float, exception: BaseException | None, **_: Any
    ) -> None:
        timeline.on_request(name, response_time, exception is not None, time.time())

    env.events.request.add_listener(on_request)  # type: ignore[no-untyped-call]
    return env


PROGRESS_EVERY_S = 10.0


def follow_curve(
    runner: Runner,
    config: LoadTestConfig,
    timeline: Timeline,
    say: Callable[[str], None] | None = None,
) -> tuple[float, float]:
    """Run the curve to its end, sampling users into ``timeline``; (start, end) wall times.
    Every ``PROGRESS_EVERY_S`` seconds ``say`` gets the users and the requests so far (a
    master hears of its workers' requests with their stats reports, every 3 s). A master
    waits for its workers' last stats reports before the final drain."""
    started = time.time()
    next_progress = started + PROGRESS_EVERY_S
    runner.start_shape()
    while runner.state != STATE_STOPPED or runner.shape_greenlet is not None:
        if config.mode == "local":
            timeline.absorb(timeline.drain())
        now = time.time()
        timeline.sample_users(now, runner.user_count)
        if say is not None and now >= next_progress:
            total = runner.stats.total
            say(
                f"{now - started:.0f} s: {runner.user_count} users, "
                f"{total.num_requests:,} requests, {total.num_failures:,} failed"
            )
            next_progress += PROGRESS_EVERY_S
        gevent.sleep(0.25)
    finished = time.time()
    if config.mode == "master":
        gevent.sleep(3.5)
    timeline.absorb(timeline.drain())
    return started, finished


def _deal_cards(
    plan: LoadPlan, config: LoadTestConfig, say: Callable[[str], None]
) -> CardDeck | None:
    """Cards for this process's holders (none for a master: it runs no users)."""
    if config.mode == "master":
        configure(None, config.stages, plan.pacing, config.ca_file)
        return None
    count = config.cards or max(plan.expected_holders + plan.max_users, 1)
    day = platform_date(config.platform_url, verify=client_verify(config.ca_file))
    say(f"issuing {count} cards from {config.ca} (platform date {day})")
    # Workers started with the same options must not all issue the same holders.
    seed = config.seed if config.mode == "local" else config.seed * 1_000_003 + os.getpid()
    deck = CardDeck(issue_cards(config.ca, count, issued_on=day, seed=seed))
    configure(deck, config.stages, plan.pacing, config.ca_file)
    return deck


def _work(
    env: Environment, config: LoadTestConfig, timeline: Timeline, say: Callable[[str], None]
) -> None:
    """A worker: send what it measured with each stats report, until the master quits."""

    def report(client_id: str, data: dict[str, Any]) -> None:
        data[_TIMELINE_KEY] = timeline.drain()

    env.events.report_to_master.add_listener(report)  # type: ignore[no-untyped-call]
    runner = env.create_worker_runner(config.master_host, config.master_port)
    say(f"worker connected to {config.master_host}:{config.master_port}; waiting")
    runner.greenlet.join()


def _start(
    env: Environment, config: LoadTestConfig, timeline: Timeline, say: Callable[[str], None]
) -> Runner:
    """A local runner, or a master once ``expect_workers`` workers joined."""
    if config.mode != "master":
        return env.create_local_runner()

    def absorb(client_id: str, data: dict[str, Any]) -> None:
        timeline.absorb(data.get(_TIMELINE_KEY, []))

    env.events.worker_report.add_listener(absorb)  # type: ignore[no-untyped-call]
    runner = env.create_master_runner(config.master_bind_host, config.master_port)
    say(f"master on port {config.master_port}: waiting for {config.expect_workers} worker(s)")
    while runner.worker_count < config.expect_workers:
        gevent.sleep(0.5)
    return runner
