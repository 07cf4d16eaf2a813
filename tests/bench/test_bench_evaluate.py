"""Cost of the pure risk core: ``evaluate()`` on a book of 50 iron condors (200 option
positions in 50 underlyings), next to the same order on an empty account (the baseline,
measured in the same run, alternating rounds).

Run: .venv/bin/pytest tests/bench/test_bench_evaluate.py -m bench -s
Prints the median time per call of each and their ratio, and the figures of one decision
(a held SPY iron condor plus a new order) for the record. Asserts only correctness.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import replace
from decimal import Decimal

import pytest

from gatekeeper.core.decision import Decision
from gatekeeper.core.order import Order
from gatekeeper.core.snapshot import AccountSnapshot, Position, Quote
from gatekeeper.core.symbols import InstrumentType
from tests.unit.builders import (
    NOW,
    bto,
    decide,
    instruments,
    leg,
    option,
    order,
    protection_p,
    quote,
)

D = Decimal
ROUNDS, CALLS = 7, 20


def condor(root: str, price: int) -> tuple[list[Position], list[Quote]]:
    """Short put/call at ±5 %, long wings at ±10 %: 10 contracts each."""
    legs = [
        ("P", price * 90 // 100, 10, "0.80"),
        ("P", price * 95 // 100, -10, "1.60"),
        ("C", price * 105 // 100, -10, "1.50"),
        ("C", price * 110 // 100, 10, "0.70"),
    ]
    positions, quotes = [], [quote(root, str(price - 0.05), str(price + 0.05))]
    for kind, strike, quantity, mid in legs:
        symbol = f"{root:<6}261218{kind}{strike * 1000:08d}"
        positions.append(
            Position(symbol, InstrumentType.EQUITY_OPTION, D(quantity), D(100), underlying=root)
        )
        bid, ask = D(mid) - D("0.05"), D(mid) + D("0.05")
        quotes.append(quote(symbol, str(bid), str(ask)))
    return positions, quotes


def book(count: int) -> AccountSnapshot:
    positions: list[Position] = []
    quotes: list[Quote] = [quote("AAPL", "149.90", "150.10")]
    for n in range(count):
        p, q = condor(f"U{n:03d}", 100 + n)
        positions += p
        quotes += q
    return AccountSnapshot(
        account_number="5WT00002",
        nlv=D(1_000_000),
        cash_balance=D(600_000),
        start_of_day_nlv=D(1_000_000),
        fetched_at=NOW,
        positions=tuple(positions),
        quotes={q.symbol: q for q in quotes},
    )


def per_call(snapshot: AccountSnapshot, new: Order) -> float:
    limits = [protection_p(max_portfolio_exposure_percentage=D(85))]
    started = time.perf_counter()
    for _ in range(CALLS):
        decide(new, snapshot, limits)
    return (time.perf_counter() - started) / CALLS


@pytest.mark.bench
def test_bench_evaluate_50_condors() -> None:
    full, empty = book(50), book(0)
    new = bto("AAPL", 10, "150.00")
    assert len(full.positions) == 200
    assert decide(new, full, [protection_p(max_portfolio_exposure_percentage=D(85))]).allowed

    loaded, baseline = [], []
    for _ in range(ROUNDS):
        baseline.append(per_call(empty, new))
        loaded.append(per_call(full, new))
    base, heavy = statistics.median(baseline), statistics.median(loaded)
    print(
        f"\nevaluate(): empty account {base * 1000:.2f} ms/call; 50 iron condors x 4 legs "
        f"{heavy * 1000:.2f} ms/call; ratio {heavy / base:.1f}"
    )


def show(decision: Decision) -> None:
    """Print a decision's verdict, message and figures."""
    print("\n", decision.verdict.value, decision.message)
    for name, figures in decision.figures.groups.items():
        print(f" {name}: {figures}")
    f = decision.figures
    print(
        f" exposure {f.exposure_before} -> {f.exposure_after} ({f.exposure_after_pct:.2f}%),"
        f" order value {f.order_value}, free cash after {f.cash_after}"
    )


@pytest.mark.bench
def test_sample_decision_held_iron_condor_plus_a_new_order() -> None:
    positions, quotes = condor("SPY", 500)
    snapshot = replace(
        book(0),
        nlv=D(100_000),
        cash_balance=D(60_000),
        start_of_day_nlv=D(100_000),
        positions=tuple(positions),
        quotes={**{q.symbol: q for q in quotes}, "AAPL": quote("AAPL", "149.90", "150.10")},
    )
    # the condor (450/475/525/550, 10 each) plus a new stock order
    decision = decide(bto("AAPL", 50, "150.00"), snapshot, [protection_p()])
    show(decision)
    assert decision.allowed

    # and a put vertical on the same underlying: SPY's risk before and after
    short, long = "SPY   261218P00460000", "SPY   261218P00440000"
    snapshot = replace(
        snapshot,
        quotes={
            **snapshot.quotes,
            short: quote(short, "1.05", "1.15"),
            long: quote(long, "0.45", "0.55"),
        },
        instruments=instruments(option(short), option(long)),
    )
    spread = order(
        leg(short, 5, "Sell to Open", "Equity Option"),
        leg(long, 5, "Buy to Open", "Equity Option"),
        price="0.60",
        effect="Credit",
    )
    decision = decide(spread, snapshot, [protection_p()])
    show(decision)
    assert decision.figures.groups["SPY"].risk_before == D("23400.00")
