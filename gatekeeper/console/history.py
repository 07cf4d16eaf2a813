"""The console's history page: every emergency stop triggered or cleared and every change of
a protection, newest first, read from the append-only tables through
gatekeeper.adapters.history (the admin API's ``/changes`` and ``/emergency_events``)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from gatekeeper.adapters import history
from gatekeeper.adapters import protections as store
from gatekeeper.adapters.pg import Conn
from gatekeeper.auth import Principal

# The page shows this many entries of each kind (newest first).
MAX_ENTRIES = 200


@dataclass(frozen=True)
class StopEntry:
    at: datetime
    account_id: str
    protection_id: int
    event: str  # triggered | cleared
    mode: str | None
    actor: str
    via: str
    reason: str | None


@dataclass(frozen=True)
class ChangeEntry:
    at: datetime
    account_id: str
    protection_id: int
    action: str
    changed_by: str
    via: str
    changes: list[tuple[str, Any, Any]]  # (setting, before, after)


def _changed(change: history.Change) -> list[tuple[str, Any, Any]]:
    old = change.old_values or {}
    return [
        (name, old.get(name), value)
        for name, value in sorted(change.new_values.items())
        if change.old_values is None or old.get(name) != value
    ]


async def stop_and_change_history(
    conn: Conn, principal: Principal
) -> tuple[list[StopEntry], list[ChangeEntry]]:
    """The emergency events and protection changes of every protection the principal may
    see, newest first."""
    stops_seen: list[StopEntry] = []
    changes_seen: list[ChangeEntry] = []
    for protection in await store.list_protections(conn, principal.owner_scope, None):
        for event in await history.list_emergency_events(conn, protection.id):
            stops_seen.append(
                StopEntry(event.occurred_at, event.account_id, event.protection_id, event.event,
                          event.mode, event.actor, event.via, event.reason)
            )  # fmt: skip
        for change in await history.list_changes(conn, protection.id):
            changes_seen.append(
                ChangeEntry(change.changed_at, change.account_id, change.protection_id,
                            change.action, change.changed_by, change.via, _changed(change))
            )  # fmt: skip
    stops_seen.sort(key=lambda entry: entry.at, reverse=True)
    changes_seen.sort(key=lambda entry: entry.at, reverse=True)
    return stops_seen[:MAX_ENTRIES], changes_seen[:MAX_ENTRIES]
