"""``serve_paper`` (what ``gatekeeper paper`` runs), the dry-run replace route, and the
order parser's robustness against arbitrary JSON."""

from __future__ import annotations

import asyncio
import socket
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import aiohttp
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gatekeeper.paper import CONTROL_TOKEN_HEADER, new_control_token, serve_paper
from gatekeeper.paper.errors import PaperError
from gatekeeper.paper.orders import parse_order
from tests.fixtures.paper import SEED_FILE, PaperBroker


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


async def test_serve_paper_runs_until_cancelled(capsys: pytest.CaptureFixture[str]) -> None:
    port = free_port()
    token = new_control_token()
    task = asyncio.create_task(serve_paper("127.0.0.1", port, SEED_FILE, token))
    url = f"http://127.0.0.1:{port}"
    async with aiohttp.ClientSession(headers={CONTROL_TOKEN_HEADER: token}) as http:
        for _ in range(100):
            try:
                async with http.get(f"{url}/__paper/quotes") as response:
                    assert response.status == 200
                    break
            except aiohttp.ClientConnectionError:
                await asyncio.sleep(0.02)
        else:
            pytest.fail("the paper broker did not start")
    assert f"listening on {url}" in capsys.readouterr().out
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_dry_run_replace_changes_nothing(
    paper_broker: PaperBroker, paper_http: aiohttp.ClientSession, paper_auth: dict[str, str]
) -> None:
    base = f"/accounts/{paper_broker.account_number}/orders"
    order = {
        "order-type": "Limit",
        "time-in-force": "Day",
        "price": "140.00",
        "price-effect": "Debit",
        "legs": [
            {"instrument-type": "Equity", "symbol": "AAPL", "action": "Buy to Open", "quantity": 5}
        ],
    }
    async with paper_http.post(base, json=order, headers=paper_auth) as response:
        order_id = (await response.json())["data"]["order"]["id"]
    async with paper_http.post(
        f"{base}/{order_id}/dry-run", json={"price": "151.00"}, headers=paper_auth
    ) as response:
        assert response.status == 201
        data = (await response.json())["data"]
    assert "id" not in data["order"]
    assert Decimal(data["order"]["price"]) == Decimal("151.00")
    effect = data["buying-power-effect"]
    assert (Decimal(effect["change-in-buying-power"]), effect["change-in-buying-power-effect"]) == (
        Decimal("755.00"),
        "Debit",
    )
    # The 700.00 the resting order holds back is released by a replace.
    assert Decimal(effect["current-buying-power"]) == Decimal("60000.00")
    account = paper_broker.book.accounts[paper_broker.account_number]
    assert account.orders[order_id].status == "Live"
    assert len(account.orders) == 1
    assert [entry.kind for entry in paper_broker.book.received_orders()] == ["order"]


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=25),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=20), children, max_size=6)
    ),
    max_leaves=20,
)
leg_like = st.fixed_dictionaries(
    {},
    optional={
        "instrument-type": st.sampled_from(["Equity", "Equity Option", "Future", ""]) | json_values,
        "symbol": st.sampled_from(["AAPL", "SPY   261218C00600000", "", "aapl"]) | json_values,
        "action": st.sampled_from(["Buy to Open", "Sell to Close", "Buy"]) | json_values,
        "quantity": st.sampled_from(["1", "0", "-1", "1.5", "NaN", "1e400", 3]) | json_values,
    },
)
order_like = st.fixed_dictionaries(
    {},
    optional={
        "order-type": st.sampled_from(["Limit", "Market", "Stop", "Stop Limit", "Notional Market"])
        | json_values,
        "time-in-force": st.sampled_from(["Day", "GTC", "GTD", "IOC"]) | json_values,
        "price": st.sampled_from(["150.00", "-1", "Infinity", "", 1.5]) | json_values,
        "price-effect": st.sampled_from(["Debit", "Credit", "None"]) | json_values,
        "stop-trigger": st.sampled_from(["140", "0"]) | json_values,
        "legs": st.lists(leg_like, max_size=5) | json_values,
        "advanced-instructions": json_values,
        "external-identifier": json_values,
    },
)


@settings(max_examples=200, deadline=None)
@given(body=order_like | json_values)
def test_order_parser_accepts_or_refuses_cleanly(body: Any) -> None:
    now = datetime(2026, 1, 5, 15, 0, tzinfo=UTC)
    refusal: PaperError | None = None
    try:
        order = parse_order(body, "5WT00001", now)
    except PaperError as error:
        refusal = error
    if refusal is not None:
        assert refusal.status in (400, 422)
        assert all(item["code"] and item["message"] for item in refusal.errors)
        return
    assert order.legs
    assert all(leg.quantity > 0 and leg.quantity.is_finite() for leg in order.legs)
    if order.price is not None:
        assert order.price >= 0
        assert order.price_effect in ("Debit", "Credit")
