"""Which mode an emergency stop applies (issue 7, item 4), against real Postgres: the row the
order path reads, the emergency event, and what clearing or changing the setting does."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest

from gatekeeper.adapters import history, users
from gatekeeper.adapters import protections as store
from gatekeeper.adapters.protection_stops import clear_emergency_stop, trigger_emergency_stop
from gatekeeper.limits import StopMode

OPS = store.Actor("ops", "cli")
SYSTEM = store.Actor("system", "system")


@pytest.fixture
async def conn(pg_pool: asyncpg.Pool) -> AsyncIterator[Any]:
    async with pg_pool.acquire() as connection:
        yield connection


async def protection(conn: Any, mode: StopMode | None) -> store.Protection:
    user = await users.create_user(conn, "owner@example.com")
    return await store.create_protection(
        conn, user.id, "TEST123", {"emergency_stop_mode": mode}, OPS
    )


async def stop(
    conn: Any, protection_id: int, *, automatic: bool, mode: StopMode | None = None
) -> store.Protection:
    stopped, changed = await trigger_emergency_stop(
        conn,
        protection_id,
        None,
        reason="daily loss" if automatic else "drill",
        triggered_by="system" if automatic else "ops",
        mode=mode,
        actor=SYSTEM if automatic else OPS,
        automatic=automatic,
        may_loosen=True,  # as the CLI: the database's owner may choose any mode
    )
    assert changed
    return stopped


async def event_modes(conn: Any, protection_id: int) -> list[tuple[str, str | None]]:
    events = await history.list_emergency_events(conn, protection_id)
    return [(e.event, e.mode) for e in events]


@pytest.mark.parametrize(
    ("setting", "automatic", "requested", "expected"),
    [
        (None, True, None, "reduce_only"),  # the point of the issue: still flattenable
        ("halt", True, None, "halt"),  # an explicit halt stays halt
        ("reduce_only", True, None, "reduce_only"),
        (None, False, None, "halt"),  # a person pressing stop without a mode
        ("halt", False, None, "halt"),
        ("reduce_only", False, None, "reduce_only"),
        ("halt", False, "reduce_only", "reduce_only"),  # the request's mode wins
        (None, False, "reduce_only", "reduce_only"),
        ("reduce_only", False, "halt", "halt"),
    ],
)
async def test_the_stop_records_its_effective_mode_on_the_row_and_the_event(
    conn: Any,
    setting: StopMode | None,
    automatic: bool,
    requested: StopMode | None,
    expected: StopMode,
) -> None:
    created = await protection(conn, setting)

    stopped = await stop(conn, created.id, automatic=automatic, mode=requested)

    assert stopped.emergency_stop_active
    assert stopped.emergency_stop_active_mode == expected
    assert stopped.emergency_stop_mode == setting  # the setting is never rewritten by a stop
    row = await conn.fetchrow(
        "SELECT emergency_stop_mode, emergency_stop_active_mode FROM portfolio_protections"
        " WHERE id = $1",
        created.id,
    )
    assert tuple(row) == (setting, expected)
    assert await event_modes(conn, created.id) == [("triggered", expected)]


async def test_clearing_an_automatic_reduce_only_stop_leaves_the_mode_unset(conn: Any) -> None:
    created = await protection(conn, None)
    await stop(conn, created.id, automatic=True)

    cleared = await clear_emergency_stop(conn, created.id, None, cleared_by="ops", actor=OPS)

    assert not cleared.emergency_stop_active
    assert (cleared.emergency_stop_mode, cleared.emergency_stop_active_mode) == (None, None)
    # The automatic reduce_only did not become the protection's choice: a manual stop halts.
    assert (await stop(conn, created.id, automatic=False)).emergency_stop_active_mode == "halt"
    assert await event_modes(conn, created.id) == [
        ("triggered", "reduce_only"),
        ("cleared", "reduce_only"),  # the mode of the stop it ended
        ("triggered", "halt"),
    ]


async def test_clearing_a_stop_with_a_requested_mode_restores_the_explicit_setting(
    conn: Any,
) -> None:
    created = await protection(conn, "halt")
    await stop(conn, created.id, automatic=False, mode="reduce_only")

    cleared = await clear_emergency_stop(conn, created.id, None, cleared_by="ops", actor=OPS)

    assert (cleared.emergency_stop_mode, cleared.emergency_stop_active_mode) == ("halt", None)
    assert (await stop(conn, created.id, automatic=True)).emergency_stop_active_mode == "halt"


async def test_a_new_explicit_mode_switches_an_active_stop_and_unsetting_leaves_it(
    conn: Any,
) -> None:
    created = await protection(conn, None)
    await stop(conn, created.id, automatic=True)  # reduce_only

    halted = await store.update_protection(
        conn, created.id, None, {"emergency_stop_mode": "halt"}, OPS
    )
    assert (halted.emergency_stop_mode, halted.emergency_stop_active_mode) == ("halt", "halt")
    unset = await store.update_protection(
        conn, created.id, None, {"emergency_stop_mode": None}, OPS
    )
    assert (unset.emergency_stop_mode, unset.emergency_stop_active_mode) == (None, "halt")
    untouched = await store.update_protection(conn, created.id, None, {"max_daily_trades": 7}, OPS)
    assert (untouched.emergency_stop_mode, untouched.emergency_stop_active_mode) == (None, "halt")

    changes = [c for c in await history.list_changes(conn, created.id) if c.action == "updated"]
    assert changes[0].old_values is not None
    assert changes[0].old_values["emergency_stop_active_mode"] == "reduce_only"
    assert changes[0].new_values["emergency_stop_active_mode"] == "halt"
    assert [c.new_values["emergency_stop_mode"] for c in changes] == ["halt", None, None]


async def test_a_setting_change_without_an_active_stop_starts_no_stop(conn: Any) -> None:
    created = await protection(conn, None)

    updated = await store.update_protection(
        conn, created.id, None, {"emergency_stop_mode": "reduce_only"}, OPS
    )

    assert not updated.emergency_stop_active
    assert (updated.emergency_stop_mode, updated.emergency_stop_active_mode) == (
        "reduce_only",
        None,
    )


async def test_the_configured_default_applies_only_when_the_mode_is_absent(conn: Any) -> None:
    user = await users.create_user(conn, "owner@example.com")

    absent = await store.create_protection(conn, user.id, "A1", {}, OPS, default_stop_mode="halt")
    unset = await store.create_protection(
        conn, user.id, "A2", {"emergency_stop_mode": None}, OPS, default_stop_mode="halt"
    )
    plain = await store.create_protection(conn, user.id, "A3", {}, OPS)

    assert absent.emergency_stop_mode == "halt"
    assert unset.emergency_stop_mode is None
    assert plain.emergency_stop_mode is None
