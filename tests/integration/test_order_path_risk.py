"""risk-model.md through the proxy against the paper broker: a held vertical blocks nothing, a
leg-out is refused under reduce_only and valued at its risk increase otherwise, SPX and SPXW
are one group, futures and future options are priced from their instruments, bad quotes are
refused (R3-R7, R10, R18, R19)."""

from __future__ import annotations

import json
from datetime import timedelta
from decimal import Decimal
from typing import Any

import aiohttp
import asyncpg

from gatekeeper.adapters import protections as store
from gatekeeper.adapters.protection_stops import trigger_emergency_stop
from tests.fixtures.orders import Bot, order, protect, received_count

D = Decimal
C600, C610 = "SPY   261218C00600000", "SPY   261218C00610000"
SPX_PUT, SPXW_PUT = "SPX   261218P04800000", "SPXW  261218P04800000"
OPTION = "Equity Option"


def legs(*items: tuple[str, int, str], price: str | None = None, effect: str = "Debit") -> Any:
    body: dict[str, Any] = {
        "order-type": "Limit" if price else "Market",
        "time-in-force": "Day",
        "legs": [
            {"instrument-type": OPTION, "symbol": s, "quantity": q, "action": a}
            for s, q, a in items
        ],
    }
    if price:
        body |= {"price": price, "price-effect": effect}
    return body


async def at_the_broker(
    paper_http: aiohttp.ClientSession, auth: dict[str, str], account: str, body: Any
) -> None:
    """Place an order straight at the paper broker (not through the gatekeeper)."""
    async with paper_http.post(f"/accounts/{account}/orders", json=body, headers=auth) as answer:
        assert answer.status == 201, await answer.text()


async def hold_vertical(paper_broker: Any, paper_http: Any, auth: dict[str, str]) -> None:
    """Account A holds 2 SPY 600 calls; make it +10 600C / -10 610C (max loss 1,000)."""
    paper_broker.book.set_quote(C610, D("3.10"), D("3.20"))
    body = legs((C600, 8, "Buy to Open"), (C610, 10, "Sell to Open"))
    await at_the_broker(paper_http, auth, paper_broker.account_number, body)


async def detail(pool: asyncpg.Pool, decision_id: str) -> dict[str, Any]:
    raw = await pool.fetchval(
        "SELECT detail FROM risk_decisions WHERE decision_id = $1::uuid", decision_id
    )
    return json.loads(raw) if isinstance(raw, str) else dict(raw)


async def test_r3_a_held_vertical_counts_its_max_loss_and_blocks_nothing(
    bot: Bot, pg_pool: asyncpg.Pool, paper_broker: Any, paper_http: Any, paper_auth: Any
) -> None:
    await protect(pg_pool, bot.account)
    await hold_vertical(paper_broker, paper_http, paper_auth)

    answer = await bot.place(order("AAPL", 1, "150.00"))

    assert answer.status == 201, answer.body
    figures = (await detail(pg_pool, answer.headers["X-Gatekeeper-Decision-Id"]))["figures"]
    quotes = paper_broker.book.quotes
    # TQQQ and BIL at their mids, and the vertical at its max loss (not 500,000 of short calls)
    expected = 100 * quotes["TQQQ"].mid + 410 * quotes["BIL"].mid + D("1000.00")
    assert D(figures["exposure_before"]) == expected
    assert D(figures["exposure_after"]) == expected + D("150.00")


async def test_r7_a_leg_out_is_valued_at_the_risk_it_adds(
    bot: Bot, pg_pool: asyncpg.Pool, paper_broker: Any, paper_http: Any, paper_auth: Any
) -> None:
    await protect(pg_pool, bot.account)
    await hold_vertical(paper_broker, paper_http, paper_auth)
    before = received_count(paper_broker.book, bot.account)

    answer = await bot.place(legs((C600, 10, "Sell to Close")))

    assert answer.status == 422
    assert answer.codes == [
        "max_single_trade",
        "max_portfolio_exposure",
        "max_position_concentration",
    ]
    message = answer.body["error"]["message"]
    assert "order value 495,850.00 is " in message  # NLV moved by the spread's fills
    assert "SPY risk 1,000.00 -> 496,850.00, worst case SPY at 1,110.00 on 2026-12-18" in message
    assert "(unbounded above)" in message
    groups = (await detail(pg_pool, answer.headers["X-Gatekeeper-Decision-Id"]))["figures"]
    assert groups["groups"]["SPY"] == {
        "risk_before": "1000.00",
        "risk_after": "496850.00",
        "unbounded": True,
        "worst_case": "SPY at 1,110.00 on 2026-12-18 (unbounded above)",
    }
    assert received_count(paper_broker.book, bot.account) == before


async def test_r4_to_r6_reduce_only_lets_only_risk_reducing_orders_through(
    bot: Bot, pg_pool: asyncpg.Pool, paper_broker: Any, paper_http: Any, paper_auth: Any
) -> None:
    protection = await protect(pg_pool, bot.account, emergency_stop_mode="reduce_only")
    await hold_vertical(paper_broker, paper_http, paper_auth)
    async with pg_pool.acquire() as conn:
        await trigger_emergency_stop(
            conn, protection.id, None, reason="ops", triggered_by="ops", mode=None,
            actor=store.Actor("ops", "cli"),
        )  # fmt: skip
    before = received_count(paper_broker.book, bot.account)

    leg_out = await bot.place(legs((C600, 10, "Sell to Close")))
    close_both = await bot.place(legs((C600, 10, "Sell to Close"), (C610, 10, "Buy to Close")))

    assert leg_out.status == 422
    assert leg_out.codes[0] == "emergency_stop"
    assert "not risk-reducing (SPY risk 1,000.00 -> 496,850.00" in leg_out.body["error"]["message"]
    assert close_both.status == 201, close_both.body
    received = [e for e in paper_broker.book.received_orders() if e.account_number == bot.account]
    assert len(received) == before + 1
    assert received[-1].body["advanced-instructions"] == {"strict-position-effect-validation": True}
    row = await detail(pg_pool, close_both.headers["X-Gatekeeper-Decision-Id"])
    assert row["risk_reducing"] is True
    assert row["figures"]["groups"]["SPY"]["risk_after"] == "0"


async def test_r10_spx_and_spxw_options_are_one_group(
    bot: Bot, pg_pool: asyncpg.Pool, paper_broker: Any, paper_http: Any, paper_auth: Any
) -> None:
    await protect(pg_pool, bot.account, max_position_concentration_percentage=100)
    book = paper_broker.book
    book.set_quote(SPX_PUT, D("14.80"), D("15.20"))
    await at_the_broker(
        paper_http,
        paper_auth,
        bot.account,
        legs((SPX_PUT, 1, "Sell to Open"), price="15.00", effect="Credit"),
    )

    answer = await bot.place(legs((SPXW_PUT, 1, "Sell to Open"), price="15.00", effect="Credit"))

    assert answer.status == 422
    groups = (await detail(pg_pool, answer.headers["X-Gatekeeper-Decision-Id"]))["figures"]
    assert set(groups["groups"]) == {"SPX"}
    # each put risks its strike minus its mark: 480,000 - 1,500; two of them after the order
    assert groups["groups"]["SPX"]["risk_before"] == "478500.00"
    assert groups["groups"]["SPX"]["risk_after"] == "957000.00"
    assert "SPX risk 478,500.00 -> 957,000.00" in answer.body["error"]["message"]


async def test_r18_a_future_is_priced_from_its_instrument(
    bot: Bot, pg_pool: asyncpg.Pool, paper_broker: Any
) -> None:
    await protect(pg_pool, bot.account)
    paper_broker.book.set_quote("/MESZ6", D("5999.75"), D("6000.25"))
    body = order("/MESZ6", 1, "6000.00", action="Buy", instrument_type="Future")

    answer = await bot.place(body, dry_run=True)

    assert answer.status == 422
    assert answer.codes == ["max_single_trade", "max_position_concentration"]
    figures = (await detail(pg_pool, answer.headers["X-Gatekeeper-Decision-Id"]))["figures"]
    assert D(figures["groups"]["/MES"]["risk_after"]) == D("30000.00")
    assert D(figures["order_debit"]) == 0  # margined, not paid


async def test_a_future_option_is_worth_its_futures_multiplier(
    bot: Bot, pg_pool: asyncpg.Pool, paper_broker: Any
) -> None:
    await protect(pg_pool, bot.account)
    put = "./ESZ6 E3AZ6 261218P4900"
    paper_broker.book.set_quote(put, D("12.25"), D("12.75"))

    answer = await bot.place(order(put, 1, "12.50", instrument_type="Future Option"), dry_run=True)

    assert answer.status == 201, answer.body
    figures = (await detail(pg_pool, answer.headers["X-Gatekeeper-Decision-Id"]))["figures"]
    # the broker's instrument says multiplier 1.0 (as TastyTrade's example); /ES moves 50
    assert D(figures["order_debit"]) == D("625.00")
    assert D(figures["groups"]["/ES"]["risk_after"]) == D("625.00")


async def test_r19_a_crossed_quote_is_refused(
    bot: Bot, pg_pool: asyncpg.Pool, paper_broker: Any, paper_http: Any
) -> None:
    await protect(pg_pool, bot.account)
    async with paper_http.put(
        "/__paper/quotes/AAPL",
        json={"bid": "150.00", "ask": "1.50", "crossed": True},
        headers=paper_broker.control_headers,
    ) as answer:
        assert answer.status == 200, await answer.text()

    answer = await bot.place(order("AAPL", 6000, None))

    assert answer.status == 422
    assert answer.codes == ["quote_invalid"]
    assert "AAPL: crossed quote (bid 150.00 above ask 1.50)" in answer.body["error"]["message"]
    assert received_count(paper_broker.book, bot.account) == 0


async def test_a_stale_quote_is_refused(
    bot: Bot, pg_pool: asyncpg.Pool, paper_broker: Any, paper_http: Any
) -> None:
    await protect(pg_pool, bot.account)
    stale = (paper_broker.book.now() - timedelta(hours=1)).isoformat()
    async with paper_http.put(
        "/__paper/quotes/AAPL",
        json={"bid": "149.90", "ask": "150.10", "updated-at": stale},
        headers=paper_broker.control_headers,
    ) as answer:
        assert answer.status == 200, await answer.text()

    answer = await bot.place(order("AAPL", 1, "150.00"))

    assert answer.status == 422
    assert answer.codes == ["quote_invalid"]
    assert "AAPL: quote is 3600s old, above the 300s maximum" in answer.body["error"]["message"]
