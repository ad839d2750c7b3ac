"""The Locust side: a holder (user) and the scenario's compressed arrival curve (shape).

Importing this module imports Locust, which monkey-patches the process with gevent: only the
``loadtest`` command (and its worker processes) import it, never the rest of the CLI.

Every request is named ``<stage>: <step>`` so Locust keeps latency and errors per step, and
the report merges the steps of a stage:

* ``reserve``: ``POST /v1/mykey/challenges`` (issue), ``POST /v1/mykey/ids`` with the card's
  certificate and its signature over the nonce;
* ``login``: ``POST /v1/mykey/challenges`` (login), ``POST /v1/mykey/sessions/card``, then
  ``GET /v1/mykey/me`` with the session.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

import gevent  # type: ignore[import-untyped]
import gevent.ssl  # type: ignore[import-untyped]
from locust import FastHttpUser, LoadTestShape, constant_pacing, task

from .cards import Card, CardDeck
from .plan import LoadPlan

__all__ = ["STAGES", "CurveShape", "Holder", "configure"]

STAGES = ("reserve", "login")


class _Setup:
    deck: CardDeck | None = None
    stages: tuple[str, ...] = STAGES


def configure(
    deck: CardDeck | None, stages: tuple[str, ...], pacing: float, ca_file: str | None = None
) -> None:
    """The cards this process deals to its holders, the stages they go through, their pace,
    and the CA an https platform's certificate must chain to (None: the system's store)."""
    _Setup.deck = deck
    _Setup.stages = stages
    Holder.wait_time = constant_pacing(pacing)
    Holder.ssl_context_factory = _trusting(ca_file)


def _trusting(ca_file: str | None) -> Callable[..., Any]:
    """An SSL context factory for geventhttpclient that verifies the server against
    ``ca_file`` (it passes its own default bundle as ``cafile``; ours wins when given)."""

    def factory(cafile: str | None = None, **_: Any) -> Any:
        return gevent.ssl.create_default_context(cafile=ca_file or cafile)

    return factory


class _Refused(Exception):
    """A step failed (already recorded in Locust's stats); the holder stops there."""


class Holder(FastHttpUser):
    """One holder per iteration: a fresh card reserves its MyKey ID, then logs in with it."""

    wait_time = constant_pacing(1.0)
    # Each user is one holder at a time; keep-alive like a browser or phone app would.
    network_timeout = 30.0
    connection_timeout = 10.0
    insecure = False  # Locust's default skips TLS verification: an https platform is verified

    @task
    def holder(self) -> None:
        deck = _Setup.deck
        if deck is None:
            raise RuntimeError("mynahil.simulator.loadtest.locustfile.configure() was not called")
        card = deck.take()
        while card is None:  # more holders at once than cards: wait for one to be returned
            gevent.sleep(0.05)
            card = deck.take()
        try:
            if "reserve" in _Setup.stages:
                self._reserve(card)
            if "login" in _Setup.stages:
                self._login(card)
        except _Refused:
            pass
        finally:
            deck.give_back(card)

    def _challenge(self, stage: str, purpose: str) -> tuple[str, bytes]:
        data = self._call("POST", "/v1/mykey/challenges", f"{stage}: challenge", 201,
                          json={"purpose": purpose})  # fmt: skip
        return str(data["challenge_id"]), base64.b64decode(str(data["nonce"]))

    def _proof(self, stage: str, purpose: str, card: Card) -> dict[str, str]:
        challenge_id, nonce = self._challenge(stage, purpose)
        return {
            "challenge_id": challenge_id,
            "certificate": card.certificate_b64,
            "signature": card.sign(nonce),
        }

    def _reserve(self, card: Card) -> None:
        body = self._proof("reserve", "issue", card)
        data = self._call("POST", "/v1/mykey/ids", "reserve: id", (200, 201), json=body)
        if not data.get("mykey_id"):
            raise _Refused

    def _login(self, card: Card) -> None:
        body = self._proof("login", "login", card)
        session = self._call("POST", "/v1/mykey/sessions/card", "login: session", 201, json=body)
        headers = {"Authorization": f"Bearer {session['token']}"}
        self._call("GET", "/v1/mykey/me", "login: me", 200, headers=headers)

    def _call(
        self, method: str, path: str, name: str, expected: int | tuple[int, ...], **kwargs: Any
    ) -> dict[str, Any]:
        wanted = (expected,) if isinstance(expected, int) else expected
        data: dict[str, Any] | None = None
        with self.client.request(method, path, name=name, catch_response=True, **kwargs) as resp:
            if resp.status_code not in wanted:
                resp.failure(f"HTTP {resp.status_code} {_problem_code(resp)}".strip())
            else:
                try:
                    data = resp.json()
                except ValueError:
                    resp.failure("answer is not JSON")
                else:
                    resp.success()
        if not isinstance(data, dict):
            raise _Refused
        return data


def _problem_code(resp: Any) -> str:
    """The RFC 9457 problem's stable ``code``, when the answer has one."""
    try:
        body = resp.json()
    except ValueError:
        return ""
    return str(body.get("code", "")) if isinstance(body, dict) else ""


class CurveShape(LoadTestShape):
    """Users and spawn rate follow the plan, second by second; stops when the plan ends."""

    def __init__(self, plan: LoadPlan) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.plan = plan

    def tick(self) -> tuple[int, float] | None:
        now = self.plan.at(self.get_run_time())  # type: ignore[no-untyped-call]
        if now is None:
            return None
        return now.users, now.spawn_rate
