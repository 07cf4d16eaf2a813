"""The Python load generator: closed loop, C requests in flight, for a time or a number of
requests; prints one ``BENCH {json}`` line (the figures ``drive.py``'s wrk script prints).

The comparison uses it when wrk is absent (one Python process: it may be the limit of the
fastest setups, which the report's "gen CPU" shows) and for the growth series, whose rounds
are a fixed number of orders.

Run: python -m tests.bench.loadgen URL [URL…] --connections 16 --seconds 5
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from pathlib import Path
from typing import Any

import aiohttp


async def run_bounded(
    urls: list[str],
    method: str,
    body: bytes | None,
    headers: dict[str, str],
    connections: int,
    *,
    seconds: float | None = None,
    total: int | None = None,
) -> dict[str, Any]:
    """Closed loop: ``connections`` requests in flight, over ``urls`` in turn, for ``seconds``
    or until ``total`` are answered; the figures ``drive.py``'s wrk script prints, and the
    same for each URL (``by_url``)."""
    latencies: list[float] = []
    failures = {"status": 0, "socket": 0}
    by_url: dict[str, tuple[list[float], dict[str, int]]] = {
        url: ([], {"status": 0, "socket": 0}) for url in urls
    }
    counter = 0
    connector = aiohttp.TCPConnector(limit=connections)
    async with aiohttp.ClientSession(connector=connector) as session:
        started = time.perf_counter()
        deadline = started + seconds if seconds is not None else float("inf")

        async def worker() -> None:
            nonlocal counter
            while time.perf_counter() < deadline and (total is None or counter < total):
                url = urls[counter % len(urls)]
                counter += 1
                mine, my_failures = by_url[url]
                sent = time.perf_counter()
                try:
                    async with session.request(method, url, data=body, headers=headers) as r:
                        await r.read()
                        failed = not 200 <= r.status < 400
                        failures["status"] += failed
                        my_failures["status"] += failed
                except aiohttp.ClientError:
                    failures["socket"] += 1
                    my_failures["socket"] += 1
                    continue
                latency = time.perf_counter() - sent
                latencies.append(latency)
                mine.append(latency)

        await asyncio.gather(*(worker() for _ in range(connections)))
        elapsed = time.perf_counter() - started
    return {
        **_figures(latencies, failures),
        "seconds": elapsed,
        # each URL's own (the growth series sends its levels' accounts in turn)
        "by_url": {url: _figures(*by_url[url]) for url in urls},
    }


def _figures(latencies: list[float], failures: dict[str, int]) -> dict[str, Any]:
    ordered = sorted(latencies) or [0.0]
    return {
        "requests": len(latencies),
        "p50_ms": statistics.median(ordered) * 1000,
        "p99_ms": ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))] * 1000,
        "non_2xx": failures["status"],
        "socket_errors": failures["socket"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description="closed-loop HTTP load; prints BENCH {json}")
    parser.add_argument("urls", nargs="+")
    parser.add_argument("--method", default="GET")
    parser.add_argument("--body-file")
    parser.add_argument("--header", action="append", default=[], help="Name: value")
    parser.add_argument("--connections", type=int, default=1)
    parser.add_argument("--seconds", type=float)
    parser.add_argument("--requests", type=int)
    args = parser.parse_args()
    body = Path(args.body_file).read_bytes() if args.body_file else None
    headers = dict(h.split(": ", 1) for h in args.header)
    figures = asyncio.run(
        run_bounded(
            args.urls, args.method, body, headers, args.connections,
            seconds=args.seconds, total=args.requests,
        )
    )  # fmt: skip
    print("BENCH " + json.dumps(figures))


if __name__ == "__main__":
    main()
