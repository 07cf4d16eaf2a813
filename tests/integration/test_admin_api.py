"""The admin API over HTTP against real Postgres: the seed's Steps 5 and 6, updates, history
and every way a request can be malformed (nothing changes)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.fixtures.admin import AdminApi, Issued

BASE = "/api/v1/portfolio_protections"
SEED_PROTECTION = {
    "account_id": "TEST123",
    "cash_reserve_percentage": 25.0,
    "max_daily_loss_percentage": 5.0,
    "max_single_trade_percentage": 10.0,
    "max_portfolio_exposure_percentage": 75.0,
}
SEED_ORDER = {
    "account_id": "TEST123",
    "order": {
        "symbol": "AAPL",
        "quantity": 100,
        "order_type": "limit",
        "action": "buy-to-open",
        "price": 150.00,
    },
}


@pytest.fixture
async def admin(admin_api: AdminApi) -> Issued:
    return await admin_api.issue("risk-test@example.com", "admin")


async def create(api: AdminApi, token: Issued, **overrides: Any) -> dict[str, Any]:
    reply = await api.call(
        "POST", BASE, token, {"portfolio_protection": SEED_PROTECTION | overrides}
    )
    assert reply.status == 201, reply.body
    protection: dict[str, Any] = reply.body["portfolio_protection"]
    return protection


async def count(api: AdminApi, table: str) -> int:
    rows = await api.fetch(f"SELECT count(*) AS n FROM {table}")  # noqa: S608
    n: int = rows[0]["n"]
    return n


# -- Step 5 -----------------------------------------------------------------------------------


async def test_step_5_create_then_status(admin_api: AdminApi, admin: Issued) -> None:
    missing = await admin_api.call("GET", f"{BASE}/status?account_id=TEST123", admin)
    assert missing.status == 404

    created = await create(admin_api, admin)
    assert created["account_id"] == "TEST123"
    assert created["cash_reserve_percentage"] == "25.00"
    assert created["max_position_concentration_percentage"] == "20.00"  # Step 7 default
    assert created["max_daily_trades"] == 50
    assert created["email_alerts_enabled"] is True
    assert created["active"] is True
    assert created["emergency_stop_active"] is False
    assert created["user_id"] == admin.user_id

    status = await admin_api.call("GET", f"{BASE}/status?account_id=TEST123", admin)
    assert status.status == 200
    assert status.body["account_id"] == "TEST123"
    assert status.body["emergency_stop_active"] is False
    assert [p["id"] for p in status.body["protections"]] == [created["id"]]
    assert status.body["today"] is None  # no decision today yet

    changes = await admin_api.call("GET", f"{BASE}/{created['id']}/changes", admin)
    (change,) = changes.body["changes"]
    assert change["action"] == "created"
    assert change["changed_by"] == "risk-test@example.com"
    assert change["token_id"] == admin.token_id
    assert change["old_values"] is None
    assert change["new_values"]["cash_reserve_percentage"] == "25.00"


async def test_step_5_validate_trade_checks_the_shape_then_needs_account_state(
    admin_api: AdminApi, admin: Issued
) -> None:
    await create(admin_api, admin)
    simple = await admin_api.call("POST", f"{BASE}/validate_trade", admin, SEED_ORDER)
    # No broker behind this gatekeeper and nothing cached: no verdict without account state.
    assert simple.status == 503
    assert simple.error["code"] == "state_unavailable"

    tastytrade = {
        "account_id": "TEST123",
        "order": {
            "order-type": "Limit",
            "time-in-force": "Day",
            "price": "150.00",
            "price-effect": "Debit",
            "legs": [
                {"instrument-type": "Equity", "symbol": "AAPL", "quantity": 100,
                 "action": "Buy to Open"}
            ],
        },
    }  # fmt: skip
    dashed = await admin_api.call("POST", f"{BASE}/validate_trade", admin, tastytrade)
    assert dashed.status == 503

    bad = SEED_ORDER | {"order": SEED_ORDER["order"] | {"action": "buy-to-moon"}}  # type: ignore[operator]
    invalid = await admin_api.call("POST", f"{BASE}/validate_trade", admin, bad)
    assert invalid.status == 400
    assert "action" in invalid.error["message"]

    unknown = await admin_api.call(
        "POST", f"{BASE}/validate_trade", admin, SEED_ORDER | {"account_id": "NOPE1"}
    )
    assert unknown.status == 404


# -- constraint rejections (Steps 2 and 5 over HTTP) ---------------------------------------------


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("cash_reserve_percentage", 10.0,
         "cash_reserve_percentage must be between 20 and 50 (cash_reserve_range_check); got 10.0"),
        ("max_daily_loss_percentage", 0,
         "max_daily_loss_percentage must be greater than 0 and at most 15"
         " (daily_loss_range_check); got 0"),
        ("max_single_trade_percentage", 20.5,
         "max_single_trade_percentage must be greater than 0 and at most 20"
         " (single_trade_range_check); got 20.5"),
        ("max_portfolio_exposure_percentage", 90,
         "max_portfolio_exposure_percentage must be between 50 and 85 (exposure_range_check);"
         " got 90"),
        ("max_daily_trades", 0,
         "max_daily_trades must be between 1 and 10000 (daily_trades_range_check); got 0"),
    ],
)  # fmt: skip
async def test_out_of_range_values_are_422_naming_field_range_and_constraint(
    admin_api: AdminApi, admin: Issued, field: str, value: object, message: str
) -> None:
    reply = await admin_api.call(
        "POST", BASE, admin, {"portfolio_protection": SEED_PROTECTION | {field: value}}
    )
    assert reply.status == 422
    assert reply.error["code"] == "constraint_violation"
    assert reply.error["message"] == message
    (item,) = reply.error["errors"]
    assert item["field"] == f"portfolio_protection.{field}"
    assert item["constraint"] in message
    assert await count(admin_api, "portfolio_protections") == 0


async def test_update_changes_only_given_fields_and_records_old_and_new(
    admin_api: AdminApi, admin: Issued
) -> None:
    created = await create(admin_api, admin)
    path = f"{BASE}/{created['id']}"
    # The seed's Step 4 settings.
    step_4 = {"cash_reserve_percentage": 30.0, "max_single_trade_percentage": 5.0,
              "max_daily_loss_percentage": 3.0}  # fmt: skip
    reply = await admin_api.call("PATCH", path, admin, {"portfolio_protection": step_4})
    assert reply.status == 200, reply.body
    updated = reply.body["portfolio_protection"]
    assert updated["cash_reserve_percentage"] == "30.00"
    assert updated["max_portfolio_exposure_percentage"] == "75.00"

    too_low = await admin_api.call(
        "PATCH", path, admin, {"portfolio_protection": {"cash_reserve_percentage": 19.99}}
    )
    assert too_low.status == 422
    shown = await admin_api.call("GET", path, admin)
    assert shown.body["portfolio_protection"]["cash_reserve_percentage"] == "30.00"

    changes = (await admin_api.call("GET", f"{path}/changes", admin)).body["changes"]
    assert [c["action"] for c in changes] == ["created", "updated"]
    assert changes[1]["old_values"]["cash_reserve_percentage"] == "25.00"
    assert changes[1]["new_values"]["cash_reserve_percentage"] == "30.00"

    listed = await admin_api.call("GET", BASE, admin)
    assert [p["id"] for p in listed.body["portfolio_protections"]] == [created["id"]]


async def test_a_second_protection_for_the_same_user_and_account_is_409(
    admin_api: AdminApi, admin: Issued
) -> None:
    await create(admin_api, admin)
    again = await admin_api.call("POST", BASE, admin, {"portfolio_protection": SEED_PROTECTION})
    assert again.status == 409
    assert again.error["code"] == "protection_exists"
    other_owner = await admin_api.issue("second-owner@example.com", "admin")
    await create(admin_api, other_owner)  # several owners on one account: allowed
    status = await admin_api.call("GET", f"{BASE}/status?account_id=TEST123", admin)
    assert len(status.body["protections"]) == 2


# -- Step 6 -----------------------------------------------------------------------------------


async def test_step_6_emergency_stop_and_clearance(admin_api: AdminApi, admin: Issued) -> None:
    protection_id = (await create(admin_api, admin))["id"]
    stop_path = f"{BASE}/{protection_id}/emergency_stop"
    body = {"reason": "Testing emergency stop functionality", "triggered_by": "test_user"}
    stopped = await admin_api.call("POST", stop_path, admin, body)
    assert stopped.status == 200, stopped.body
    assert stopped.body["already_active"] is False
    state = stopped.body["portfolio_protection"]
    assert state["emergency_stop_active"] is True
    assert state["emergency_stop_triggered_by"] == "test_user"
    assert state["emergency_stop_reason"] == "Testing emergency stop functionality"
    # No mode on the protection nor in the request: a person pressing stop halts everything.
    assert state["emergency_stop_mode"] is None
    assert state["emergency_stop_active_mode"] == "halt"

    status = await admin_api.call("GET", f"{BASE}/status?account_id=TEST123", admin)
    assert status.body["emergency_stop_active"] is True

    again = await admin_api.call("POST", stop_path, admin, body | {"reason": "twice"})
    assert again.status == 200
    assert again.body["already_active"] is True
    assert again.body["portfolio_protection"]["emergency_stop_reason"] == body["reason"]

    clear_path = f"{BASE}/{protection_id}/clear_emergency_stop"
    for unconfirmed in ({"cleared_by": "test_user"}, {"confirm": "yes", "cleared_by": "x"},
                        {"confirm": True, "cleared_by": "x"}, {"confirm": "true"}):  # fmt: skip
        refused = await admin_api.call("DELETE", clear_path, admin, unconfirmed)
        assert refused.status in (400, 422), unconfirmed
        assert "confirm" in refused.error["message"] or "cleared_by" in refused.error["message"]
    still = await admin_api.call("GET", f"{BASE}/{protection_id}", admin)
    assert still.body["portfolio_protection"]["emergency_stop_active"] is True

    cleared = await admin_api.call(
        "DELETE", clear_path, admin, {"confirm": "true", "cleared_by": "test_user"}
    )
    assert cleared.status == 200, cleared.body
    assert cleared.body["portfolio_protection"]["emergency_stop_active"] is False
    assert cleared.body["portfolio_protection"]["emergency_stop_active_mode"] is None
    assert cleared.body["portfolio_protection"]["emergency_stop_mode"] is None
    not_active = await admin_api.call(
        "DELETE", clear_path, admin, {"confirm": "true", "cleared_by": "test_user"}
    )
    assert not_active.status == 409
    assert not_active.error["code"] == "emergency_stop_not_active"

    events = (await admin_api.call("GET", f"{BASE}/{protection_id}/emergency_events", admin)).body
    assert [(e["event"], e["actor"]) for e in events["emergency_events"]] == [
        ("triggered", "test_user"),
        ("cleared", "test_user"),
    ]
    assert events["emergency_events"][0]["reason"] == body["reason"]
    assert all(e["token_id"] == admin.token_id for e in events["emergency_events"])
    changes = (await admin_api.call("GET", f"{BASE}/{protection_id}/changes", admin)).body
    assert [c["action"] for c in changes["changes"]] == [
        "created",
        "emergency_stop_triggered",
        "emergency_stop_cleared",
    ]
    # Counted by the status job from the database (woken by the API call: no 15 s wait).
    metrics = admin_api.gate.metrics.registry
    for _ in range(100):
        counted = metrics.get_sample_value(
            "gatekeeper_emergency_stop_events_total",
            {"scope": "account", "event": "triggered", "via": "api"},
        )
        if counted == 1:
            break
        await asyncio.sleep(0.05)
    assert counted == 1


async def test_stop_mode_reduce_only(admin_api: AdminApi, admin: Issued) -> None:
    protection_id = (await create(admin_api, admin, emergency_stop_mode="reduce_only"))["id"]
    stopped = await admin_api.call(
        "POST", f"{BASE}/{protection_id}/emergency_stop", admin,
        {"reason": "drawdown", "triggered_by": "ops"},
    )  # fmt: skip
    assert stopped.body["portfolio_protection"]["emergency_stop_mode"] == "reduce_only"
    assert stopped.body["portfolio_protection"]["emergency_stop_active_mode"] == "reduce_only"


# -- malformed requests: 400, nothing changes ---------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        (b"{not json", "invalid_json"),
        (b"", "invalid_request"),
        (b"[]", "invalid_json"),
        (b'{"portfolio_protection": {"account_id": "A1", "account_id": "A2"}}', "invalid_json"),
        (b'{"portfolio_protection": {"account_id": "A1", "cash_reserve_percentage": NaN}}',
         "invalid_json"),
        (b'{"portfolio_protection": {"account_id": "A1", "cash_reserve_percentage": "lots"}}',
         "invalid_request"),
        (b'{"portfolio_protection": {"account_id": "A1", "active": "yes"}}', "invalid_request"),
        (b'{"portfolio_protection": {"account_id": "A1", "max_daily_trades": 5.5}}',
         "invalid_request"),
        (b'{"portfolio_protection": {"account_id": "A1", "surprise": 1}}', "invalid_request"),
        (b'{"portfolio_protection": {"account_id": "A1"}, "extra": 1}', "invalid_request"),
        (b'{"portfolio_protection": {"cash_reserve_percentage": 25}}', "invalid_request"),
        (b'{"account_id": "A1"}', "invalid_request"),
    ],
)  # fmt: skip
async def test_malformed_bodies_are_400_and_change_nothing(
    admin_api: AdminApi, admin: Issued, raw: bytes, code: str
) -> None:
    reply = await admin_api.call("POST", BASE, admin, raw=raw)
    assert reply.status == 400, reply.body
    assert reply.error["code"] == code
    assert reply.error["message"]
    assert await count(admin_api, "portfolio_protections") == 0
    assert await count(admin_api, "protection_changes") == 0


async def test_unknown_field_is_named(admin_api: AdminApi, admin: Issued) -> None:
    reply = await admin_api.call(
        "POST", BASE, admin, {"portfolio_protection": SEED_PROTECTION | {"max_leverage": 2}}
    )
    assert reply.status == 400
    assert reply.error["message"] == "portfolio_protection.max_leverage: unknown field"


async def test_patch_cannot_change_the_account_or_send_nothing(
    admin_api: AdminApi, admin: Issued
) -> None:
    path = f"{BASE}/{(await create(admin_api, admin))['id']}"
    moved = await admin_api.call(
        "PATCH", path, admin, {"portfolio_protection": {"account_id": "X"}}
    )
    assert moved.status == 400
    empty = await admin_api.call("PATCH", path, admin, {"portfolio_protection": {}})
    assert empty.status == 400
    assert await count(admin_api, "protection_changes") == 1


async def test_status_needs_an_account_id(admin_api: AdminApi, admin: Issued) -> None:
    reply = await admin_api.call("GET", f"{BASE}/status", admin)
    assert reply.status == 400
    assert "account_id" in reply.error["message"]


async def test_unknown_protection_is_404(admin_api: AdminApi, admin: Issued) -> None:
    reply = await admin_api.call("GET", f"{BASE}/999999", admin)
    assert reply.status == 404
    assert reply.error["code"] == "protection_not_found"


async def test_a_body_in_many_chunks_is_read_whole_and_a_huge_one_refused(
    admin_api: AdminApi, admin: Issued
) -> None:
    padded = b'{"portfolio_protection": {"account_id": "TEST123"' + b" " * 12_000 + b"}}"

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(padded), 1000):
            yield padded[start : start + 1000]

    headers = {"Authorization": f"Bearer {admin.token}", "Content-Type": "application/json"}
    async with admin_api.session.post(admin_api.url + BASE, data=chunks(), headers=headers) as r:
        assert r.status == 201
    huge = b'{"portfolio_protection": {"account_id": "T2"' + b" " * 20_000 + b"}}"
    reply = await admin_api.call("POST", BASE, admin, raw=huge)
    assert reply.status == 413
    assert await count(admin_api, "portfolio_protections") == 1
