"""The demo's point-system part: reserve, apply (with J-LIS's card-application date), charge,
cap reached, retry, refund, settlement.

The platform replays round 1 (its clock starts on 2020-09-10, JST noon) and a sample payment
service runs beside it, each a real server on a loopback port: the platform verifies accounts
by calling the operator (signed), the operator reports charges through its signed client.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path

from mynahil.card_emulator import emulated_reader
from mynahil.card_emulator.pin import DEFAULT_PASSWORD, DEFAULT_PIN
from mynahil.reference_impl.client import ClientRefusal, PlatformClient
from mynahil.reference_impl.jlis import lifecycle, random_holder
from mynahil.reference_impl.operator import OperatorBooks, OperatorClient
from mynahil.reference_impl.platform import build_platform, serving, shifted_clock
from mynahil.reference_impl.points import TransactionKind
from mynahil.reference_impl.sandbox import sample_operator

from ..card import MyNumberCard

__all__ = ["REPLAYED_FROM", "points_stories"]

Story = Callable[[str, str, str], None]
PIN, PASSWORD = DEFAULT_PIN, DEFAULT_PASSWORD
REPLAYED_FROM = datetime(2020, 9, 10, 3, 0, tzinfo=UTC)
OPERATOR, SERVICE = "qr-pay-inc", "qr-pay"
CARD_APPLIED_ON = date(2020, 5, 25)  # 申請受付日; the card was issued on 2020-07-01


def points_stories(folder: Path, story: Story, progress: Callable[[str], None]) -> Path:
    """Run the stories; returns the settlement CSV written into ``folder``."""
    progress("point stories: apply, charge, cap, retry, refund, settlement (HTTP, round 1)")
    platform = build_platform(
        f"sqlite:///{folder / 'points.db'}", folder / "points-jlis", as_of=REPLAYED_FROM
    )
    rng = random.Random(11)

    def card(applied_on: date | None = None) -> MyNumberCard:
        state = lifecycle.issue(
            platform.jlis.ca, platform.jlis.registry, random_holder(rng), pin=PIN,
            password=PASSWORD, issued_on=date(2020, 7, 1), applied_on=applied_on,
        )  # fmt: skip
        return emulated_reader(state)

    def attempt(action: Callable[[], object]) -> str:
        try:
            action()
        except ClientRefusal as refusal:
            return f"refused: {refusal.code}"
        return "accepted"

    try:
        with serving(platform.app) as url:
            operator = sample_operator(
                platform, url, operator_id=OPERATOR, operator_name="QR Pay Inc.",
                service_id=SERVICE, service_name="QR Pay",
                clock=shifted_clock(platform.mykey.clock()),
            )  # fmt: skip
            with operator as sample:
                books, operator_client = sample.books, sample.client
                holder = PlatformClient.connect(url)
                hanako, taro = card(applied_on=CARD_APPLIED_ON), card()
                holder.reserve(hanako, PIN)
                holder.reserve(taro, PIN)
                account = books.open_account("Hanako")
                story(
                    "Applying with a wrong security code is refused",
                    "refused: account_not_verified",
                    attempt(lambda: holder.apply(hanako, PIN, SERVICE, account.account_id, "x")),
                )
                application: dict[str, object] = {}
                story(
                    "Applying with the card, service ID and security code is accepted",
                    "accepted",
                    attempt(
                        lambda: application.update(
                            holder.apply(
                                hanako, PIN, SERVICE, account.account_id, account.security_code
                            )
                        )
                    ),
                )
                story(
                    "The application keeps J-LIS's card-application date, not the issue date",
                    CARD_APPLIED_ON.isoformat(),
                    str(application.get("card_applied_on")),
                )
                story(
                    "Someone else's payment service ID is refused",
                    "refused: account_taken",
                    attempt(
                        lambda: holder.apply(
                            taro, PIN, SERVICE, account.account_id, account.security_code
                        )
                    ),
                )
                feed = operator_client.feed()
                story(
                    "The operator's feed lists the application",
                    account.account_id,
                    ",".join(a["account_id"] for a in feed),
                )

                _money_stories(story, folder, books, account.account_id, operator_client,
                               platform.mykey.clock)  # fmt: skip
                _revocation_story(story, holder, card(), books, operator_client,
                                  platform.mykey.clock)  # fmt: skip
        problems = platform.points.violations()
        story("The ledger's invariants hold", "sound", "; ".join(problems) or "sound")
    finally:
        platform.close()
    return folder / f"settlement-{OPERATOR}-{REPLAYED_FROM:%Y-%m}.csv"


def _revocation_story(
    story: Story,
    holder: PlatformClient,
    jiro: MyNumberCard,
    books: OperatorBooks,
    operator_client: OperatorClient,
    clock: Callable[[], datetime],
) -> None:
    """Issue 13's reported defect, told as a story: the cap is the person's, not the ID's."""

    def charge(account_id: str, amount: int) -> str:
        decision = operator_client.report([books.book(account_id, amount, clock())])[0]
        books.answered([decision])
        return f"{decision.outcome.value} {decision.points}"

    first_id = holder.reserve(jiro, PIN)
    own = books.open_account("Jiro")
    holder.apply(jiro, PIN, SERVICE, own.account_id, own.security_code)
    earned = charge(own.account_id, 20_000)
    token = holder.login(jiro, PIN)
    holder.http.delete("/v1/mykey/me", headers={"Authorization": f"Bearer {token}"})
    second_id = holder.reserve(jiro, PIN)
    other = books.open_account("Jiro, second account")
    try:
        holder.apply(jiro, PIN, SERVICE, other.account_id, other.security_code)
        second_choice = "accepted"
    except ClientRefusal as refusal:
        second_choice = f"refused: {refusal.code}"
    again = charge(own.account_id, 20_000)
    story(
        "A revoked ID does not reset the cap: earn 5,000, revoke, reserve a new ID with the "
        "same card, apply with another account, charge 20,000 again",
        "granted 5000; new ID; refused: already_applied; capped 0",
        f"{earned}; {'new ID' if second_id != first_id else 'same ID'}; {second_choice}; {again}",
    )


def _money_stories(
    story: Story,
    folder: Path,
    books: OperatorBooks,
    account_id: str,
    operator_client: OperatorClient,
    clock: Callable[[], datetime],
) -> None:
    """Charges to the cap, a retry, a refund, the settlement and the reconciliation."""

    def charge(
        amount: int,
        kind: TransactionKind = TransactionKind.CHARGE,
        refund_of: str | None = None,
    ) -> tuple[str, int, int | None, str]:
        report = books.book(account_id, amount, clock(), kind=kind, refund_of=refund_of)
        decision = operator_client.report([report])[0]
        books.answered([decision])
        return (decision.outcome.value, decision.points, decision.total_after,
                report.transaction_id)  # fmt: skip

    first = charge(12_000)
    story("A 12,000-yen charge earns 25%", "granted 3000 (total 3000)",
          f"{first[0]} {first[1]} (total {first[2]})")  # fmt: skip
    second = charge(12_000)
    story("The next 12,000 yen reach the 5,000-yen cap", "capped 2000 (total 5000)",
          f"{second[0]} {second[1]} (total {second[2]})")  # fmt: skip
    retried = operator_client.report([books.transactions[first[3]].report])[0]
    story("A retried report gets its first answer and grants nothing more",
          "granted 3000, replayed", f"{retried.outcome.value} {retried.points}"
          f"{', replayed' if retried.replayed else ''}")  # fmt: skip
    refund = charge(4_000, kind=TransactionKind.REFUND, refund_of=first[3])
    story("Refunding 4,000 of the first charge takes back 1,000",
          "taken_back -1000 (total 4000)",
          f"{refund[0]} {refund[1]} (total {refund[2]})")  # fmt: skip
    month = clock().strftime("%Y-%m")
    settlement = operator_client.settlement(month)
    story(f"The {month} settlement pays the net points", "4000",
          str(settlement["net"]))  # fmt: skip
    csv_path = folder / f"settlement-{OPERATOR}-{month}.csv"
    csv_path.write_text(operator_client.settlement(month, "csv"), encoding="utf-8")
    books_csv = "transaction_id,kind,amount,points\n" + "".join(
        f"{r.transaction_id},{r.kind},{r.amount},{r.points}\n" for r in books.records(month)
    )
    differences = operator_client.reconcile(month, books_csv)
    story("The operator's books reconcile with the platform's", "0 differences",
          f"{len(differences)} differences")  # fmt: skip
