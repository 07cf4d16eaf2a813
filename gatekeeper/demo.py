"""``gatekeeper demo``: the whole product on one machine, for trying it out.

Postgres and Redis come from the pip wheels (gatekeeper[embedded]) unless DATABASE_URL /
REDIS_URL are configured; the paper broker is the upstream; the gatekeeper runs in front of
it with a default protection on the paper account and a printed admin token.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import timedelta
from typing import TextIO
from urllib.parse import urlsplit, urlunsplit

import asyncpg
from pydantic import SecretStr

from gatekeeper.adapters.protections import Actor, upsert_protection
from gatekeeper.adapters.users import UserNotFound, create_token, create_user, find_user
from gatekeeper.auth import Role
from gatekeeper.cli_demo_env import DEMO_ENV_FILE, demo_lock, remove_demo_env, write_demo_env
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
        stack.enter_context(demo_lock(settings.embedded.data_dir.resolve()))  # one at a time
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
        out.write(tls_trust_note(demo_settings, listening.proxy_url))
        out.write(_share_with_commands(stack, database_url, redis_url, paper_url, account))
        out.flush()
        await asyncio.Event().wait()


def _without_password(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{parts.username}:***@{host}"))


def _share_with_commands(
    stack: AsyncExitStack, database_url: str, redis_url: str, upstream: str, account: str
) -> str:
    """Write the env file the other commands read (removed when the demo stops) and say so."""
    values = {
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "GATEKEEPER_PROXY__UPSTREAM_URL": upstream,
    }
    path = write_demo_env(values, os.getpid(), DEMO_ENV_FILE.resolve())
    stack.callback(remove_demo_env, os.getpid(), path)
    return f"""
Its backends, written to {path}
(gatekeeper commands run from this directory use them; variables you set win):
    DATABASE_URL={_without_password(database_url)}
    REDIS_URL={_without_password(redis_url)}
    GATEKEEPER_PROXY__UPSTREAM_URL={upstream}   (the paper broker: check-order reads it)
so in a second terminal, here:
    gatekeeper protections show {account}
    gatekeeper decisions {account}
"""


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
  console:   {admin}/console/   (log in with the admin token below)
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


def with_local_tls(settings: Settings) -> Settings:
    """``gatekeeper demo --tls``: the settings with the proxy serving HTTPS, from a local
    certificate authority kept in the demo's data directory (gatekeeper.tls)."""
    from gatekeeper.tls import ensure_local_certificates

    files = ensure_local_certificates(settings.embedded.data_dir.resolve() / "tls")
    proxy = settings.proxy.model_copy(
        update={"tls_certificate": files.certificate, "tls_key": files.key}
    )
    return settings.model_copy(update={"proxy": proxy})


def tls_trust_note(settings: Settings, proxy_url: str) -> str:
    """How to trust the demo's certificate authority ("" when the proxy serves plain HTTP)."""
    if settings.proxy.tls_certificate is None:
        return ""
    authority = settings.proxy.tls_certificate.with_name("ca.pem")
    address = proxy_url.removeprefix("https://")
    return f"""
HTTPS (--tls): the bots' listener has a certificate from this demo's own certificate
authority, which vouches for localhost, 127.0.0.1 and ::1 only. Trust it in the bot's shell:
    export REQUESTS_CA_BUNDLE={authority}   # requests: tastytrade-sdk
    export SSL_CERT_FILE={authority}        # httpx: tastyware tastytrade; OpenSSL tools
(each replaces that shell's list of trusted authorities: set it for the bot only), then:
    from tastytrade_sdk import Tastytrade; tasty = Tastytrade(api_base_url="{address}")
    curl --cacert {authority} {proxy_url}/accounts/...
"""
