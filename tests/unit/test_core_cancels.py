"""Which working orders an emergency stop cancels (gatekeeper.core.cancels): everything but
risk-reducing orders, each judged against the account without it."""

from __future__ import annotations

from dataclasses import replace

from gatekeeper.core.cancels import CancelAction, CancelPlan, plan_cancels
from gatekeeper.core.snapshot import RiskParameters, WorkingOrder
from tests.unit.builders import NOW, account_a, bto, leg, order, stc, sto, working

PARAMS = RiskParameters()


def plans(*orders: WorkingOrder) -> dict[str | None, CancelAction]:
    result = plan_cancels(account_a(working_orders=orders), PARAMS, NOW)
    return {p.order_id: p.action for p in result}


def test_opening_orders_are_cancelled_and_a_close_of_held_shares_is_kept() -> None:
    assert plans(
        working(bto("AAPL", 20, "150.00"), "1"),
        working(stc("TQQQ", 100, "49.00"), "2"),
        working(sto("AAPL", 10, "151.00"), "3"),
    ) == {"1": CancelAction.CANCEL, "2": CancelAction.KEEP, "3": CancelAction.CANCEL}


def test_a_close_larger_than_the_position_is_not_risk_reducing() -> None:
    # 150 TQQQ "to close" with 100 held: 50 of it opens a short.
    assert plans(working(stc("TQQQ", 150), "1")) == {"1": CancelAction.CANCEL}


def test_closes_are_judged_after_the_other_pending_closes() -> None:
    # Two closes of 60 each against 100 held: each one, judged with the other still working,
    # closes more than what is left, so both are cancelled rather than guessed at.
    assert plans(working(stc("TQQQ", 60), "1"), working(stc("TQQQ", 60), "2")) == {
        "1": CancelAction.CANCEL,
        "2": CancelAction.CANCEL,
    }


def test_selling_the_long_call_is_not_risk_reducing_but_buying_back_a_short_is() -> None:
    # Held: +2 SPY 600C. Selling them closes; it reduces SPY's risk, so it is kept.
    call = "SPY   261218C00600000"
    kept = working(order(leg(call, 2, "Sell to Close", "Equity Option"), price="4.00",
                         effect="Credit"), "1")  # fmt: skip
    assert plans(kept) == {"1": CancelAction.KEEP}


def test_an_order_whose_price_is_unknown_is_cancelled() -> None:
    snapshot = account_a(working_orders=(working(stc("TQQQ", 100), "1"),))
    snapshot = replace(snapshot, quotes={})
    (plan,) = plan_cancels(snapshot, PARAMS, NOW)
    assert plan.action is CancelAction.CANCEL


def test_an_order_without_an_id_cannot_be_cancelled() -> None:
    assert plan_cancels(
        account_a(working_orders=(WorkingOrder(bto("AAPL", 1, "150.00")),)), PARAMS, NOW
    ) == (CancelPlan(None, CancelAction.CANNOT, "the order has no id"),)
