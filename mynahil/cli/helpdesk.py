"""``mynahil helpdesk stop|restart MYKEY_ID --reason …``: the MyKey help desk, over the
platform's HTTP API with a staff token in role ``helpdesk`` (``mynahil staff add --role
helpdesk``). Every action is audited by the platform with who did it and why."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape

from ._common import console, fail

__all__ = ["helpdesk_app"]

helpdesk_app = typer.Typer(
    help="The MyKey help desk: stop a MyKey ID that may have leaked (no login, no points), "
    "and restart it after investigating.",
    no_args_is_help=True,
)

MyKeyId = Annotated[str, typer.Argument(help="The MyKey ID (8 characters).", show_default=False)]
Reason = Annotated[
    str,
    typer.Option(help="Why (required; kept in the audit log with who did it).", show_default=False),
]
Url = Annotated[
    str, typer.Option(help="The platform's URL (mynahil serve).", envvar="MYNAHIL_PLATFORM_URL")
]
Token = Annotated[
    str,
    typer.Option(
        help="A help-desk staff token (mynahil staff add --role helpdesk).",
        envvar="MYNAHIL_STAFF_TOKEN",
        show_default=False,
    ),
]


def _act(action: str, mykey_id: str, reason: str, url: str, token: str) -> None:
    import httpx

    if not reason.strip():
        fail("--reason: say why (it is kept in the audit log)")
    target = f"{url.rstrip('/')}/v1/helpdesk/mykeys/{mykey_id}/{action}"
    try:
        answer = httpx.post(
            target,
            json={"reason": reason},
            headers={"Authorization": f"Bearer {token}"},
            timeout=30,
        )
    except httpx.HTTPError as exc:
        fail(f"--url: cannot reach the platform at {url}: {exc}")
    if answer.status_code != 200:
        try:
            body = answer.json()
            detail = f"{body.get('code')}: {body.get('detail')}"
        except ValueError:
            detail = answer.text[:200]
        fail(f"the platform refused ({answer.status_code}) {detail}", code=1)
    state = answer.json()
    console.print(f"{escape(state['mykey_id'])}: {escape(state['status'])}")


@helpdesk_app.command("stop")
def stop(
    mykey_id: MyKeyId,
    reason: Reason,
    token: Token,
    url: Url = "http://127.0.0.1:8000",
) -> None:
    """Stop a MyKey ID: no login (card or password), no application, no points."""
    _act("stop", mykey_id, reason, url, token)


@helpdesk_app.command("restart")
def restart(
    mykey_id: MyKeyId,
    reason: Reason,
    token: Token,
    url: Url = "http://127.0.0.1:8000",
) -> None:
    """Let a stopped MyKey ID be used again."""
    _act("restart", mykey_id, reason, url, token)
