"""Builders for core tests: Account A and Protection P of shared/rules-examples.md."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from gatekeeper.core.decision import Decision
from gatekeeper.core.evaluate import EvaluationContext, evaluate
from gatekeeper.core.holdings import OrderInput
from gatekeeper.core.instruments import Instrument
from gatekeeper.core.order import Order
from gatekeeper.core.parse import parse_order
from gatekeeper.core.snapshot import (
    DEFAULT_LIMITS,
    AccountSnapshot,
    Limits,
    Position,
    Quote,
    WorkingOrder,
)
from gatekeeper.core.symbols import InstrumentType, parse_option_symbol

NOW = datetime(2026, 11, 30, 15, 0, tzinfo=UTC)
SPY_CALL = "SPY   261218C00600000"
D = Decimal


def quote(symbol: str, bid: str, ask: str, mid: str | None = None) -> Quote:
    """A quote; mid defaults to the mean of bid and ask."""
    mid_value = D(mid) if mid is not None else (D(bid) + D(ask)) / 2
    return Quote(symbol=symbol, bid=D(bid), ask=D(ask), mid=mid_value)


def option(symbol: str, underlying: str | None = None, multiplier: str = "100") -> Instrument:
    """An equity option as the broker's instrument look-up describes it (underlying defaults
    to the OCC root: tests only; the core never guesses it)."""
    info = parse_option_symbol(InstrumentType.EQUITY_OPTION, symbol)
    assert info is not None, symbol
    group = underlying or info.underlying
    return Instrument(
        symbol,
        InstrumentType.EQUITY_OPTION,
        group,
        D(multiplier),
        group,
        InstrumentType.EQUITY,
        info,
    )


def instruments(*items: Instrument) -> dict[str, Instrument]:
    """The snapshot's ``instruments`` mapping."""
    return {item.symbol: item for item in items}


def decide(
    orders: OrderInput,
    snapshot: AccountSnapshot,
    protections: list[Limits] | tuple[Limits, ...],
    trades_today: int = 0,
    **context: Any,
) -> Decision:
    """``evaluate()`` at ``NOW`` with an :class:`EvaluationContext` built from keywords."""
    return evaluate(
        orders,
        EvaluationContext(
            snapshot=snapshot,
            protections=protections,
            now=context.pop("now", NOW),
            trades_today=trades_today,
            **context,
        ),
    )


def account_a(**changes: Any) -> AccountSnapshot:
    """Account A, with keyword overrides of any snapshot field."""
    snapshot = AccountSnapshot(
        account_number="5WT00001",
        nlv=D("100000.00"),
        cash_balance=D("60000.00"),
        start_of_day_nlv=D("100000.00"),
        fetched_at=NOW,
        positions=(
            Position("TQQQ", InstrumentType.EQUITY, D(100)),
            Position(
                SPY_CALL, InstrumentType.EQUITY_OPTION, D(2), multiplier=D(100), mark=D("4.15")
            ),
        ),
        quotes={
            "AAPL": quote("AAPL", "149.90", "150.10", "150.00"),
            "SPY": quote("SPY", "499.95", "500.05", "500.00"),
            "TQQQ": quote("TQQQ", "49.30", "49.40", "49.35"),
        },
    )
    return replace(snapshot, **changes)


def protection_p(**changes: Any) -> Limits:
    """Protection P: the seed's Step 7 defaults, as the account's own protection."""
    fields: dict[str, Any] = {"protection_id": "P", "is_default": False, **changes}
    return replace(DEFAULT_LIMITS, **fields)


def leg(symbol: str, quantity: int | str, action: str, kind: str = "Equity") -> dict[str, Any]:
    """A dasherized leg dict."""
    return {"instrument-type": kind, "symbol": symbol, "quantity": quantity, "action": action}


def order(*legs: dict[str, Any], price: str | None = None, effect: str = "Debit") -> Order:
    """A Day order: Limit when ``price`` is given, else Market."""
    body: dict[str, Any] = {
        "order-type": "Limit" if price is not None else "Market",
        "time-in-force": "Day",
        "legs": list(legs),
    }
    if price is not None:
        body["price"] = price
        body["price-effect"] = effect
    return parse_order(body)


def bto(symbol: str, quantity: int, price: str | None = None) -> Order:
    """Buy to Open an equity (Limit at ``price`` or Market)."""
    return order(leg(symbol, quantity, "Buy to Open"), price=price)


def sto(symbol: str, quantity: int, price: str | None = None, kind: str = "Equity") -> Order:
    """Sell to Open (Limit credit at ``price`` or Market)."""
    return order(leg(symbol, quantity, "Sell to Open", kind), price=price, effect="Credit")


def stc(symbol: str, quantity: int, price: str | None = None) -> Order:
    """Sell to Close an equity (Limit at ``price`` or Market)."""
    return order(leg(symbol, quantity, "Sell to Close"), price=price, effect="Credit")


def working(o: Order, order_id: str = "1001") -> WorkingOrder:
    """A resting order."""
    return WorkingOrder(order=o, order_id=order_id)


def with_quotes(snapshot: AccountSnapshot, *quotes: Quote) -> AccountSnapshot:
    """``snapshot`` with more quotes; an equity option among them also gets its instrument
    (:func:`option`), as the adapter would look it up for an option that is not held."""
    options = [
        option(q.symbol)
        for q in quotes
        if parse_option_symbol(InstrumentType.EQUITY_OPTION, q.symbol) is not None
    ]
    return replace(
        snapshot,
        quotes={**snapshot.quotes, **{q.symbol: q for q in quotes}},
        instruments={**snapshot.instruments, **instruments(*options)},
    )
