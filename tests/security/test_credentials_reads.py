"""The broker's 401/403 on any read made with a request's credentials (instruments, quotes,
the state behind validate_trade and check-order) is broker_auth_failed, relayed with the
broker's status; cached state answers validate_trade and check-order only for a confirmed
credential (issue 8, item 3)."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import tempfile
from typing import Any

import aiohttp
import asyncpg
import pytest

from tests.fixtures.admin import AdminApi
from tests.fixtures.orders import Bot, order, protect
from tests.fixtures.paper import PaperBroker
from tests.security.credentials import (
    decision_of,
    gatekeeper_caching,
    orders_seen,
    other_users_auth,
    state_fetches,
)
from tests.security.test_credentials_cache import BIG, assert_no_victim_figures

SPXW_PUT = "SPXW  261218P04800000"
VALIDATE = "/api/v1/portfolio_protections/validate_trade"


@pytest.mark.parametrize(
    ("path", "status", "body"),
    [
        ("/market-data", 401, order("AAPL", 1)),
        ("/market-data", 403, order("AAPL", 1)),
        ("/instruments", 401, order(SPXW_PUT, 1, "15.00", instrument_type="Equity Option")),
        ("/instruments", 403, order(SPXW_PUT, 1, "15.00", instrument_type="Equity Option")),
    ],
    ids=["quotes-401", "quotes-403", "instruments-401", "instruments-403"],
)
async def test_a_refused_quote_or_instrument_read_is_broker_auth_failed(
    paper_broker: PaperBroker,
    paper_auth: dict[str, str],
    database_url: str,
    redis_url: str,
    pg_pool: asyncpg.Pool,
    path: str,
    status: int,
    body: dict[str, Any],
) -> None:
    account = paper_broker.account_number
    paper_broker.book.add_fault(path, status=status)
    async with (
        gatekeeper_caching(paper_broker, database_url, redis_url) as gate,
        aiohttp.ClientSession() as session,
    ):
        bot = Bot(gate.proxy_url, paper_auth, session, account)
        answer = await bot.place(body)

    assert answer.status == status, answer.body
    assert answer.body["error"]["code"] == "broker_auth_failed"
    row = await decision_of(pg_pool, answer)
    assert (row["verdict"], row["codes"], row["trade_count"]) == (
        "reject",
        ["broker_auth_failed"],
        0,
    )
    assert orders_seen(paper_broker) == []


async def test_validate_trade_uses_the_cache_only_for_a_confirmed_broker_credential(
    paper_broker: PaperBroker,
    paper_auth: dict[str, str],
    database_url: str,
    redis_url: str,
    pg_pool: asyncpg.Pool,
) -> None:
    account = paper_broker.account_number
    stranger_auth = await other_users_auth(paper_broker)
    async with (
        gatekeeper_caching(paper_broker, database_url, redis_url) as gate,
        aiohttp.ClientSession() as session,
    ):
        api = AdminApi(gate.admin_url, gate, pg_pool, session, database_url)
        admin = await api.issue("risk-admin@example.com", "admin")
        body = {"portfolio_protection": {"account_id": account}}
        assert (await api.call("POST", "/api/v1/portfolio_protections", admin, body)).status == 201
        victim = Bot(gate.proxy_url, paper_auth, session, account)
        assert (await victim.place(order("AAPL", 1), dry_run=True)).status == 201
        check = {"account_id": account, "order": BIG}

        own = await api.call(
            "POST",
            VALIDATE,
            admin,
            check,
            headers={"X-Broker-Authorization": paper_auth["Authorization"]},
        )
        assert own.status == 200, own.body
        assert own.body["valid"] is False
        assert state_fetches(paper_broker, account) == 1  # the proxy's fetch confirmed it

        for auth, status in ((stranger_auth["Authorization"], 403), ("Bearer garbage", 401)):
            refused = await api.call(
                "POST", VALIDATE, admin, check, headers={"X-Broker-Authorization": auth}
            )
            assert refused.status == status, refused.body
            assert refused.error["code"] == "broker_auth_failed"
            assert_no_victim_figures(json.dumps(refused.body))
        assert state_fetches(paper_broker, account) == 3


async def _check_order(env: dict[str, str], *args: str) -> tuple[int, dict[str, Any]]:
    with tempfile.TemporaryDirectory(prefix="gk-cli-") as workdir:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "gatekeeper.cli", "check-order", *args,
            cwd=workdir, env=env,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, err = await process.communicate()
    assert process.returncode is not None
    assert out, err.decode()
    parsed: dict[str, Any] = json.loads(out)
    return process.returncode, parsed


async def test_check_order_uses_the_cache_only_for_a_confirmed_broker_credential(
    paper_broker: PaperBroker,
    paper_auth: dict[str, str],
    database_url: str,
    redis_url: str,
    pg_pool: asyncpg.Pool,
) -> None:
    account = paper_broker.account_number
    await protect(pg_pool, account)
    stranger_auth = await other_users_auth(paper_broker)
    async with (
        gatekeeper_caching(paper_broker, database_url, redis_url) as gate,
        aiohttp.ClientSession() as session,
    ):
        victim = Bot(gate.proxy_url, paper_auth, session, account)
        assert (await victim.place(order("AAPL", 1), dry_run=True)).status == 201
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEKEEPER_")}
    env.update(
        DATABASE_URL=database_url,
        REDIS_URL=redis_url,
        GATEKEEPER_PROXY__UPSTREAM_URL=paper_broker.url,
        GATEKEEPER_LOG_LEVEL="WARNING",
        # The victim's cached state is fresh for the CLI too.
        GATEKEEPER_RISK__STATE_TTL_SECONDS="30",
        GATEKEEPER_RISK__MAX_STATE_AGE_SECONDS="60",
    )
    for auth, status_code in ((stranger_auth["Authorization"], 403), ("Bearer garbage", 401)):
        code, answer = await _check_order(
            env, account, json.dumps(BIG), "--broker-authorization", auth
        )
        assert code == 2, answer
        assert answer["error"]["code"] == "broker_auth_failed", answer
        assert str(status_code) in answer["error"]["message"]
        assert_no_victim_figures(json.dumps(answer))
    assert state_fetches(paper_broker, account) == 3
