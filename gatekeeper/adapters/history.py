"""Reading the append-only history of a protection: its changes and its emergency events."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from gatekeeper.adapters.pg import Conn


@dataclass(frozen=True)
class Change:
    id: int
    protection_id: int
    account_id: str
    action: str
    changed_by: str
    user_id: int | None
    token_id: int | None
    via: str
    old_values: dict[str, Any] | None
    new_values: dict[str, Any]
    changed_at: datetime


@dataclass(frozen=True)
class EmergencyEvent:
    id: int
    protection_id: int
    account_id: str
    event: str
    mode: str | None
    actor: str
    reason: str | None
    user_id: int | None
    token_id: int | None
    via: str
    occurred_at: datetime


async def list_changes(conn: Conn, protection_id: int) -> list[Change]:
    """Every recorded change of one protection, oldest first."""
    rows = await conn.fetch(
        """
        SELECT id, protection_id, account_id, action, changed_by, user_id, token_id, via,
               old_values, new_values, changed_at
        FROM protection_changes WHERE protection_id = $1 ORDER BY id
        """,
        protection_id,
    )
    changes = []
    for row in rows:
        values = dict(row)
        values["old_values"] = json.loads(row["old_values"]) if row["old_values"] else None
        values["new_values"] = json.loads(row["new_values"])
        changes.append(Change(**values))
    return changes


async def list_emergency_events(conn: Conn, protection_id: int) -> list[EmergencyEvent]:
    """Every stop triggered or cleared on one protection, oldest first."""
    rows = await conn.fetch(
        """
        SELECT id, protection_id, account_id, event, mode, actor, reason, user_id, token_id, via,
               occurred_at
        FROM emergency_events WHERE protection_id = $1 ORDER BY id
        """,
        protection_id,
    )
    return [EmergencyEvent(**dict(row)) for row in rows]
