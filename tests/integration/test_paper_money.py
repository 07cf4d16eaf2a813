"""Paper broker: beginning-of-day snapshots by date, taken at its own New York day start, and
money movements (a control to deposit or withdraw; TastyTrade's transaction history), in the
shapes tastyware 13 parses."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import aiohttp
import pytest
from tastytrade import Account, Session
from tastytrade.account import AccountBalanceSnapshot, Transaction

from gatekeeper.core.tradingday import NEW_YORK, trading_day
from gatekeeper.paper import build_book, new_control_token, running_paper
from gatekeeper.paper.http import CONTROL_PREFIX
from tests.e2e.sdk_drivers import TASTYWARE_WARNING_FILTER
from tests.fixtures.paper import PaperBroker, paper_seed


async def get(session: aiohttp.ClientSession, path: str, headers: dict[str, str]) -> Any:
    async with session.get(path, headers=headers) as response:
        assert response.status == 200, await response.text()
        return await response.json()


async def move(
    session: aiohttp.ClientSession, account: str, body: dict[str, Any], status: int = 201
) -> Any:
    async with session.post(f"{CONTROL_PREFIX}accounts/{account}/money-movements", json=body) as r:
        assert r.status == status, await r.text()
        return (await r.json()).get("data") or (await r.json())


def today() -> date:
    return trading_day(datetime.now(UTC))


async def test_bod_snapshots_exist_for_today_only(
    paper_broker: PaperBroker, paper_http: aiohttp.ClientSession, paper_auth: dict[str, str]
) -> None:
    base = f"/accounts/{paper_broker.account_number}/balance-snapshots?time-of-day=BOD"
    dated = await get(paper_http, f"{base}&snapshot-date={today().isoformat()}", paper_auth)
    (item,) = dated["data"]["items"]
    assert (item["snapshot-date"], item["time-of-day"]) == (today().isoformat(), "BOD")
    assert Decimal(item["net-liquidating-value"]) == Decimal("100000.00")
    assert dated["pagination"]["total-items"] == 1
    yesterday = (today() - timedelta(days=1)).isoformat()
    assert (await get(paper_http, f"{base}&snapshot-date={yesterday}", paper_auth))["data"] == {
        "items": []
    }
    async with paper_http.get(base.replace("BOD", "NOON"), headers=paper_auth) as response:
        assert response.status == 400


async def test_the_bod_snapshot_is_taken_at_the_new_york_day_start() -> None:
    seed = paper_seed()
    clock = [datetime(2026, 3, 7, 23, 59, 59, tzinfo=NEW_YORK).astimezone(UTC)]
    book = build_book(seed, clock=lambda: clock[0])
    number = seed.accounts[0].account_number
    client = seed.users[0].oauth_clients[0]
    async with (
        running_paper(book, control_token=new_control_token()) as url,
        aiohttp.ClientSession(base_url=url) as http,
    ):
        body = {
            "grant_type": "refresh_token",
            "refresh_token": client.refresh_token,
            "client_secret": client.client_secret,
        }
        async with http.post("/oauth/token", json=body) as response:
            auth = {"Authorization": f"Bearer {(await response.json())['access_token']}"}

        async def bod(day: str) -> list[Any]:
            path = f"/accounts/{number}/balance-snapshots?time-of-day=BOD&snapshot-date={day}"
            items: list[Any] = (await get(http, path, auth))["data"]["items"]
            return items

        (first,) = await bod("2026-03-07")
        assert Decimal(first["net-liquidating-value"]) == Decimal("100000.00")
        book.set_quote("BIL", Decimal("69.99"), Decimal("70.01"))  # NLV 94,465.00 at midnight
        clock[0] = datetime(2026, 3, 8, 0, 0, 0, tzinfo=NEW_YORK).astimezone(UTC)
        (second,) = await bod("2026-03-08")
        assert Decimal(second["net-liquidating-value"]) == Decimal("94465.00")
        assert second["snapshot-date"] == "2026-03-08"
        assert await bod("2026-03-07") == []  # yesterday's is gone with the day
        book.set_quote("BIL", Decimal("83.49"), Decimal("83.51"))  # the day's moves leave it
        (same,) = await bod("2026-03-08")
        assert Decimal(same["net-liquidating-value"]) == Decimal("94465.00")


async def test_deposits_and_withdrawals_move_cash_and_are_transactions(
    paper_broker: PaperBroker, paper_http: aiohttp.ClientSession, paper_auth: dict[str, str]
) -> None:
    number = paper_broker.account_number
    deposit = await move(paper_http, number, {"amount": "10000.00"})
    assert Decimal(deposit["cash-balance"]) == Decimal("70000.00")
    assert Decimal(deposit["net-liquidating-value"]) == Decimal("110000.00")
    withdrawal = await move(paper_http, number, {"amount": -2500, "description": "rent"})
    assert Decimal(withdrawal["cash-balance"]) == Decimal("67500.00")
    await move(paper_http, number, {"amount": "-100", "sub-type": "Transfer"})
    for bad in ({"amount": 0}, {"amount": "5", "sub-type": "Withdrawal"}, {"amount": "x"}):
        await move(paper_http, number, bad, status=400)
    await move(paper_http, "NOPE1", {"amount": "5"}, status=404)
    # Bots' credentials do not open the control routes: only the control token does.
    async with aiohttp.ClientSession(base_url=paper_broker.url) as plain:
        path = f"{CONTROL_PREFIX}accounts/{number}/money-movements"
        async with plain.post(path, json={"amount": "5"}, headers=paper_auth) as response:
            assert response.status == 401

    day = today().isoformat()
    base = f"/accounts/{number}/transactions"
    listed = await get(
        paper_http,
        f"{base}?types[]=Money Movement&start-date={day}&end-date={day}",
        paper_auth,
    )
    items = listed["data"]["items"]
    assert [(i["transaction-sub-type"], i["value"], i["value-effect"]) for i in items] == [
        ("Transfer", "100.0", "Debit"),
        ("Withdrawal", "2500.0", "Debit"),
        ("Deposit", "10000.00", "Credit"),
    ]
    assert items[1]["description"] == "rent"
    assert {i["transaction-date"] for i in items} == {day}
    assert listed["pagination"]["total-items"] == 3
    deposits = await get(paper_http, f"{base}?sub-type[]=Deposit&sort=Asc", paper_auth)
    assert [i["value"] for i in deposits["data"]["items"]] == ["10000.00"]
    page = await get(paper_http, f"{base}?sort=Asc&per-page=1&page-offset=1", paper_auth)
    assert [i["transaction-sub-type"] for i in page["data"]["items"]] == ["Withdrawal"]
    assert page["pagination"]["total-pages"] == 3
    tomorrow = (today() + timedelta(days=1)).isoformat()
    later = await get(paper_http, f"{base}?start-date={tomorrow}", paper_auth)
    assert later["data"]["items"] == []
    trades = await get(paper_http, f"{base}?type=Trade", paper_auth)
    assert trades["data"]["items"] == []
    other = paper_broker.foreign_account_number
    async with paper_http.get(f"/accounts/{other}/transactions", headers=paper_auth) as response:
        assert response.status == 403


@pytest.mark.filterwarnings(TASTYWARE_WARNING_FILTER)
async def test_tastyware_reads_snapshots_and_money_movements(
    paper_broker: PaperBroker, paper_http: aiohttp.ClientSession
) -> None:
    number = paper_broker.account_number
    await move(paper_http, number, {"amount": "10000.00"})
    await move(paper_http, number, {"amount": "-2500.00"})
    client = await asyncio.to_thread(
        Session, paper_broker.client_secret, paper_broker.refresh_token
    )
    async with client as session:
        session._client.base_url = paper_broker.url
        account = await Account.get(session, number)
        snapshots = await account.get_balance_snapshots(
            session, snapshot_date=today(), time_of_day="BOD"
        )
        history = await account.get_history(
            session, types=["Money Movement"], start_date=today(), end_date=today()
        )
    (snapshot,) = snapshots
    assert isinstance(snapshot, AccountBalanceSnapshot)
    assert (snapshot.snapshot_date, snapshot.time_of_day) == (today(), "BOD")
    assert snapshot.net_liquidating_value == Decimal("100000.00")
    assert all(isinstance(t, Transaction) for t in history)
    # tastyware signs values by their effect: the netted money movements of the day.
    assert sum(t.value for t in history) == Decimal("7500.00")
    assert [t.transaction_sub_type for t in history] == ["Withdrawal", "Deposit"]
    asked = [r.raw_path for r in paper_broker.book.seen_requests()]
    # What tastyware sends: the query the paper broker (like TastyTrade) must read.
    assert (
        f"/accounts/{number}/balance-snapshots?per-page=250&page-offset=0&currency=USD" in asked[2]
    )
    assert f"snapshot-date={today().isoformat()}&time-of-day=BOD" in asked[2]
    assert "types%5B%5D=Money+Movement" in asked[3]
