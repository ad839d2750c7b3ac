"""`mynahil helpdesk stop|restart` against `mynahil serve` on loopback (issue 13 item 5): the
help desk stops a leaked MyKey ID over HTTP with its staff token, and the holder is told why."""

from __future__ import annotations

from pathlib import Path

import pytest

from mynahil.card import MyNumberCard
from mynahil.card_emulator import emulated_reader, load_card
from mynahil.reference_impl.client import ClientRefusal, PlatformClient
from tests.support import MYNAHIL, PIN, free_port, mynahil, running


def _card(path: Path) -> MyNumberCard:
    return emulated_reader(load_card(path))


def test_the_help_desk_stops_and_restarts_a_mykey_id(store_url: str, tmp_path: Path) -> None:
    ca, card = tmp_path / "jlis", tmp_path / "card.json"
    added = mynahil("staff", "add", "--db", store_url, "--role", "helpdesk", "--name", "Desk 2")
    assert added.returncode == 0, added.stderr
    token = added.stdout.strip().splitlines()[-1]
    hotline = mynahil("staff", "add", "--db", store_url, "--role", "jlis-hotline", "--name", "H")
    hotline_token = hotline.stdout.strip().splitlines()[-1]
    assert mynahil("card", "new", "--out", str(card), "--ca", str(ca)).returncode == 0
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    serve = [*MYNAHIL, "serve", "--db", store_url, "--port", str(port), "--ca", str(ca)]
    with running(serve, f"{url}/v1/health"):
        client = PlatformClient.connect(url)
        mykey_id = client.reserve(_card(card), PIN)
        desk = ("--url", url, "--token", token)

        no_reason = mynahil("helpdesk", "stop", mykey_id, "--reason", " ", *desk)
        assert no_reason.returncode != 0
        assert "--reason" in no_reason.stderr
        wrong_role = mynahil("helpdesk", "stop", mykey_id, "--reason", "leak", "--url", url,
                             "--token", hotline_token)  # fmt: skip
        assert wrong_role.returncode != 0
        assert "staff_forbidden" in wrong_role.stderr

        stopped = mynahil("helpdesk", "stop", mykey_id, "--reason", "password leaked", *desk)
        assert stopped.returncode == 0, stopped.stderr
        assert f"{mykey_id}: stopped" in stopped.stdout
        with pytest.raises(ClientRefusal) as refused:
            client.login(_card(card), PIN)
        assert refused.value.code == "mykey_id_stopped"

        restarted = mynahil("helpdesk", "restart", mykey_id, "--reason", "investigated", *desk)
        assert restarted.returncode == 0, restarted.stderr
        assert client.login(_card(card), PIN)
