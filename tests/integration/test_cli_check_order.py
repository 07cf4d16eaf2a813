"""``gatekeeper check-order``: the same engine from the command line, nothing forwarded."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import tempfile
from typing import Any

import asyncpg

from tests.fixtures.orders import order, protect


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


async def test_check_order_simple_and_tastytrade_forms(
    paper_broker: Any,
    paper_auth: dict[str, str],
    database_url: str,
    redis_url: str,
    pg_pool: asyncpg.Pool,
) -> None:
    account = paper_broker.account_number
    await protect(pg_pool, account, cash_reserve_percentage=30, max_single_trade_percentage=5)
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEKEEPER_")}
    env.update(
        DATABASE_URL=database_url,
        REDIS_URL=redis_url,
        GATEKEEPER_PROXY__UPSTREAM_URL=paper_broker.url,
        GATEKEEPER_LOG_LEVEL="WARNING",
    )
    auth = ["--broker-authorization", paper_auth["Authorization"]]
    simple = {"symbol": "AAPL", "quantity": 1000, "order_type": "limit",
              "action": "buy-to-open", "price": 150.00}  # fmt: skip
    code, verdict = await _check_order(env, account, json.dumps(simple), *auth)
    assert code == 1
    assert verdict["valid"] is False
    assert verdict["violations"][0]["code"] == "max_single_trade"
    assert "150.00%" in verdict["violations"][0]["message"]

    code, verdict = await _check_order(env, account, json.dumps(order("AAPL", 1, "150.00")), *auth)
    assert (code, verdict["valid"]) == (0, True)
    assert paper_broker.book.received_orders() == []

    code, verdict = await _check_order(env, "5WT09999", json.dumps(simple))
    assert code == 2
    assert verdict["error"]["code"] == "state_unavailable"
