"""Paper broker test controls: quotes, faults, the received-orders log, cash; and the seed."""

from __future__ import annotations

import asyncio
import json
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from gatekeeper.paper import SeedError, load_seed
from tests.fixtures.paper import SEED_FILE, PaperBroker

BUY_AAPL = {
    "order-type": "Market",
    "time-in-force": "Day",
    "legs": [
        {"instrument-type": "Equity", "symbol": "AAPL", "action": "Buy to Open", "quantity": 1}
    ],
}


async def json_of(response: aiohttp.ClientResponse) -> Any:
    return await response.json()


async def test_quote_routes_set_and_remove_prices(
    paper_broker: PaperBroker, paper_http: aiohttp.ClientSession, paper_auth: dict[str, str]
) -> None:
    option = "SPY   261218C00600000"
    async with paper_http.put(
        f"/__paper/quotes/{option}", json={"bid": "3.00", "ask": "3.10", "mark": "3.05"}
    ) as r:
        assert r.status == 200
        assert (await r.json())["data"]["instrument-type"] == "Equity Option"
    path = f"/accounts/{paper_broker.account_number}/balances"
    async with paper_http.get(path, headers=paper_auth) as r:
        balances = (await r.json())["data"]
    # The two calls lost 1.10 x 100 each.
    assert Decimal(balances["net-liquidating-value"]) == Decimal("99780.00")
    assert Decimal(balances["long-derivative-value"]) == Decimal("610.00")

    async with paper_http.delete("/__paper/quotes/AAPL") as r:
        assert r.status == 200
    async with paper_http.delete("/__paper/quotes/AAPL") as r:
        assert r.status == 404
    async with paper_http.get("/market-data/by-type?equity=AAPL", headers=paper_auth) as r:
        assert (await r.json())["data"]["items"] == []
    async with paper_http.post(
        f"/accounts/{paper_broker.account_number}/orders", json=BUY_AAPL, headers=paper_auth
    ) as r:
        assert r.status == 422
        assert (await r.json())["error"]["errors"][0]["code"] == "quote_unavailable"

    async with paper_http.put("/__paper/quotes/MSFT", json={"bid": "10", "ask": "9"}) as r:
        assert r.status == 400
    async with paper_http.put("/__paper/quotes/MSFT", json={"bid": "x", "ask": "9"}) as r:
        assert r.status == 400
    async with paper_http.get("/__paper/quotes") as r:
        symbols = {item["symbol"] for item in (await r.json())["data"]["items"]}
    assert "AAPL" not in symbols
    assert "TQQQ" in symbols


async def test_fault_returns_status_until_cleared(
    paper_broker: PaperBroker, paper_http: aiohttp.ClientSession, paper_auth: dict[str, str]
) -> None:
    prefix = f"/accounts/{paper_broker.account_number}/balances"
    async with paper_http.put("/__paper/faults", json={"path": prefix, "status": 503}) as r:
        assert r.status == 200
    for path in (prefix, prefix + "/USD"):
        async with paper_http.get(path, headers=paper_auth) as r:
            assert r.status == 503
            assert (await r.json())["error"]["code"] == "paper_fault_injected"
    async with paper_http.get(
        f"/accounts/{paper_broker.account_number}/positions", headers=paper_auth
    ) as r:
        assert r.status == 200
    async with paper_http.delete("/__paper/faults") as r:
        assert (await r.json())["data"]["items"] == []
    async with paper_http.get(prefix, headers=paper_auth) as r:
        assert r.status == 200


async def test_fault_with_times_and_method(
    paper_broker: PaperBroker, paper_http: aiohttp.ClientSession, paper_auth: dict[str, str]
) -> None:
    orders = f"/accounts/{paper_broker.account_number}/orders"
    fault = {"path": orders, "status": 500, "method": "POST", "times": 1}
    async with paper_http.put("/__paper/faults", json=fault) as r:
        assert r.status == 200
    async with paper_http.get(orders, headers=paper_auth) as r:
        assert r.status == 200
    async with paper_http.post(orders, json=BUY_AAPL, headers=paper_auth) as r:
        assert r.status == 500
    async with paper_http.post(orders, json=BUY_AAPL, headers=paper_auth) as r:
        assert r.status == 201
    # The faulted request never reached the book.
    assert len(paper_broker.book.received_orders()) == 1


async def test_fault_delay_makes_endpoint_hang(
    paper_broker: PaperBroker, paper_http: aiohttp.ClientSession, paper_auth: dict[str, str]
) -> None:
    prefix = f"/accounts/{paper_broker.account_number}/positions"
    paper_broker.book.add_fault(prefix, delay_seconds=30)
    with pytest.raises(asyncio.TimeoutError):
        async with paper_http.get(
            prefix, headers=paper_auth, timeout=aiohttp.ClientTimeout(total=0.3)
        ):
            pass
    paper_broker.book.clear_faults(prefix)
    paper_broker.book.add_fault(prefix, delay_seconds=0.2)
    started = time.monotonic()
    async with paper_http.get(prefix, headers=paper_auth) as r:
        assert r.status == 200
    assert time.monotonic() - started >= 0.2


@pytest.mark.parametrize(
    "fault",
    [{"status": 503}, {"path": "nope", "status": 503}, {"path": "/x"},
     {"path": "/x", "status": 200},
     {"path": "/x", "delay": "-1"}, {"path": "/x", "status": 500, "times": 0}],
)  # fmt: skip
async def test_invalid_faults_are_refused(
    paper_http: aiohttp.ClientSession, fault: dict[str, Any]
) -> None:
    async with paper_http.put("/__paper/faults", json=fault) as r:
        assert r.status == 400
        assert "error" in await r.json()


async def test_received_orders_log_counts_concurrent_posts(
    paper_broker: PaperBroker, paper_http: aiohttp.ClientSession, paper_auth: dict[str, str]
) -> None:
    orders = f"/accounts/{paper_broker.account_number}/orders"

    async def post(path: str) -> int:
        async with paper_http.post(path, json=BUY_AAPL, headers=paper_auth) as r:
            return r.status

    statuses = await asyncio.gather(*(post(orders) for _ in range(20)), post(orders + "/dry-run"))
    assert statuses == [201] * 21
    async with paper_http.get("/__paper/orders") as r:
        items = (await r.json())["data"]["items"]
    assert len(items) == 20
    assert {item["kind"] for item in items} == {"order"}
    assert {item["account-number"] for item in items} == {paper_broker.account_number}
    assert [item["seq"] for item in items] == list(range(1, 21))
    assert all(item["outcome"] == "accepted" and len(item["order-ids"]) == 1 for item in items)
    assert all("+00:00" in item["received-at"] for item in items)
    assert paper_broker.book.accounts[paper_broker.account_number].positions["AAPL"].quantity == 20
    async with paper_http.delete("/__paper/orders") as r:
        assert r.status == 200
    assert paper_broker.book.received_orders() == []


async def test_set_cash_moves_nlv(
    paper_broker: PaperBroker, paper_http: aiohttp.ClientSession
) -> None:
    path = f"/__paper/accounts/{paper_broker.account_number}/cash"
    async with paper_http.put(path, json={"cash": "30000.00"}) as r:
        data = (await r.json())["data"]
    assert Decimal(data["net-liquidating-value"]) == Decimal("70000.00")
    async with paper_http.put("/__paper/accounts/NOPE/cash", json={"cash": "1"}) as r:
        assert r.status == 404


def test_repository_seed_is_valid_and_account_a_shaped() -> None:
    seed = load_seed(SEED_FILE)
    account = next(a for a in seed.accounts if a.account_number == "5WT00001")
    assert account.cash_balance == Decimal("60000.00")
    assert account.net_liquidating_value == Decimal("100000.00")
    assert {p.symbol: p.quantity for p in account.positions}["TQQQ"] == 100


def test_seed_rejects_inconsistent_values_and_unknown_keys(tmp_path: Path) -> None:
    raw = json.loads(SEED_FILE.read_text())
    raw["accounts"][0]["net-liquidating-value"] = "100001.00"
    raw["accounts"][1]["colour"] = "blue"
    raw["quotes"].append({"symbol": "BAD", "bid": "2", "ask": "1"})
    path = tmp_path / "seed.json"
    path.write_text(json.dumps(raw))
    with pytest.raises(SeedError) as caught:
        load_seed(path)
    message = str(caught.value)
    assert "colour: unknown key" in message
    assert "bid 2 above ask 1" in message
    raw["accounts"][1].pop("colour")
    raw["quotes"].pop()
    path.write_text(json.dumps(raw))
    with pytest.raises(SeedError, match=r"net-liquidating-value 100001\.00 but cash"):
        load_seed(path)
    with pytest.raises(SeedError, match="cannot read"):
        load_seed(tmp_path / "missing.json")


async def test_fault_after_handling_places_the_order_but_loses_the_answer(
    paper_broker: PaperBroker, paper_http: aiohttp.ClientSession, paper_auth: dict[str, str]
) -> None:
    orders = f"/accounts/{paper_broker.account_number}/orders"
    fault = {"path": orders, "method": "POST", "status": 502, "after": True, "times": 1}
    async with paper_http.put("/__paper/faults", json=fault) as r:
        assert (await r.json())["data"]["after"] is True
    async with paper_http.post(orders, json=BUY_AAPL, headers=paper_auth) as r:
        assert r.status == 502
    account = paper_broker.book.accounts[paper_broker.account_number]
    assert [order.status for order in account.orders.values()] == ["Filled"]

    # A slow answer the client gives up on: the order still went through.
    paper_broker.book.add_fault(orders, delay_seconds=30, method="POST", after=True, times=1)
    with pytest.raises(asyncio.TimeoutError):
        async with paper_http.post(
            orders, json=BUY_AAPL, headers=paper_auth, timeout=aiohttp.ClientTimeout(total=0.3)
        ):
            pass
    assert len(account.orders) == 2
    assert account.positions["AAPL"].quantity == 2
    outcomes = [entry.outcome for entry in paper_broker.book.received_orders()]
    assert outcomes == ["accepted", "accepted"]

    # A refusal is still a refusal when the fault only delays the answer.
    paper_broker.book.add_fault(orders, delay_seconds=0.05, method="POST", after=True, times=1)
    async with paper_http.post(orders, json={"legs": []}, headers=paper_auth) as r:
        assert r.status == 400
