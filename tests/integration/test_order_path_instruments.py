"""The order path looks instruments up (once, then from Redis) and quotes each option's
underlying as the instrument names it: ``/ESZ6`` for a future option, SPX for SPXW."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl

import aiohttp

from tests.fixtures.orders import Bot, order

ES_PUT = "./ESZ6 E3AZ6 261218P4900"
SPXW_PUT = "SPXW  261218P04800000"


async def seen(paper_http: aiohttp.ClientSession, prefix: str) -> list[str]:
    async with paper_http.get("/__paper/requests") as response:
        items = (await response.json())["data"]["items"]
    return [i["raw-path"] for i in items if i["raw-path"].startswith(prefix)]


def asked_quotes(raw_paths: list[str]) -> set[tuple[str, str]]:
    return {pair for path in raw_paths for pair in parse_qsl(path.partition("?")[2])}


async def test_orders_on_options_look_up_instruments_once_and_quote_their_underlyings(
    bot: Bot, paper_http: aiohttp.ClientSession, paper_broker: Any
) -> None:
    future_option = order(ES_PUT, 1, "12.50", instrument_type="Future Option")
    index_option = order(SPXW_PUT, 1, "15.00", instrument_type="Equity Option")

    for body in (future_option, index_option, future_option, index_option):
        answer = await bot.place(body, dry_run=True)
        assert answer.headers.get("X-Gatekeeper-Decision-Id"), answer.body

    # the future option's own future too: its notional multiplier sets the option's
    assert await seen(paper_http, "/instruments/") == [
        "/instruments/future-options/.%2FESZ6%20E3AZ6%20261218P4900",
        "/instruments/futures/ESZ6",
        "/instruments/equity-options/SPXW%20%20261218P04800000",
    ]
    quotes = asked_quotes(await seen(paper_http, "/market-data/by-type"))
    assert ("future", "/ESZ6") in quotes
    assert ("future", "//ESZ6") not in quotes
    assert {("equity", "SPX"), ("index", "SPX")} <= quotes
    assert ("equity", "SPXW") not in quotes
