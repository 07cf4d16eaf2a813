"""Issue 8, item 8: an operator's stop request cannot loosen a protection.

The mode named when triggering applies to that stop only, and only an admin (or the CLI, which
holds the database) may name one looser than the protection's own: ``reduce_only`` is looser
than ``halt``, and a protection without a mode counts as ``halt`` for a manual stop. An operator
asking for a looser mode gets 403 and nothing changes; an operator may not PATCH at all.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.fixtures.admin import AdminApi, Issued, run_cli

BASE = "/api/v1/portfolio_protections"
STOP = {"reason": "drill", "triggered_by": "ops"}
CLEAR = {"confirm": "true", "cleared_by": "ops"}
OWNER = "owner@example.com"


async def create(api: AdminApi, admin: Issued, mode: str | None) -> int:
    body = {"portfolio_protection": {"account_id": "TEST123", "emergency_stop_mode": mode}}
    reply = await api.call("POST", BASE, admin, body)
    assert reply.status == 201, reply.body
    protection_id: int = reply.body["portfolio_protection"]["id"]
    return protection_id


async def stop(api: AdminApi, token: Issued, pid: int, mode: str | None = None) -> Any:
    body = STOP if mode is None else STOP | {"mode": mode}
    return await api.call("POST", f"{BASE}/{pid}/emergency_stop", token, body)


async def state(api: AdminApi) -> list[tuple[Any, ...]]:
    """Every protection row, and how many history and stop events exist."""
    rows = await api.fetch(
        "SELECT p.*, (SELECT count(*) FROM protection_changes) AS changes,"
        " (SELECT count(*) FROM emergency_events) AS events FROM portfolio_protections p"
        " ORDER BY id"
    )
    return [tuple(row.values()) for row in rows]


async def modes(api: AdminApi, pid: int) -> tuple[str | None, str | None]:
    (row,) = await api.fetch(
        "SELECT emergency_stop_mode, emergency_stop_active_mode FROM portfolio_protections"
        " WHERE id = $1",
        pid,
    )
    return row["emergency_stop_mode"], row["emergency_stop_active_mode"]


@pytest.fixture
async def admin(admin_api: AdminApi) -> Issued:
    return await admin_api.issue(OWNER, "admin")


@pytest.fixture
async def operator(admin_api: AdminApi) -> Issued:
    return await admin_api.issue(OWNER, "operator")


@pytest.mark.parametrize("setting", ["halt", None])
async def test_an_operator_asking_for_a_looser_mode_gets_403_and_nothing_changes(
    admin_api: AdminApi, admin: Issued, operator: Issued, setting: str | None
) -> None:
    pid = await create(admin_api, admin, setting)
    before = await state(admin_api)

    reply = await stop(admin_api, operator, pid, "reduce_only")

    assert reply.status == 403, reply.body
    assert reply.error["code"] == "insufficient_role"
    assert "reduce_only" in reply.error["message"]
    assert await state(admin_api) == before
    # An admin may choose it, for this stop only.
    allowed = await stop(admin_api, admin, pid, "reduce_only")
    assert allowed.status == 200, allowed.body
    assert await modes(admin_api, pid) == (setting, "reduce_only")
    await admin_api.call("DELETE", f"{BASE}/{pid}/clear_emergency_stop", admin, CLEAR)
    assert await modes(admin_api, pid) == (setting, None)


async def test_an_operator_cannot_loosen_an_active_halt(
    admin_api: AdminApi, admin: Issued, operator: Issued
) -> None:
    pid = await create(admin_api, admin, None)
    assert (await stop(admin_api, operator, pid)).status == 200
    before = await state(admin_api)

    reply = await stop(admin_api, operator, pid, "reduce_only")

    assert reply.status == 403, reply.body
    assert await state(admin_api) == before
    assert await modes(admin_api, pid) == (None, "halt")


@pytest.mark.parametrize(
    ("setting", "asked", "applied"),
    [("halt", None, "halt"), ("halt", "halt", "halt"), (None, None, "halt"),
     (None, "halt", "halt"), ("reduce_only", None, "reduce_only"),
     ("reduce_only", "reduce_only", "reduce_only"), ("reduce_only", "halt", "halt")],
)  # fmt: skip
async def test_an_operator_may_stop_at_the_protections_mode_or_stricter_for_that_stop_only(
    admin_api: AdminApi,
    admin: Issued,
    operator: Issued,
    setting: str | None,
    asked: str | None,
    applied: str,
) -> None:
    pid = await create(admin_api, admin, setting)

    reply = await stop(admin_api, operator, pid, asked)

    assert reply.status == 200, reply.body
    shown = reply.body["portfolio_protection"]
    assert (shown["emergency_stop_mode"], shown["emergency_stop_active_mode"]) == (setting, applied)
    cleared = await admin_api.call("DELETE", f"{BASE}/{pid}/clear_emergency_stop", admin, CLEAR)
    assert cleared.status == 200
    assert await modes(admin_api, pid) == (setting, None)  # the setting never moved
    again = await stop(admin_api, operator, pid)
    assert again.body["portfolio_protection"]["emergency_stop_active_mode"] == (setting or "halt")


@pytest.mark.parametrize("change", [{"emergency_stop_mode": "reduce_only"},
                                    {"emergency_stop_mode": None}, {"active": False}])  # fmt: skip
async def test_an_operator_cannot_patch_a_protection(
    admin_api: AdminApi, admin: Issued, operator: Issued, change: dict[str, Any]
) -> None:
    pid = await create(admin_api, admin, "halt")
    assert (await stop(admin_api, operator, pid)).status == 200
    before = await state(admin_api)

    reply = await admin_api.call(
        "PATCH", f"{BASE}/{pid}", operator, {"portfolio_protection": change}
    )

    assert reply.status == 403, reply.body
    assert reply.error["code"] == "insufficient_role"
    assert await state(admin_api) == before


async def test_the_cli_chooses_any_mode_for_that_stop_only(admin_api: AdminApi) -> None:
    url = admin_api.database_url
    await run_cli(url, "users", "create", OWNER)
    await run_cli(url, "protections", "set", "TEST123", "--stop-mode", "halt")
    by = ("--reason", "drill", "--by", "ops")

    loosened = await run_cli(url, "protections", "stop", "TEST123", *by, "--mode", "reduce_only")
    assert loosened.returncode == 0, loosened.stderr
    assert "(mode reduce_only)" in loosened.stdout
    assert "Emergency Stop Mode: halt" in loosened.stdout
    await run_cli(url, "protections", "clear", "TEST123", "--by", "ops", "--confirm")
    again = await run_cli(url, "protections", "stop", "TEST123", *by)

    assert "(mode halt)" in again.stdout
    events = await admin_api.fetch("SELECT event, mode FROM emergency_events ORDER BY id")
    assert [tuple(e.values()) for e in events] == [
        ("triggered", "reduce_only"),
        ("cleared", "reduce_only"),
        ("triggered", "halt"),
    ]
