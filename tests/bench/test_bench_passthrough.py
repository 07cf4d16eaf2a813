"""Pass-through cost: the same GET straight to the paper broker and through the gatekeeper.

Run: .venv/bin/pytest tests/bench/test_bench_passthrough.py -m bench -s
Prints requests/s and p50/p99 latency of both paths, measured in the same run (alternating
rounds, median round reported), at concurrency 1 and 16. Asserts only correctness.
"""

from __future__ import annotations

import json
import statistics

import aiohttp
import pytest

from tests.bench.conftest import Stack
from tests.bench.loadgen import Request, Result, report, run_load
from tests.fixtures.paper import paper_seed
from tests.processes import paper_oauth_header

ROUNDS = 3


def median_round(results: list[Result]) -> Result:
    rates = [result.rate for result in results]
    return results[rates.index(statistics.median_low(rates))]


@pytest.mark.bench
@pytest.mark.timeout(600)
async def test_passthrough_overhead(bench_stack: Stack) -> None:
    headers = {**await paper_oauth_header(bench_stack.paper_url), "User-Agent": "bench/1.0"}
    account = paper_seed().users[0].accounts[0]
    path = f"/accounts/{account}/balances"
    bodies: dict[str, bytes] = {}

    def getter(base: str) -> Request:
        async def get(session: aiohttp.ClientSession) -> int:
            async with session.get(base + path, headers=headers) as response:
                body = await response.read()
                bodies.setdefault(base, body)
                return response.status

        return get

    direct, proxied = getter(bench_stack.paper_url), getter(bench_stack.proxy_url)
    for concurrency, total in ((1, 500), (16, 2000)):
        await run_load("warm-up", direct, 200, concurrency)
        await run_load("warm-up", proxied, 200, concurrency)
        baseline: list[Result] = []
        measured: list[Result] = []
        for _ in range(ROUNDS):
            baseline.append(await run_load("paper broker direct", direct, total, concurrency))
            measured.append(await run_load("through gatekeeper", proxied, total, concurrency))
        for result in baseline + measured:
            assert result.statuses == {200: total}
        print(
            report(
                f"GET {path}, concurrency {concurrency}",
                median_round(baseline),
                median_round(measured),
            )
        )
    # The proxy relays the broker's answer unchanged (only the timestamps move).
    direct_data, proxied_data = (
        json.loads(bodies[base])["data"] for base in (bench_stack.paper_url, bench_stack.proxy_url)
    )
    for data in (direct_data, proxied_data):
        data.pop("updated-at", None)
    assert direct_data == proxied_data
