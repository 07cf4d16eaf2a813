"""``gatekeeper demo``: the whole product on one machine, for trying it out.

Postgres and Redis come from the pip wheels (gatekeeper[embedded]) unless DATABASE_URL /
REDIS_URL are configured; the paper broker is the upstream; the gatekeeper runs in front of
it with a default protection on the paper account and a printed admin token.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import timedelta
from typing import TextIO

import asyncpg
from pydantic import SecretStr

from gatekeeper.adapters.protections import Actor, upsert_protection
from gatekeeper.adapters.users import UserNotFound, create_token, create_user, find_user
from gatekeeper.auth import Role
from gatekeeper.migrate import migrate_and_report
from gatekeeper.paper import build_book, load_seed, new_control_token, running_paper
from gatekeeper.settings import Settings
from gatekeeper.web.server import open_backends, running

log = logging.getLogger(__name__)

DEMO_DATABASE = "gatekeeper"
DEMO_ADMIN = "demo-admin@example.com"


@asynccontextmanager
async def _embedded_postgres(settings: Settings) -> AsyncIterator[str]:
    from gatekeeper.embedded import EmbeddedPostgres

    server = EmbeddedPostgres(settings.embedded.data_dir.resolve() / "postgres", durable=True)
    await asyncio.to_thread(server.start)
    try:
        conn = await asyncpg.connect(server.url)
        try:
            exists = await conn.fetchval(
                "SELECT 1 FROM pg_database WHERE datname = $1", DEMO_DATABASE
            )
            if not exists:
                await conn.execute(f'CREATE DATABASE "{DEMO_DATABASE}"')
        finally:
            await conn.close()
        yield server.url.rsplit("/", 1)[0] + "/" + DEMO_DATABASE
    finally:
        await asyncio.to_thread(server.stop)


@asynccontextmanager
async def _embedded_redis(settings: Settings) -> AsyncIterator[str]:
    from gatekeeper.embedded import EmbeddedRedis

    server = EmbeddedRedis(settings.embedded.data_dir.resolve() / "redis")
    await asyncio.to_thread(server.start)
    try:
        yield server.url
    finally:
        await asyncio.to_thread(server.stop)


async def _seed_demo(database_url: str, account: str) -> str:
    """A demo admin with a fresh 24 h token, and the seed's Step 7 protection on ``account``."""
    conn = await asyncpg.connect(database_url)
    try:
        try:
            user = await find_user(conn, DEMO_ADMIN)
        except UserNotFound:
            user = await create_user(conn, DEMO_ADMIN, "Demo admin")
        token, _ = await create_token(conn, user, Role.ADMIN, timedelta(hours=24), "demo")
        await upsert_protection(conn, user.id, account, {}, Actor("demo", "cli", user.id))
        return token
    finally:
        await conn.close()


async def run_demo(settings: Settings, out: TextIO) -> None:
    """Start everything, print how to use it, and run until cancelled."""
    async with AsyncExitStack() as stack:
        if settings.database_url is not None:
            database_url = settings.database_url.get_secret_value()
        else:
            database_url = await stack.enter_async_context(_embedded_postgres(settings))
        if settings.redis_url is not None:
            redis_url = settings.redis_url.get_secret_value()
        else:
            redis_url = await stack.enter_async_context(_embedded_redis(settings))
        await migrate_and_report(database_url, out=out)

        seed = load_seed(settings.paper.accounts_file)
        configured = settings.paper.control_token
        control_token = (
            configured.get_secret_value() if configured is not None else new_control_token()
        )
        paper_url = await stack.enter_async_context(
            running_paper(
                build_book(seed),
                settings.paper.host,
                settings.paper.port,
                control_token=control_token,
            )
        )
        user = seed.users[0]
        account = user.accounts[0]
        client = user.oauth_clients[0]
        admin_token = await _seed_demo(database_url, account)

        demo_settings = settings.model_copy(
            update={
                "database_url": SecretStr(database_url),
                "redis_url": SecretStr(redis_url),
                "proxy": settings.proxy.model_copy(update={"upstream_url": paper_url}),
            }
        )
        backends = await stack.enter_async_context(open_backends(demo_settings))
        listening = await stack.enter_async_context(running(demo_settings, backends))
        out.write(
            _banner(
                listening.proxy_url,
                listening.admin_url,
                paper_url,
                account,
                (client.refresh_token, client.client_secret),
                admin_token,
                control_token,
            )
        )
        out.flush()
        await asyncio.Event().wait()


def _banner(
    proxy: str,
    admin: str,
    paper: str,
    account: str,
    oauth: tuple[str, str],
    token: str,
    control_token: str,
) -> str:
    refresh_token, client_secret = oauth
    return f"""
gatekeeper demo is running
  bots:      {proxy}   (instead of https://api.tastyworks.com)
  operators: {admin}   (/readyz, /metrics, /api/v1/portfolio_protections)
  upstream:  {paper}   (paper broker, accounts from config/paper-accounts.json)

Point a bot at it, e.g. with the tastyware SDK:
    import tastytrade.session; tastytrade.session.API_URL = "{proxy}"
or by hand (paper account {account}; paper credentials from config/paper-accounts.json):
    curl -s {proxy}/oauth/token -H 'Content-Type: application/json' -d '{{"grant_type": \\
      "refresh_token", "refresh_token": "{refresh_token}", "client_secret": "{client_secret}"}}'
    curl -s {proxy}/accounts/{account}/balances -H 'Authorization: Bearer <access_token>'

Admin token (role admin, valid 24 h, shown once):
    {token}
    curl -s '{admin}/api/v1/portfolio_protections/status?account_id={account}' \\
      -H 'Authorization: Bearer {token}'

Paper broker controls (quotes, cash, faults), on the paper broker itself only:
    curl -s {paper}/__paper/quotes -H 'X-Paper-Control-Token: {control_token}'

Ctrl-C stops everything.
"""
