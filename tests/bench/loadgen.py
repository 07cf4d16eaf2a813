"""A small closed-loop load generator: N requests, C in flight, latencies per request."""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import aiohttp


@dataclass(frozen=True)
class Result:
    label: str
    latencies: list[float]
    elapsed: float
    statuses: dict[int, int]

    @property
    def rate(self) -> float:
        return len(self.latencies) / self.elapsed

    def percentile(self, fraction: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]

    @property
    def p50(self) -> float:
        return statistics.median(self.latencies)

    @property
    def p99(self) -> float:
        return self.percentile(0.99)


Request = Callable[[aiohttp.ClientSession], Awaitable[int]]


async def run_load(label: str, request: Request, total: int, concurrency: int) -> Result:
    """Send ``total`` requests with ``concurrency`` in flight; record each one's latency."""
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    remaining = total
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def worker() -> None:
            nonlocal remaining
            while remaining > 0:
                remaining -= 1
                started = time.perf_counter()
                status = await request(session)
                latencies.append(time.perf_counter() - started)
                statuses[status] = statuses.get(status, 0) + 1

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    return Result(label, latencies, elapsed, statuses)


def report(title: str, baseline: Result, measured: Result) -> str:
    """A table of rate and latency, with ratios and added latency against the baseline."""
    ms = 1000.0
    lines = [
        f"\n== {title} ==",
        f"{'':24}{'req/s':>10}{'p50 ms':>10}{'p99 ms':>10}",
        *(
            f"{r.label:24}{r.rate:10.0f}{r.p50 * ms:10.2f}{r.p99 * ms:10.2f}"
            for r in (baseline, measured)
        ),
        f"{'ratio / added':24}{measured.rate / baseline.rate:10.2f}"
        f"{(measured.p50 - baseline.p50) * ms:+10.2f}{(measured.p99 - baseline.p99) * ms:+10.2f}",
    ]
    return "\n".join(lines)
