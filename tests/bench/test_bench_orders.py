"""Order-path cost: the same order dry-run straight to the paper broker and through the
gatekeeper's risk engine, next to a pass-through GET measured in the same run.

Run: .venv/bin/pytest tests/bench/test_bench_orders.py -m bench -s
Prints orders/s and p50/p99 latency of each path (alternating rounds, median round reported)
at concurrency 1 and 16, then the latency the order path adds beyond pass-through. Dry-runs
are checked exactly like placements (state, locked transaction, decision row) but do not
count as trades, so every request of the run is allowed and forwarded. A final burst of real
placements (1 share, resting) goes through the gatekeeper only. Asserts only correctness.
"""

from __future__ import annotations

import json

import aiohttp
import pytest

from tests.bench.conftest import Stack
from tests.bench.loadgen import Request, Result, report, run_load
from tests.bench.test_bench_passthrough import median_round
from tests.fixtures.paper import paper_seed
from tests.processes import paper_oauth_header

ROUNDS = 3
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


def _added(title: str, direct: Result, proxied: Result) -> tuple[float, float]:
    return ((proxied.p50 - direct.p50) * 1000, (proxied.p99 - direct.p99) * 1000)


@pytest.mark.bench
@pytest.mark.timeout(600)
async def test_order_path_overhead(bench_stack: Stack) -> None:
    headers = {**await paper_oauth_header(bench_stack.paper_url), "User-Agent": "bench/1.0"}
    account = paper_seed().users[0].accounts[0]
    order_headers = {**headers, "Content-Type": "application/json"}

    def getter(base: str) -> Request:
        async def get(session: aiohttp.ClientSession) -> int:
            async with session.get(f"{base}/accounts/{account}/balances", headers=headers) as r:
                await r.read()
                return r.status

        return get

    def poster(base: str, suffix: str = "/dry-run") -> Request:
        async def post(session: aiohttp.ClientSession) -> int:
            url = f"{base}/accounts/{account}/orders{suffix}"
            async with session.post(url, data=ORDER, headers=order_headers) as r:
                await r.read()
                return r.status

        return post

    lines: list[str] = []
    for concurrency, total in ((1, 300), (16, 1000)):
        pairs = {
            "GET balances": (getter(bench_stack.paper_url), getter(bench_stack.proxy_url)),
            "POST orders/dry-run": (poster(bench_stack.paper_url), poster(bench_stack.proxy_url)),
        }
        added: dict[str, tuple[float, float]] = {}
        for name, (direct, proxied) in pairs.items():
            await run_load("warm-up", direct, 50, concurrency)
            await run_load("warm-up", proxied, 50, concurrency)
            baseline: list[Result] = []
            measured: list[Result] = []
            for _ in range(ROUNDS):
                baseline.append(await run_load("paper broker direct", direct, total, concurrency))
                measured.append(await run_load("through gatekeeper", proxied, total, concurrency))
            expected = 200 if name.startswith("GET") else 201
            for result in baseline + measured:
                assert result.statuses == {expected: total}, result.statuses
            b, m = median_round(baseline), median_round(measured)
            lines.append(report(f"{name}, concurrency {concurrency}", b, m))
            added[name] = _added(name, b, m)
        p50 = added["POST orders/dry-run"][0] - added["GET balances"][0]
        p99 = added["POST orders/dry-run"][1] - added["GET balances"][1]
        lines.append(
            f"order path beyond pass-through, concurrency {concurrency}:"
            f" p50 {p50:+.2f} ms, p99 {p99:+.2f} ms"
        )
    placed = await run_load("placements via gatekeeper", poster(bench_stack.proxy_url, ""), 40, 4)
    assert placed.statuses == {201: 40}, placed.statuses
    lines.append(
        f"\n== POST orders (real placements, 1 share resting), concurrency 4 ==\n"
        f"{placed.rate:.0f} orders/s, p50 {placed.p50 * 1000:.2f} ms,"
        f" p99 {placed.p99 * 1000:.2f} ms"
    )
    print("\n".join(lines))
