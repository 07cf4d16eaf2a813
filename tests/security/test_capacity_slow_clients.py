"""200 slow connections against the deployed processes while a bot keeps trading (issue 8,
item 2: the order path must keep its capacity, and slow clients must be cut off).

``gatekeeper paper`` and ``gatekeeper serve`` run as their own processes, as deployed. From
another loopback address, 100 raw sockets trickle request heads and 100 trickle bodies
(half to pass-through, half to an order route, none with credentials), each reopened as soon
as the gatekeeper closes it, while a bot places real orders through the gatekeeper. The
pass-through pool is small, so the trickled pass-through bodies keep it exhausted: before the
fix they also took the connections the order path needed, and no order got through.

Figures are printed (``-s``); the assertions are generous so a busy 2-core machine passes.
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import statistics
import time
from collections.abc import AsyncIterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass

import aiohttp
import pytest

from tests.fixtures.paper import paper_seed
from tests.processes import (
    base_environment,
    free_ports,
    paper_oauth_header,
    spawn_cli,
    stop_all,
    wait_http,
)
from tests.security.capacity import SlowKind, SlowResult, attack_in_process

LIMIT = 1.0  # head and body deadlines of this gatekeeper
SLOW_CONNECTIONS: dict[SlowKind, int] = {"head": 100, "body_order": 50, "body_passthrough": 50}
ATTACKER = "127.0.0.2"
ATTACK_SECONDS = 8.0
MAX_ORDER_SECONDS = 2.0
# How much later than its deadline a slow connection may be closed on a loaded machine: the
# body deadline's answer may take its grace second (gatekeeper.web.connections), and the
# event loops of both processes are busy with 200 sockets.
CLOSE_SLACK = 2.5
ORDER = json.dumps(
    {
        "order-type": "Limit",
        "time-in-force": "Day",
        "price": "100.00",
        "price-effect": "Debit",
        "legs": [
            {"instrument-type": "Equity", "symbol": "AAPL", "action": "Buy to Open", "quantity": 1}
        ],
    }
).encode()


@dataclass
class Stack:
    paper_url: str
    proxy_url: str
    admin_url: str


@pytest.fixture
async def stack(database_url: str, redis_url: str) -> AsyncIterator[Stack]:
    """The paper broker and the gatekeeper as processes, with short client deadlines and a
    small pass-through pool."""
    paper_port, proxy_port, admin_port = free_ports(3)
    env = base_environment(database_url, redis_url)
    env.update(
        GATEKEEPER_PAPER__PORT=str(paper_port),
        GATEKEEPER_PROXY__PORT=str(proxy_port),
        GATEKEEPER_ADMIN__PORT=str(admin_port),
        GATEKEEPER_PROXY__UPSTREAM_URL=f"http://127.0.0.1:{paper_port}",
        GATEKEEPER_PROXY__MAX_CONNECTIONS="20",
        GATEKEEPER_PROXY__ORDER_MAX_CONNECTIONS="20",
        GATEKEEPER_PROXY__REQUEST_HEAD_TIMEOUT_SECONDS=str(LIMIT),
        GATEKEEPER_PROXY__REQUEST_BODY_TIMEOUT_SECONDS=str(LIMIT),
        GATEKEEPER_PROXY__MAX_CLIENT_CONNECTIONS="1000",
        GATEKEEPER_PROXY__MAX_CLIENT_CONNECTIONS_PER_ADDRESS="1000",
        GATEKEEPER_RISK__DEFAULT_MAX_DAILY_TRADES="1000",
    )
    processes = [await spawn_cli(["paper"], env), await spawn_cli(["serve"], env)]
    try:
        stack = Stack(
            f"http://127.0.0.1:{paper_port}",
            f"http://127.0.0.1:{proxy_port}",
            f"http://127.0.0.1:{admin_port}",
        )
        await wait_http(stack.paper_url + "/api-quote-tokens", process=processes[0])
        await wait_http(stack.admin_url + "/healthz", process=processes[1])
        yield stack
    finally:
        await stop_all(processes)


async def _place(session: aiohttp.ClientSession, url: str, headers: dict[str, str]) -> float:
    started = time.monotonic()
    async with session.post(url, data=ORDER, headers=headers) as response:
        body = await response.read()
        assert response.status == 201, body[:300]
    return time.monotonic() - started


async def _trade(
    session: aiohttp.ClientSession, url: str, headers: dict[str, str], until: float
) -> list[float]:
    latencies: list[float] = []
    while time.monotonic() < until:
        latencies.append(await _place(session, url, headers))
        await asyncio.sleep(0.1)
    return latencies


async def _read(
    session: aiohttp.ClientSession, url: str, headers: dict[str, str], until: float
) -> list[tuple[int, float]]:
    """Pass-through reads during the attack (figures only: that pool is exhausted on purpose)."""
    answers: list[tuple[int, float]] = []
    while time.monotonic() < until:
        started = time.monotonic()
        async with session.get(url, headers=headers) as response:
            await response.read()
        answers.append((response.status, time.monotonic() - started))
        await asyncio.sleep(0.2)
    return answers


async def _metrics(session: aiohttp.ClientSession, admin_url: str) -> str:
    async with session.get(admin_url + "/metrics") as response:
        return await response.text()


def _closes(metrics: str) -> list[str]:
    """The gatekeeper's client-connection close counters, by reason."""
    return [
        line
        for line in metrics.splitlines()
        if line.startswith("gatekeeper_client_connections_closed_total")
    ]


def _figures(values: list[float]) -> str:
    ordered = sorted(values)
    return (
        f"n={len(values)} p50={statistics.median(ordered) * 1000:.0f}ms"
        f" max={ordered[-1] * 1000:.0f}ms"
    )


@asynccontextmanager
async def attacker() -> AsyncIterator[ProcessPoolExecutor]:
    """A process of its own for the 200 slow connections: on the test's event loop they would
    slow down the bot's own requests (on a loaded machine, past the deadlines under test),
    which is not what the gatekeeper does to a bot."""
    pool = ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"))
    try:
        await asyncio.get_running_loop().run_in_executor(pool, time.monotonic)  # started
        yield pool
    finally:
        await asyncio.to_thread(pool.shutdown, cancel_futures=True)


@pytest.mark.timeout(60)
async def test_orders_keep_flowing_while_200_slow_connections_are_cut_off(stack: Stack) -> None:
    account = paper_seed().users[0].accounts[0]
    headers = {
        **await paper_oauth_header(stack.paper_url),
        "Content-Type": "application/json",
    }
    url = f"{stack.proxy_url}/accounts/{account}/orders"
    loop = asyncio.get_running_loop()
    async with aiohttp.ClientSession() as session, attacker() as pool:
        baseline = [await _place(session, url, headers) for _ in range(10)]
        until = time.monotonic() + ATTACK_SECONDS
        attack = loop.run_in_executor(
            pool, attack_in_process, stack.proxy_url, SLOW_CONNECTIONS, ATTACKER, 0.2, until
        )
        await asyncio.sleep(1.0)  # every slow connection is open
        balances = f"{stack.proxy_url}/accounts/{account}/balances"
        try:
            under_attack, reads = await asyncio.gather(
                _trade(session, url, headers, until), _read(session, balances, headers, until)
            )
        except aiohttp.ClientError:
            # Which deadline closed the bot's connection, if one did.
            print("\n".join(_closes(await _metrics(session, stack.admin_url))))
            raise
        slow = await attack
        metrics = await _metrics(session, stack.admin_url)

    by_kind: dict[SlowKind, list[SlowResult]] = {kind: [] for kind in SLOW_CONNECTIONS}
    for result in slow:
        by_kind[result.kind].append(result)
    print(f"\norders before the attack: {_figures(baseline)}")
    print(f"orders during the attack: {_figures(under_attack)}")
    read_statuses = sorted({status for status, _ in reads})
    print(
        f"pass-through reads during the attack: {_figures([t for _, t in reads])} {read_statuses}"
    )
    for kind, results in by_kind.items():
        answers = sorted({str(r.status) for r in results})
        print(
            f"slow {kind}: {len(results)} connections, lifetime"
            f" {_figures([r.lifetime for r in results])}, answers {answers}"
        )
    print("\n".join(_closes(metrics)))

    # Orders keep flowing the whole attack: one after another, each within MAX_ORDER_SECONDS
    # (below), so at least this many fit in it. How many more depends on how fast the machine
    # is while 200 sockets are reopened around them (10 and more on a quiet day, 7 on a
    # slow one); the promise is the bound on each order's wait.
    window = ATTACK_SECONDS - 1.0
    assert len(under_attack) >= int(window / (MAX_ORDER_SECONDS + 0.1)), under_attack
    assert max(under_attack) < MAX_ORDER_SECONDS
    for kind, results in by_kind.items():
        assert len(results) >= SLOW_CONNECTIONS[kind], kind
        assert max(r.lifetime for r in results) < LIMIT + CLOSE_SLACK, kind
    assert all(r.status is None for r in by_kind["head"])
    assert all(r.status == 408 for r in by_kind["body_order"])
    # A trickled pass-through body may also wait out the whole deadline for a broker
    # connection (the pass-through pool is exhausted on purpose): 408 either way, or closed.
    assert {r.status for r in by_kind["body_passthrough"]} <= {408, None}
