"""The yardstick: a minimal aiohttp reverse proxy, and the prototype of Gatekeeper's design.

Run: python -m tests.bench.minimal_proxy --port 8100 --upstream http://127.0.0.1:8090
     python -m tests.bench.minimal_proxy ... --prototype --database-url … --redis-url …

Minimal: one pooled client session, the body read and forwarded, hop-by-hop headers dropped,
the answer relayed. About the least a Python proxy can do per request, on the same stack as
Gatekeeper (aiohttp server and client, the default asyncio loop).

``--prototype`` adds, before forwarding each request, what the issue's prototype did: one
Redis round trip (the account state's cache read) and one audit INSERT committed in Postgres
(the decision row). It is the floor for an order path that keeps Gatekeeper's promises.
"""

from __future__ import annotations

import argparse
from collections.abc import AsyncIterator, Awaitable, Callable

import aiohttp
import asyncpg
import redis.asyncio as aioredis
from aiohttp import web

HOP_BY_HOP = frozenset(
    [
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "host",
        "content-length",
    ]
)
BeforeForward = Callable[[web.Request, bytes], Awaitable[None]]


def make_app(upstream: str, before_forward: BeforeForward | None = None) -> web.Application:
    sessions: list[aiohttp.ClientSession] = []

    async def session_ctx(app: web.Application) -> AsyncIterator[None]:
        connector = aiohttp.TCPConnector(limit=100)
        async with aiohttp.ClientSession(connector=connector, auto_decompress=False) as session:
            sessions.append(session)
            yield

    async def forward(request: web.Request) -> web.Response:
        body = await request.read()
        if before_forward is not None:
            await before_forward(request, body)
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP}
        url = upstream + request.path_qs
        async with sessions[0].request(request.method, url, headers=headers, data=body) as answer:
            payload = await answer.read()
            relayed = {k: v for k, v in answer.headers.items() if k.lower() not in HOP_BY_HOP}
            return web.Response(status=answer.status, body=payload, headers=relayed)

    app = web.Application()
    app.cleanup_ctx.append(session_ctx)
    app.router.add_route("*", "/{tail:.*}", forward)
    return app


def prototype_app(upstream: str, database_url: str, redis_url: str) -> web.Application:
    """The minimal proxy plus one Redis round trip and one committed INSERT per request."""
    pools: list[asyncpg.Pool] = []
    clients: list[aioredis.Redis] = []

    async def before_forward(request: web.Request, body: bytes) -> None:
        account = request.path.split("/")[2] if request.path.startswith("/accounts/") else "-"
        await clients[0].get(f"bench:state:{account}")
        await pools[0].execute(
            "INSERT INTO bench_prototype_audit (account_id, route, body) VALUES ($1, $2, $3)",
            account,
            request.path,
            body,
        )

    async def backends_ctx(app: web.Application) -> AsyncIterator[None]:
        pool = await asyncpg.create_pool(database_url, min_size=2, max_size=20)
        await pool.execute(
            "CREATE TABLE IF NOT EXISTS bench_prototype_audit (id bigserial PRIMARY KEY,"
            " account_id text NOT NULL, route text NOT NULL, body bytea NOT NULL,"
            " recorded_at timestamptz NOT NULL DEFAULT now())"
        )
        client = aioredis.from_url(redis_url)
        pools.append(pool)
        clients.append(client)
        yield
        await client.aclose()
        await pool.close()

    app = make_app(upstream, before_forward)
    app.cleanup_ctx.append(backends_ctx)
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--upstream", required=True)
    parser.add_argument("--prototype", action="store_true")
    parser.add_argument("--database-url")
    parser.add_argument("--redis-url")
    args = parser.parse_args()
    if args.prototype:
        app = prototype_app(args.upstream, args.database_url, args.redis_url)
    else:
        app = make_app(args.upstream)
    web.run_app(app, host="127.0.0.1", port=args.port, print=None, access_log=None)


if __name__ == "__main__":
    main()
