"""The instrument look-ups (gatekeeper.adapters.instruments) against real Redis, a real broker
(the paper broker) and an echo upstream that shows the bytes that reached it."""

from __future__ import annotations

import json
import socket
from collections.abc import AsyncIterator, Callable
from decimal import Decimal
from typing import Any

import aiohttp
import pytest
import redis.asyncio as aioredis

from gatekeeper.adapters.account_state import StateSource
from gatekeeper.adapters.instruments import INSTRUMENT_KEY, InstrumentSource
from gatekeeper.errors import BrokerAuthFailed, CacheUnavailable, StateUnavailable
from gatekeeper.metrics import Metrics
from gatekeeper.settings import ProxySettings, RiskSettings, Settings
from tests.fixtures.gate import EchoUpstream

D = Decimal
SPY_CALL = "SPY   261218C00600000"
SPXW_CALL = "SPXW  261218C05800000"
ES_CALL = "./ESZ6 EW4Z6 261218C6000"
Source = Callable[..., InstrumentSource]


def settings_for(upstream: str, redis_url: str, **risk: Any) -> Settings:
    return Settings(
        redis_url=redis_url,
        proxy=ProxySettings(host="127.0.0.1", port=0, upstream_url=upstream),
        risk=RiskSettings(**risk),
    )


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client:
        yield client


@pytest.fixture
def source_for(
    session: aiohttp.ClientSession, redis_client: aioredis.Redis, redis_url: str
) -> Source:
    """``make(upstream, redis=..., **risk)``: an InstrumentSource as the engine builds one."""

    def make(upstream: str, redis: aioredis.Redis | None = None, **risk: Any) -> InstrumentSource:
        settings = settings_for(upstream, redis_url, **risk)
        return InstrumentSource(session, redis or redis_client, settings, Metrics.create())

    return make


async def cache_keys(redis: aioredis.Redis) -> list[str]:
    return sorted(k.decode() if isinstance(k, bytes) else k for k in await redis.keys("*"))


def held_option(symbol: str = SPXW_CALL, underlying: str = "SPX") -> dict[str, Any]:
    return {
        "symbol": symbol,
        "instrument-type": "Equity Option",
        "underlying-symbol": underlying,
        "quantity": 1,
        "quantity-direction": "Long",
        "multiplier": 100,
    }


# -- without the broker ------------------------------------------------------------------------


async def test_stock_crypto_and_held_options_need_no_request(
    source_for: Source, redis_client: aioredis.Redis
) -> None:
    source = source_for(f"http://127.0.0.1:{closed_port()}")  # any request would fail

    found = await source.resolve(
        [("Equity", "AAPL"), ("Cryptocurrency", "BTC/USD"), ("Equity Option", SPXW_CALL)],
        {"Authorization": "Bearer bot-token"},
        [held_option()],
    )

    assert set(found) == {"AAPL", "BTC/USD", SPXW_CALL}
    assert (found[SPXW_CALL].group, found[SPXW_CALL].multiplier) == ("SPX", D(100))
    assert await cache_keys(redis_client) == []


async def test_unknown_types_and_malformed_symbols_are_absent_without_a_request(
    source_for: Source,
) -> None:
    source = source_for(f"http://127.0.0.1:{closed_port()}")

    found = await source.resolve(
        [("Bond", "T 2030"), ("Future", "ES"), ("Future Option", "/ESZ6 C6000")], {}
    )

    assert found == {}


async def test_broker_down_is_state_unavailable(
    source_for: Source, redis_client: aioredis.Redis
) -> None:
    source = source_for(f"http://127.0.0.1:{closed_port()}")

    with pytest.raises(StateUnavailable, match=r"/ESZ6 could not be fetched.*ClientConnectorError"):
        await source.resolve([("Future", "/ESZ6")], {"Authorization": "Bearer bot-token"})
    assert await cache_keys(redis_client) == []


async def test_redis_down_is_cache_unavailable(source_for: Source) -> None:
    down = aioredis.from_url(f"redis://127.0.0.1:{closed_port()}", socket_connect_timeout=1)
    try:
        source = source_for(f"http://127.0.0.1:{closed_port()}", redis=down)
        with pytest.raises(CacheUnavailable, match="instrument cache"):
            await source.resolve([("Future", "/ESZ6")], {"Authorization": "Bearer bot-token"})
    finally:
        await down.aclose()


async def test_paths_and_headers_reach_the_broker_as_tastyware_sends_them(
    source_for: Source, echo_upstream: EchoUpstream
) -> None:
    source = source_for(echo_upstream.url)
    headers = {"Authorization": "Bearer bot-token", "User-Agent": "bot/1.0", "Cookie": "s=1"}

    # The echo's answer is no instrument: the look-up fails, after every request was sent.
    with pytest.raises(StateUnavailable, match="unreadable answer"):
        await source.resolve(
            [("Equity Option", SPY_CALL), ("Future", "/ESZ6"), ("Future Option", ES_CALL)],
            headers,
        )

    assert sorted(seen["raw_path"] for seen in echo_upstream.received) == [
        "/instruments/equity-options/SPY%20%20%20261218C00600000",
        "/instruments/future-options/.%2FESZ6%20EW4Z6%20261218C6000",
        "/instruments/futures/ESZ6",
    ]
    for seen in echo_upstream.received:
        sent = {name.lower(): value for name, value in seen["headers"]}
        assert sent["authorization"] == "Bearer bot-token"
        assert sent["user-agent"] == "bot/1.0"
        assert "cookie" not in sent
        assert seen["method"] == "GET"


def test_cache_key_names_type_and_symbol() -> None:
    assert INSTRUMENT_KEY.format(kind="Future", symbol="/ESZ6") == "gk:instrument:v1:Future:/ESZ6"


async def test_an_option_underlying_is_asked_as_equity_and_index_in_one_request(
    session: aiohttp.ClientSession,
    redis_client: aioredis.Redis,
    redis_url: str,
    echo_upstream: EchoUpstream,
) -> None:
    state = StateSource(
        session, redis_client, settings_for(echo_upstream.url, redis_url), Metrics.create()
    )
    pairs = [("Equity Option", SPXW_CALL), ("Equity", "SPX"), ("Index", "SPX"), ("Future", "/ESZ6")]

    with pytest.raises(StateUnavailable):  # the echo's answer has no items
        await state.quotes(pairs, {"Authorization": "Bearer bot-token"})

    (seen,) = echo_upstream.received
    path, _, query = seen["raw_path"].partition("?")
    assert path == "/market-data/by-type"
    assert sorted(query.split("&")) == [
        "equity-option=SPXW++261218C05800000",
        "equity=SPX",
        "future=/ESZ6",
        "index=SPX",
    ]


# -- against the paper broker ------------------------------------------------------------------

MESZ6 = "/MESZ6"
ES_PUT = "./ESZ6 E3AZ6 261218P4900"
SPXW_PUT = "SPXW  261218P04800000"
MINI_CALL = "AAPL7 261218C00150000"
WANTED = [
    ("Equity Option", SPXW_PUT),
    ("Equity Option", MINI_CALL),
    ("Future", MESZ6),
    ("Future", "/ESZ6"),
    ("Future Option", ES_PUT),
]


async def instrument_requests(paper_http: aiohttp.ClientSession) -> list[str]:
    """Raw paths of the instrument look-ups the paper broker received."""
    async with paper_http.get("/__paper/requests") as response:
        items = (await response.json())["data"]["items"]
    return [i["raw-path"] for i in items if i["raw-path"].startswith("/instruments/")]


async def put_fault(paper_http: aiohttp.ClientSession, **fault: Any) -> None:
    async with paper_http.put("/__paper/faults", json=fault) as response:
        assert response.status == 200, await response.text()


async def test_instruments_are_fetched_once_then_served_from_redis(
    source_for: Source,
    paper_broker: Any,
    paper_http: aiohttp.ClientSession,
    paper_auth: dict[str, str],
    redis_client: aioredis.Redis,
) -> None:
    first = await source_for(paper_broker.url).resolve(WANTED, paper_auth)
    # Another replica (or a restart): same Redis, nothing remembered in the process.
    second = await source_for(paper_broker.url).resolve(WANTED, paper_auth)

    assert first == second
    assert (first[SPXW_PUT].group, first[SPXW_PUT].multiplier) == ("SPX", D(100))
    assert (first[MINI_CALL].group, first[MINI_CALL].multiplier) == ("AAPL", D(10))
    assert (first[MESZ6].group, first[MESZ6].multiplier) == ("/MES", D(5))
    assert (first["/ESZ6"].group, first["/ESZ6"].multiplier) == ("/ES", D(50))
    option = first[ES_PUT]
    # the broker says multiplier 1.0 (as TastyTrade's example); its future moves 50 a point
    assert (option.group, option.underlying, option.multiplier) == ("/ES", "/ESZ6", D(50))
    assert option.option is not None
    assert option.option.strike == D(4900)
    assert sorted(await instrument_requests(paper_http)) == [
        "/instruments/equity-options/AAPL7%20261218C00150000",
        "/instruments/equity-options/SPXW%20%20261218P04800000",
        "/instruments/future-options/.%2FESZ6%20E3AZ6%20261218P4900",
        "/instruments/futures/ESZ6",
        "/instruments/futures/MESZ6",
    ]


async def test_the_cache_holds_built_fields_for_six_hours_and_nothing_secret(
    source_for: Source,
    paper_broker: Any,
    paper_auth: dict[str, str],
    redis_client: aioredis.Redis,
) -> None:
    await source_for(paper_broker.url).resolve(WANTED, paper_auth)

    keys = await cache_keys(redis_client)
    assert keys == sorted(INSTRUMENT_KEY.format(kind=kind, symbol=s) for kind, s in WANTED)
    token = paper_auth["Authorization"].split()[1]
    for key in keys:
        raw = await redis_client.get(key)
        assert raw is not None
        assert token.encode() not in raw
        assert b"Bearer" not in raw
        assert 6 * 3600 - 60 < await redis_client.ttl(key) <= 6 * 3600
    raw_entry = await redis_client.get(INSTRUMENT_KEY.format(kind="Future Option", symbol=ES_PUT))
    assert raw_entry is not None
    entry = json.loads(raw_entry)
    # what the broker said (1.0, as TastyTrade's example); raised to the future's 50 on use
    assert entry == {
        "group": "/ES",
        "multiplier": "1.0",
        "underlying": "/ESZ6",
        "underlying-type": "Future",
    }


async def test_the_bots_authorization_is_what_the_broker_checks(
    source_for: Source, paper_broker: Any, paper_auth: dict[str, str]
) -> None:
    source = source_for(paper_broker.url)

    with pytest.raises(BrokerAuthFailed, match="answered 401"):
        await source.resolve([("Future", MESZ6)], {"Authorization": "Bearer not-a-token"})
    found = await source.resolve([("Future", MESZ6)], paper_auth)

    assert found[MESZ6].multiplier == D(5)


async def test_an_instrument_the_broker_does_not_know_is_absent(
    source_for: Source,
    paper_broker: Any,
    paper_http: aiohttp.ClientSession,
    paper_auth: dict[str, str],
    redis_client: aioredis.Redis,
) -> None:
    source = source_for(paper_broker.url)

    found = await source.resolve([("Future", "/XXZ6"), ("Future", MESZ6)], paper_auth)

    assert set(found) == {MESZ6}
    # Not remembered as unknown: a listing later in the day is seen at the next order.
    assert await cache_keys(redis_client) == [INSTRUMENT_KEY.format(kind="Future", symbol=MESZ6)]


async def test_a_broker_error_is_state_unavailable_and_the_others_are_still_cached(
    source_for: Source,
    paper_broker: Any,
    paper_http: aiohttp.ClientSession,
    paper_auth: dict[str, str],
    redis_client: aioredis.Redis,
) -> None:
    await put_fault(paper_http, path="/instruments/futures/", status=500)
    source = source_for(paper_broker.url)

    with pytest.raises(StateUnavailable, match=r"/MESZ6 could not be fetched .*answered 500"):
        await source.resolve([("Future", MESZ6), ("Equity Option", SPXW_PUT)], paper_auth)

    assert await cache_keys(redis_client) == [
        INSTRUMENT_KEY.format(kind="Equity Option", symbol=SPXW_PUT)
    ]


async def test_a_slow_broker_times_out_as_state_unavailable(
    source_for: Source,
    paper_broker: Any,
    paper_http: aiohttp.ClientSession,
    paper_auth: dict[str, str],
) -> None:
    await put_fault(paper_http, path="/instruments/", delay=3)
    # The reads time out with the account state: at risk.max_state_age_seconds.
    source = source_for(paper_broker.url, state_ttl_seconds=0.2, max_state_age_seconds=0.5)

    with pytest.raises(StateUnavailable, match="could not be fetched"):
        await source.resolve([("Future", MESZ6)], paper_auth)
