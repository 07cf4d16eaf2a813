"""Helpers for the credential tests: a gatekeeper with long-lived cached state, the other
paper user's token, the broker's request log and the decision row of an answer."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import asyncpg

from gatekeeper.settings import RiskSettings
from tests.fixtures.gate import Gate, make_settings, start_gatekeeper
from tests.fixtures.orders import Answer
from tests.fixtures.paper import PaperBroker, paper_seed


@asynccontextmanager
async def gatekeeper_caching(
    paper_broker: PaperBroker, database_url: str, redis_url: str, **risk: Any
) -> AsyncIterator[Gate]:
    """The gatekeeper in front of the paper broker, its account state fresh for 30 s: any
    request that does not fetch is served from the cache."""
    settings = make_settings(paper_broker.url, database_url, redis_url)
    risk_settings = RiskSettings(state_ttl_seconds=30, max_state_age_seconds=60, **risk)
    async with start_gatekeeper(settings.model_copy(update={"risk": risk_settings})) as gate:
        yield gate


async def other_users_auth(paper_broker: PaperBroker) -> dict[str, str]:
    """``Authorization`` of the seed's second user, who cannot see ``account_number``."""
    client = paper_seed().users[1].oauth_clients[0]
    body = {
        "grant_type": "refresh_token",
        "refresh_token": client.refresh_token,
        "client_secret": client.client_secret,
    }
    async with (
        aiohttp.ClientSession() as session,
        session.post(paper_broker.url + "/oauth/token", json=body) as response,
    ):
        assert response.status == 200, await response.text()
        token = (await response.json())["access_token"]
    return {"Authorization": f"Bearer {token}"}


async def another_token(paper_broker: PaperBroker) -> dict[str, str]:
    """A second access token of the seed user (the one ``paper_auth`` holds is another)."""
    body = {
        "grant_type": "refresh_token",
        "refresh_token": paper_broker.refresh_token,
        "client_secret": paper_broker.client_secret,
    }
    async with (
        aiohttp.ClientSession() as session,
        session.post(paper_broker.url + "/oauth/token", json=body) as response,
    ):
        assert response.status == 200, await response.text()
        token = (await response.json())["access_token"]
    return {"Authorization": f"Bearer {token}"}


def state_fetches(paper_broker: PaperBroker, account: str) -> int:
    """How often the broker was asked for ``account``'s balances (one per state fetch)."""
    wanted = f"/accounts/{account}/balances"
    return sum(1 for seen in paper_broker.book.seen_requests() if seen.raw_path == wanted)


def orders_seen(paper_broker: PaperBroker) -> list[str]:
    """Requests other than reads that reached the broker's accounts (an order, a dry-run)."""
    return [
        f"{seen.method} {seen.raw_path}"
        for seen in paper_broker.book.seen_requests()
        if seen.method != "GET" and seen.raw_path.startswith("/accounts/")
    ]


async def decision_of(pool: asyncpg.Pool, answer: Answer) -> asyncpg.Record:
    """The risk_decisions row named by the answer's X-Gatekeeper-Decision-Id."""
    decision_id = answer.headers["X-Gatekeeper-Decision-Id"]
    row = await pool.fetchrow(
        "SELECT account_id, verdict, codes, trade_count, message, detail::text AS detail"
        " FROM risk_decisions WHERE decision_id = $1",
        decision_id,
    )
    assert row is not None, f"no decision row {decision_id}"
    return row
