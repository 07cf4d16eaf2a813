"""Issue 8, item 10 (the paper broker's side): its ``/__paper/`` control routes need a token of
their own, ``X-Paper-Control-Token``, configurable (``[paper] control_token``) and generated at
start when unset (printed by ``gatekeeper paper`` and ``gatekeeper demo``).

Before: anyone reaching the paper broker, directly or relayed by the gatekeeper, could set a
bot's cash to 100,000,000 with ``PUT /__paper/accounts/X/cash``.
"""

from __future__ import annotations

import asyncio
import re
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from decimal import Decimal
from typing import Any

import aiohttp
import pytest

from gatekeeper.paper import (
    CONTROL_TOKEN_HEADER,
    PaperBook,
    build_book,
    create_paper_app,
    new_control_token,
)
from gatekeeper.settings import SettingsError, load_settings
from tests.fixtures.paper import PaperBroker, paper_seed
from tests.processes import ROOT, base_environment, free_port, stop_all

ROUTES: list[tuple[str, str, Any]] = [
    ("GET", "/__paper/quotes", None),
    ("PUT", "/__paper/quotes/{symbol}", {"bid": "1.00", "ask": "1.01"}),
    ("DELETE", "/__paper/quotes/{symbol}", None),
    ("GET", "/__paper/faults", None),
    ("PUT", "/__paper/faults", {"path": "/accounts", "status": 500}),
    ("DELETE", "/__paper/faults", None),
    ("GET", "/__paper/orders", None),
    ("DELETE", "/__paper/orders", None),
    ("GET", "/__paper/requests", None),
    ("DELETE", "/__paper/requests", None),
    ("PUT", "/__paper/accounts/{account}/cash", {"cash": "100000000"}),
]


def wrong_headers(token: str, bot: dict[str, str]) -> list[dict[str, str]]:
    """Everything that is not the control token in its header."""
    return [
        {},
        {CONTROL_TOKEN_HEADER: ""},
        {CONTROL_TOKEN_HEADER: "wrong"},
        {CONTROL_TOKEN_HEADER: token[:-1]},
        {CONTROL_TOKEN_HEADER: token + "x"},
        {CONTROL_TOKEN_HEADER: token[:-1] + ("A" if token[-1] != "A" else "B")},
        {CONTROL_TOKEN_HEADER: f" {token}x"},
        {"Authorization": f"Bearer {token}"},
        {"X-Paper-Control": token},
        bot,  # a bot's broker credentials grant nothing here
    ]


def book_state(book: PaperBook) -> tuple[Any, ...]:
    return (
        {number: account.cash for number, account in book.accounts.items()},
        {symbol: (quote.bid, quote.ask) for symbol, quote in book.quotes.items()},
        list(book.faults),
        book.received_orders(),
        len(book.seen_requests()),
    )


def control_routes() -> list[tuple[str, str]]:
    """Every (method, path) the paper broker serves under ``/__paper/``, as its router has them."""
    app = create_paper_app(build_book(paper_seed()), control_token=new_control_token())
    return sorted(
        {
            (route.method, route.resource.canonical)
            for route in app.router.routes()
            if route.resource is not None and route.resource.canonical.startswith("/__paper")
        }
    )


def test_the_routes_tried_with_the_token_are_the_routers() -> None:
    assert {(method, path) for method, path, _ in ROUTES} <= set(control_routes())


async def test_every_control_route_refuses_anything_but_its_token(
    paper_broker: PaperBroker, paper_auth: dict[str, str]
) -> None:
    account = paper_broker.account_number
    before = book_state(paper_broker.book)
    attempt = {"cash": "100000000", "bid": "1", "ask": "2", "path": "/", "amount": "100000000"}
    async with aiohttp.ClientSession(base_url=paper_broker.url) as http:
        for method, path in control_routes():
            for headers in wrong_headers(paper_broker.control_token, paper_auth):
                target = re.sub(r"\{[^}]+\}", account, path)
                async with http.request(method, target, json=attempt, headers=headers) as r:
                    assert r.status == 401, (method, target, headers.keys(), await r.text())
                    error = (await r.json())["error"]
                assert error["code"] == "control_token_invalid"
                assert paper_broker.control_token not in str(error)
        assert book_state(paper_broker.book) == before
        assert paper_broker.book.accounts[account].cash != Decimal(100_000_000)

        for method, path, body in ROUTES:
            target = path.format(account=account, symbol="AAPL")
            async with http.request(
                method, target, json=body, headers=paper_broker.control_headers
            ) as r:
                assert r.status == 200, (method, target, await r.text())
    assert paper_broker.book.accounts[account].cash == Decimal(100_000_000)


@pytest.mark.parametrize(
    "spelling",
    ["/%5F%5Fpaper/accounts/{account}/cash", "/__paper/accounts/{account}/cash%2F",
     "/__paper/accounts/{account}/%63ash", "/__PAPER/accounts/{account}/cash",
     "/__paper//accounts/{account}/cash", "/__paper/./accounts/{account}/cash"],
)  # fmt: skip
async def test_no_spelling_of_a_control_path_skips_the_token(
    paper_broker: PaperBroker, spelling: str
) -> None:
    account = paper_broker.account_number
    cash = paper_broker.book.accounts[account].cash
    async with aiohttp.ClientSession(base_url=paper_broker.url) as http:
        target = spelling.format(account=account)
        async with http.put(target, json={"cash": "100000000"}) as r:
            assert r.status in (401, 404), (target, await r.text())
    assert paper_broker.book.accounts[account].cash == cash


async def _status(url: str, headers: dict[str, str]) -> int:
    async with aiohttp.ClientSession() as http, http.get(url, headers=headers) as response:
        return response.status


@asynccontextmanager
async def _started(
    args: list[str], env: dict[str, str], until: str
) -> AsyncIterator[tuple[asyncio.subprocess.Process, str]]:
    """``gatekeeper ARGS`` running, with what it printed up to the line containing ``until``."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gatekeeper.cli", *args, cwd=ROOT, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        printed = ""
        async with asyncio.timeout(40):
            while until not in printed:
                line = await process.stdout.readline()
                assert line, f"exited before printing {until!r}: {printed}"
                printed += line.decode()
        yield process, printed
    finally:
        await stop_all([process])


async def test_gatekeeper_paper_uses_the_configured_token(
    database_url: str, redis_url: str
) -> None:
    port = free_port()
    token = "configured-paper-control-token"
    env = base_environment(database_url, redis_url) | {
        "GATEKEEPER_PAPER__PORT": str(port),
        "GATEKEEPER_PAPER__CONTROL_TOKEN": token,
    }
    async with _started(["paper"], env, "listening on") as (_, printed):
        url = f"http://127.0.0.1:{port}/__paper/quotes"
        assert await _status(url, {}) == 401
        assert await _status(url, {CONTROL_TOKEN_HEADER: token}) == 200
    assert token not in printed  # configured: the operator knows it


async def test_gatekeeper_paper_generates_and_prints_a_token_when_unset(
    database_url: str, redis_url: str
) -> None:
    port = free_port()
    env = base_environment(database_url, redis_url) | {"GATEKEEPER_PAPER__PORT": str(port)}
    async with _started(["paper"], env, CONTROL_TOKEN_HEADER) as (_, printed):
        match = re.search(rf"{CONTROL_TOKEN_HEADER}: (\S+)", printed)
        assert match is not None, printed
        url = f"http://127.0.0.1:{port}/__paper/quotes"
        assert await _status(url, {}) == 401
        assert await _status(url, {CONTROL_TOKEN_HEADER: match[1]}) == 200


async def test_the_demo_prints_the_generated_control_token(
    database_url: str, redis_url: str
) -> None:
    ports = {name: str(free_port()) for name in ("PROXY", "ADMIN", "PAPER")}
    env = base_environment(database_url, redis_url) | {
        f"GATEKEEPER_{name}__PORT": port for name, port in ports.items()
    }
    async with _started(["demo"], env, "Ctrl-C stops everything") as (_, printed):
        match = re.search(rf"{CONTROL_TOKEN_HEADER}: ([^'\s]+)", printed)
        assert match is not None, printed
        url = f"http://127.0.0.1:{ports['PAPER']}/__paper/quotes"
        assert f"curl -s {url}" in printed
        assert await _status(url, {}) == 401
        assert await _status(url, {CONTROL_TOKEN_HEADER: match[1]}) == 200


def test_a_configured_token_is_at_least_16_characters(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GATEKEEPER_PAPER__CONTROL_TOKEN", "short")
    with pytest.raises(SettingsError, match=r"paper\.control_token"):
        load_settings()
