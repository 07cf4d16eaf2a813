"""The emergency stop acts (issue 10, items 1 and 2), against the paper broker: it cancels the
working orders that are not risk-reducing, records each cancel in an append-only table and
shows them in the status; anyone with the stop role may stop any account (one with no
protection too) or every account; clearing stays admin-only, with the account typed."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from decimal import Decimal
from typing import Any

import aiohttp
import asyncpg
import pytest

from gatekeeper.adapters import users
from gatekeeper.auth import Role
from gatekeeper.settings import BrokerClientSettings, StopSettings
from tests.fixtures.gate import Gate, make_settings, start_gatekeeper
from tests.fixtures.orders import Bot, order, protect, state_shows
from tests.fixtures.paper import paper_seed

STOPS = "/api/v1/emergency_stops"
STATUS = "/api/v1/portfolio_protections/status"
RESTING_BUY = order("AAPL", 20, "140.00")  # below the 150.10 ask: rests
RESTING_CLOSE = order("TQQQ", 50, "60.00", action="Sell to Close")  # above the bid: rests


async def token(pool: asyncpg.Pool, email: str, role: Role) -> dict[str, str]:
    async with pool.acquire() as conn:
        try:
            user = await users.find_user(conn, email)
        except users.UserNotFound:
            user = await users.create_user(conn, email)
        secret, _ = await users.create_token(conn, user, role, timedelta(hours=1))
    return {"Authorization": f"Bearer {secret}"}


async def admin_call(
    gate: Gate, method: str, path: str, auth: dict[str, str], body: Any = None
) -> tuple[int, dict[str, Any]]:
    async with (
        aiohttp.ClientSession() as session,
        session.request(method, gate.admin_url + path, json=body, headers=auth) as response,
    ):
        return response.status, await response.json()


def broker_orders(paper: Any, account: str) -> dict[int, str]:
    """Every order of the account at the paper broker: id -> status."""
    return {oid: o.status for oid, o in paper.book.accounts[account].orders.items()}


def cancel_requests(paper: Any) -> list[str]:
    return [s.raw_path for s in paper.book.seen_requests() if s.method == "DELETE"]


async def until(check: Any, within: float = 15.0) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not await check():
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError("condition not met")
        await asyncio.sleep(0.1)


async def runs(pool: asyncpg.Pool) -> int:
    count: int = await pool.fetchval("SELECT count(*) FROM stop_cancel_runs")
    return count


async def test_an_automatic_stop_cancels_opening_orders_and_keeps_a_close(
    bot: Bot, gatekeeper: Gate, paper_broker: Any, pg_pool: asyncpg.Pool, redis_url: str
) -> None:
    await protect(pg_pool, bot.account, max_position_concentration_percentage=100)
    buys = [await bot.place(RESTING_BUY) for _ in range(2)]
    close = await bot.place(RESTING_CLOSE)
    assert [a.status for a in (*buys, close)] == [201, 201, 201]
    buy_ids = [a.body["data"]["order"]["id"] for a in buys]
    close_id = close.body["data"]["order"]["id"]
    # BIL (410 held) falls: day P&L -5.54 %, the next order triggers the stop.
    paper_broker.book.set_quote("BIL", Decimal("69.99"), Decimal("70.01"))
    await state_shows(redis_url, bot.account, "94465.00")
    assert "max_daily_loss" in (await bot.place(order("AAPL", 1, "150.00"))).codes

    await until(lambda: runs(pg_pool))
    status = broker_orders(paper_broker, bot.account)
    assert [status[i] for i in buy_ids] == ["Cancelled", "Cancelled"]
    assert status[close_id] == "Live"  # risk-reducing: kept
    assert sorted(cancel_requests(paper_broker)) == sorted(
        f"/accounts/{bot.account}/orders/{i}" for i in buy_ids
    )
    # Nothing fills afterwards: AAPL trades through the buys' limit.
    paper_broker.book.set_quote("AAPL", Decimal("139.90"), Decimal("140.00"))
    assert "AAPL" not in paper_broker.book.accounts[bot.account].positions

    rows = await pg_pool.fetch(
        "SELECT c.order_id, c.outcome, c.http_status, r.credential, e.actor"
        " FROM stop_order_cancels c JOIN stop_cancel_runs r ON r.id = c.run_id"
        " JOIN emergency_events e ON e.id = c.emergency_event_id ORDER BY c.id"
    )
    assert {(r["order_id"], r["outcome"]) for r in rows} == {
        (str(buy_ids[0]), "cancelled"),
        (str(buy_ids[1]), "cancelled"),
        (str(close_id), "kept"),
    }
    assert {(r["credential"], r["actor"]) for r in rows} == {("request", "system")}
    viewer = await token(pg_pool, "owner@example.com", Role.VIEWER)
    code, body = await admin_call(gatekeeper, "GET", f"{STATUS}?account_id={bot.account}", viewer)
    assert code == 200
    cancels = body["working_orders_on_stop"]
    assert cancels["state"] == "done"
    assert cancels["message"] == "working orders cancelled: 2 cancelled, 1 kept (risk-reducing)"
    assert len(cancels["runs"][0]["orders"]) == 3


async def test_an_operator_stops_an_account_without_protection_and_a_bot_credential_cancels(
    bot: Bot, gatekeeper: Gate, paper_broker: Any, pg_pool: asyncpg.Pool
) -> None:
    resting = await bot.place(RESTING_BUY)
    assert resting.status == 201
    resting_id = resting.body["data"]["order"]["id"]
    assert await pg_pool.fetchval("SELECT count(*) FROM portfolio_protections") == 0
    operator = await token(pg_pool, "oncall@example.com", Role.OPERATOR)

    code, body = await admin_call(
        gatekeeper, "POST", STOPS, operator, {"account_id": bot.account, "reason": "kill switch"}
    )
    assert code == 200, body
    assert body["already_active"] is False
    (held,) = body["protections"]
    assert (held["emergency_stop_active_mode"], held["emergency_stop_triggered_by"]) == (
        "halt",
        "oncall@example.com",
    )
    owner = await pg_pool.fetchval("SELECT email FROM users WHERE id = $1", held["user_id"])
    assert owner == "system@gatekeeper.invalid"
    # No credentials of its own for this account: it says so, and the order still rests.
    assert body["working_orders_on_stop"]["state"] == "pending"
    assert "NOT yet cancelled" in body["working_orders_on_stop"]["message"]
    assert broker_orders(paper_broker, bot.account)[resting_id] == "Live"

    # The bot's next request is refused, and its credential (confirmed by the broker) cancels.
    refused = await bot.place(order("AAPL", 1, "150.00"))
    assert refused.codes == ["emergency_stop"]
    await until(lambda: runs(pg_pool))
    assert broker_orders(paper_broker, bot.account)[resting_id] == "Cancelled"
    assert await pg_pool.fetchval("SELECT credential FROM stop_cancel_runs") == "bot"
    code, body = await admin_call(gatekeeper, "GET", f"{STOPS}?account_id={bot.account}", operator)
    assert (code, body["emergency_stop_active"]) == (200, True)
    assert body["working_orders_on_stop"]["state"] == "done"

    # Clearing: admins only, with the account typed as confirmation.
    clear = {"account_id": bot.account, "confirm": bot.account}
    assert (await admin_call(gatekeeper, "DELETE", STOPS, operator, clear))[0] == 403
    admin = await token(pg_pool, "admin@example.com", Role.ADMIN)
    wrong = {"account_id": bot.account, "confirm": "true"}
    assert (await admin_call(gatekeeper, "DELETE", STOPS, admin, wrong))[0] == 400
    code, body = await admin_call(gatekeeper, "DELETE", STOPS, admin, clear)
    assert code == 200, body
    assert (await bot.place(order("AAPL", 1, "150.00"))).status == 201


async def test_the_global_stop_blocks_every_account_and_is_cleared_on_its_own(
    bot: Bot, gatekeeper: Gate, paper_broker: Any, pg_pool: asyncpg.Pool
) -> None:
    assert (await bot.place(order("AAPL", 1, "150.00"))).status == 201
    operator = await token(pg_pool, "oncall@example.com", Role.OPERATOR)
    loose = {"all": True, "reason": "market halt", "mode": "reduce_only"}
    assert (await admin_call(gatekeeper, "POST", STOPS, operator, loose))[0] == 403
    code, body = await admin_call(
        gatekeeper, "POST", STOPS, operator, {"all": True, "reason": "market halt"}
    )
    assert code == 200, body
    assert body["global_emergency_stop"]["active"] is True
    assert body["global_emergency_stop"]["mode"] == "halt"

    assert (await bot.place(order("AAPL", 1, "150.00"))).codes == ["emergency_stop"]
    # An account first seen after the stop (the user's cash account) is stopped too.
    cash = Bot(bot.base_url, bot.auth, bot.session, paper_broker.cash_account_number)
    sell = order("AAPL", 1, None, action="Sell to Close")  # it holds 50: risk-reducing
    assert (await cash.place(sell)).codes == ["emergency_stop"]
    events = await pg_pool.fetch("SELECT event, mode, actor, via FROM global_emergency_events")
    assert [tuple(e) for e in events] == [("triggered", "halt", "oncall@example.com", "api")]

    admin = await token(pg_pool, "admin@example.com", Role.ADMIN)
    clear = {"all": True, "confirm": "all"}
    assert (await admin_call(gatekeeper, "DELETE", STOPS, operator, clear))[0] == 403
    bad = {"all": True, "confirm": bot.account}
    assert (await admin_call(gatekeeper, "DELETE", STOPS, admin, bad))[0] == 400
    code, body = await admin_call(gatekeeper, "DELETE", STOPS, admin, clear)
    assert (code, body["global_emergency_stop"]["active"]) == (200, False)
    assert (await bot.place(order("AAPL", 1, "150.00"))).status == 201
    assert (await cash.place(sell)).status == 201


@pytest.fixture
async def own_credentials_gate(
    paper_broker: Any, database_url: str, redis_url: str
) -> AsyncIterator[Gate]:
    """The gatekeeper with its own OAuth client for Account A (the paper seed's)."""
    client = paper_seed().users[0].oauth_clients[0]
    base = make_settings(paper_broker.url, database_url, redis_url)
    own = BrokerClientSettings(
        accounts=(paper_broker.account_number,),
        client_secret=client.client_secret,
        refresh_token=client.refresh_token,
    )
    settings = base.model_copy(update={"stops": StopSettings(broker_clients=(own,))})
    async with start_gatekeeper(settings) as gate:
        yield gate


async def test_a_manual_stop_cancels_with_the_gatekeepers_own_credentials(
    own_credentials_gate: Gate,
    paper_broker: Any,
    paper_auth: dict[str, str],
    pg_pool: asyncpg.Pool,
    caplog: pytest.LogCaptureFixture,
) -> None:
    account = paper_broker.account_number
    async with aiohttp.ClientSession() as session:
        bot = Bot(own_credentials_gate.proxy_url, paper_auth, session, account)
        resting = await bot.place(RESTING_BUY)
    resting_id = resting.body["data"]["order"]["id"]
    operator = await token(pg_pool, "oncall@example.com", Role.OPERATOR)
    code, _ = await admin_call(
        own_credentials_gate, "POST", STOPS, operator, {"account_id": account, "reason": "x"}
    )
    assert code == 200
    # No bot request after the stop: the gatekeeper's own client does it.
    await until(lambda: runs(pg_pool))
    assert broker_orders(paper_broker, account)[resting_id] == "Cancelled"
    assert await pg_pool.fetchval("SELECT credential FROM stop_cancel_runs") == "gatekeeper_oauth"
    client = paper_seed().users[0].oauth_clients[0]
    assert client.refresh_token not in caplog.text
    assert client.client_secret not in caplog.text


@pytest.mark.parametrize("table", ["stop_cancel_runs", "stop_order_cancels"])
@pytest.mark.parametrize(
    "statement", ["UPDATE {table} SET account_id = 'X'", "DELETE FROM {table}", "TRUNCATE {table}"]
)
async def test_cancel_records_are_append_only(
    pg_pool: asyncpg.Pool, table: str, statement: str
) -> None:
    async with pg_pool.acquire() as conn:
        user = await users.create_user(conn, "o@example.com")
        pid = await conn.fetchval(
            "INSERT INTO portfolio_protections (user_id, account_id)"
            " VALUES ($1, 'A1') RETURNING id",
            user.id,
        )
        event = await conn.fetchval(
            "INSERT INTO emergency_events (protection_id, account_id, event, actor, via)"
            " VALUES ($1, 'A1', 'triggered', 'system', 'system') RETURNING id",
            pid,
        )
        run = await conn.fetchval(
            "INSERT INTO stop_cancel_runs (emergency_event_id, account_id, credential, complete)"
            " VALUES ($1, 'A1', 'bot', true) RETURNING id",
            event,
        )
        await conn.execute(
            "INSERT INTO stop_order_cancels (run_id, emergency_event_id, account_id, order_id,"
            " outcome) VALUES ($1, $2, 'A1', '7', 'cancelled')",
            run,
            event,
        )
        refusals = (asyncpg.RestrictViolationError, asyncpg.FeatureNotSupportedError)
        with pytest.raises(refusals, match=r"append-only|foreign key"):
            await conn.execute(statement.format(table=table))
        async with conn.transaction():
            await conn.execute("SET LOCAL ROLE gatekeeper_app")
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await conn.execute(f"UPDATE {table} SET account_id = 'X'")  # noqa: S608
        assert await conn.fetchval(f"SELECT count(*) FROM {table}") == 1  # noqa: S608
