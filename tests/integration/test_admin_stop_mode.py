"""emergency_stop_mode over the admin API and the CLI: halt, reduce_only or null (not set);
the active stop's mode in every answer; bad values are 422 naming the field, nothing changes."""

from __future__ import annotations

from typing import Any

import pytest

from tests.fixtures.admin import AdminApi, Issued, run_cli

BASE = "/api/v1/portfolio_protections"
SEED_PROTECTION = {
    "account_id": "TEST123",
    "cash_reserve_percentage": 25.0,
    "max_daily_loss_percentage": 5.0,
    "max_single_trade_percentage": 10.0,
    "max_portfolio_exposure_percentage": 75.0,
}
STOP = {"reason": "drill", "triggered_by": "ops"}
CLEAR = {"confirm": "true", "cleared_by": "ops"}
BAD_MODES = ["stop", "HALT", "", 1, True, ["halt"]]


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


async def patch(api: AdminApi, token: Issued, pid: int, **changes: Any) -> dict[str, Any]:
    reply = await api.call("PATCH", f"{BASE}/{pid}", token, {"portfolio_protection": changes})
    assert reply.status == 200, reply.body
    protection: dict[str, Any] = reply.body["portfolio_protection"]
    return protection


def modes(protection: dict[str, Any]) -> tuple[str | None, str | None]:
    return protection["emergency_stop_mode"], protection["emergency_stop_active_mode"]


@pytest.mark.parametrize(
    ("given", "stored"),
    [({}, None), ({"emergency_stop_mode": None}, None), ({"emergency_stop_mode": "halt"}, "halt"),
     ({"emergency_stop_mode": "reduce_only"}, "reduce_only")],
)  # fmt: skip
async def test_create_accepts_halt_reduce_only_or_null(
    admin_api: AdminApi, admin: Issued, given: dict[str, Any], stored: str | None
) -> None:
    created = await create(admin_api, admin, **given)

    assert modes(created) == (stored, None)
    shown = await admin_api.call("GET", f"{BASE}/{created['id']}", admin)
    assert modes(shown.body["portfolio_protection"]) == (stored, None)


async def test_patch_sets_and_unsets_the_mode(admin_api: AdminApi, admin: Issued) -> None:
    pid = (await create(admin_api, admin))["id"]

    assert modes(await patch(admin_api, admin, pid, emergency_stop_mode="halt")) == ("halt", None)
    assert modes(await patch(admin_api, admin, pid, max_daily_trades=9)) == ("halt", None)
    assert modes(await patch(admin_api, admin, pid, emergency_stop_mode=None)) == (None, None)
    changes = (await admin_api.call("GET", f"{BASE}/{pid}/changes", admin)).body["changes"]
    assert [c["new_values"]["emergency_stop_mode"] for c in changes] == [None, "halt", "halt", None]


async def test_a_manual_stop_without_a_mode_halts_and_clear_restores_the_setting(
    admin_api: AdminApi, admin: Issued
) -> None:
    pid = (await create(admin_api, admin))["id"]

    stopped = await admin_api.call("POST", f"{BASE}/{pid}/emergency_stop", admin, STOP)
    assert modes(stopped.body["portfolio_protection"]) == (None, "halt")
    status = await admin_api.call("GET", f"{BASE}/status?account_id=TEST123", admin)
    assert modes(status.body["protections"][0]) == (None, "halt")
    cleared = await admin_api.call("DELETE", f"{BASE}/{pid}/clear_emergency_stop", admin, CLEAR)
    assert modes(cleared.body["portfolio_protection"]) == (None, None)

    events = await admin_api.call("GET", f"{BASE}/{pid}/emergency_events", admin)
    assert [(e["event"], e["mode"]) for e in events.body["emergency_events"]] == [
        ("triggered", "halt"),
        ("cleared", "halt"),
    ]


async def test_a_stop_with_a_mode_leaves_the_setting_alone(
    admin_api: AdminApi, admin: Issued
) -> None:
    pid = (await create(admin_api, admin, emergency_stop_mode="halt"))["id"]

    stopped = await admin_api.call(
        "POST", f"{BASE}/{pid}/emergency_stop", admin, STOP | {"mode": "reduce_only"}
    )
    assert modes(stopped.body["portfolio_protection"]) == ("halt", "reduce_only")
    # Escalate without clearing: a new explicit setting applies to the active stop at once.
    assert modes(await patch(admin_api, admin, pid, emergency_stop_mode="halt")) == (
        "halt",
        "halt",
    )
    cleared = await admin_api.call("DELETE", f"{BASE}/{pid}/clear_emergency_stop", admin, CLEAR)
    assert modes(cleared.body["portfolio_protection"]) == ("halt", None)


@pytest.mark.parametrize("bad", BAD_MODES)
async def test_a_bad_mode_on_create_is_422_naming_the_field(
    admin_api: AdminApi, admin: Issued, bad: Any
) -> None:
    reply = await admin_api.call(
        "POST",
        BASE,
        admin,
        {"portfolio_protection": SEED_PROTECTION | {"emergency_stop_mode": bad}},
    )

    assert reply.status == 422, reply.body
    assert [e["field"] for e in reply.error["errors"]] == [
        "portfolio_protection.emergency_stop_mode"
    ]
    assert "emergency_stop_mode" in reply.error["message"]
    assert await admin_api.fetch("SELECT id FROM portfolio_protections") == []


@pytest.mark.parametrize("bad", BAD_MODES)
async def test_a_bad_mode_on_update_or_stop_is_422_and_changes_nothing(
    admin_api: AdminApi, admin: Issued, bad: Any
) -> None:
    pid = (await create(admin_api, admin, emergency_stop_mode="reduce_only"))["id"]

    patched = await admin_api.call(
        "PATCH", f"{BASE}/{pid}", admin, {"portfolio_protection": {"emergency_stop_mode": bad}}
    )
    stopped = await admin_api.call(
        "POST", f"{BASE}/{pid}/emergency_stop", admin, STOP | {"mode": bad}
    )

    assert (patched.status, stopped.status) == (422, 422)
    assert patched.error["errors"][0]["field"] == "portfolio_protection.emergency_stop_mode"
    assert stopped.error["errors"][0]["field"] == "mode"
    shown = await admin_api.call("GET", f"{BASE}/{pid}", admin)
    assert modes(shown.body["portfolio_protection"]) == ("reduce_only", None)
    assert len(await admin_api.fetch("SELECT id FROM protection_changes")) == 1  # created
    assert await admin_api.fetch("SELECT id FROM emergency_events") == []


async def test_the_active_mode_is_not_a_setting(admin_api: AdminApi, admin: Issued) -> None:
    pid = (await create(admin_api, admin))["id"]

    reply = await admin_api.call(
        "PATCH",
        f"{BASE}/{pid}",
        admin,
        {"portfolio_protection": {"emergency_stop_active_mode": "halt"}},
    )

    assert reply.status == 400
    assert reply.error["errors"][0]["field"] == "portfolio_protection.emergency_stop_active_mode"


async def test_the_cli_sets_unsets_and_shows_the_mode(admin_api: AdminApi) -> None:
    url = admin_api.database_url
    await run_cli(url, "users", "create", "ops@example.com")
    created = await run_cli(url, "protections", "set", "TEST123")
    assert created.returncode == 0, created.stderr
    assert "Emergency Stop Mode: not set" in created.stdout
    halt = await run_cli(url, "protections", "set", "TEST123", "--stop-mode", "halt")
    assert "Emergency Stop Mode: halt" in halt.stdout
    unset = await run_cli(url, "protections", "set", "TEST123", "--stop-mode", "unset")
    assert "Emergency Stop Mode: not set" in unset.stdout
    bad = await run_cli(url, "protections", "set", "TEST123", "--stop-mode", "stop")
    assert bad.returncode == 2

    stopped = await run_cli(url, "protections", "stop", "TEST123", "--reason", "r", "--by", "ops")
    assert "(mode halt)" in stopped.stdout  # a person pressing stop without a mode
    cleared = await run_cli(url, "protections", "clear", "TEST123", "--by", "ops", "--confirm")
    assert "Emergency Stop: inactive" in cleared.stdout
    assert "Emergency Stop Mode: not set" in cleared.stdout
    rows = await admin_api.fetch("SELECT emergency_stop_mode, emergency_stop_active_mode FROM"
                                 " portfolio_protections")  # fmt: skip
    assert [tuple(r.values()) for r in rows] == [(None, None)]
