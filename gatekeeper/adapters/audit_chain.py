"""The audit hash chain (``sql/0028``): the canonical form of a chained row, recomputed here
independently of the database's functions, and the reads ``gatekeeper audit`` needs.

Decision, outcome, protection-change and emergency-event rows form one chain per account. A
row's ``chain_hash`` is the SHA-256 of its canonical form, which names its table and includes
``chain_prev``, the hash of the row before it (32 zero bytes for the first); ``chain_seq`` is
its position. A trigger fills the three columns at insert; nothing in Python writes them.

The canonical form: ``table``, ``chain_prev`` (lower-case hex), then the table's columns in the
order of :data:`COLUMNS`, each as ``name:<octet length>:<value>\\n`` (UTF-8), NULL columns left
out. Values: text as is; integers and numeric in plain decimal form (numeric with its stored
scale); uuid lower-case; date ``YYYY-MM-DD``; timestamptz in UTC ``YYYY-MM-DDTHH:MM:SS.ffffffZ``;
jsonb in Postgres's normalized text form; text[] as its element count followed by
``,<octet length>:<element>`` per element (``,-`` for a NULL one).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any, Literal
from uuid import UUID

from gatekeeper.adapters.pg import Conn
from gatekeeper.core import trading_day

Kind = Literal["text", "int", "numeric", "uuid", "date", "timestamptz", "jsonb", "text[]"]

GENESIS = bytes(32)

# The chained tables in the order rows written in one transaction are linked (a stop's change
# and event, then the decision; its outcome later), with their columns in canonical order.
COLUMNS: dict[str, tuple[tuple[str, Kind], ...]] = {
    "protection_changes": (
        ("id", "int"),
        ("protection_id", "int"),
        ("account_id", "text"),
        ("action", "text"),
        ("changed_by", "text"),
        ("user_id", "int"),
        ("token_id", "int"),
        ("via", "text"),
        ("old_values", "jsonb"),
        ("new_values", "jsonb"),
        ("changed_at", "timestamptz"),
    ),
    "emergency_events": (
        ("id", "int"),
        ("protection_id", "int"),
        ("account_id", "text"),
        ("event", "text"),
        ("mode", "text"),
        ("actor", "text"),
        ("reason", "text"),
        ("user_id", "int"),
        ("token_id", "int"),
        ("via", "text"),
        ("occurred_at", "timestamptz"),
    ),
    "risk_decisions": (
        ("id", "int"),
        ("decision_id", "uuid"),
        ("account_id", "text"),
        ("route_kind", "text"),
        ("verdict", "text"),
        ("codes", "text[]"),
        ("notes", "text[]"),
        ("message", "text"),
        ("detail", "jsonb"),
        ("trading_day", "date"),
        ("trade_count", "int"),
        ("reserved_orders", "jsonb"),
        ("replaces_order_id", "text"),
        ("latency_ms", "numeric"),
        ("decided_at", "timestamptz"),
    ),
    "order_outcomes": (
        ("id", "int"),
        ("decision_id", "uuid"),
        ("account_id", "text"),
        ("outcome", "text"),
        ("http_status", "int"),
        ("broker_order_id", "text"),
        ("recorded_at", "timestamptz"),
        ("answer_body", "text"),  # sql/0029
        ("resolution", "text"),  # sql/0029
    ),
}
TABLE_RANK = {table: rank for rank, table in enumerate(COLUMNS)}
# When each table's rows were written (the transaction's now()): export's day.
WRITTEN_AT = {
    "protection_changes": "changed_at",
    "emergency_events": "occurred_at",
    "risk_decisions": "decided_at",
    "order_outcomes": "recorded_at",
}


def text_of(kind: Kind, value: Any) -> str | None:
    """A column value in its canonical text (None for NULL)."""
    if value is None:
        return None
    if kind in ("text", "jsonb"):
        return str(value)
    if kind == "int":
        return str(int(value))
    if kind == "numeric":
        return format(Decimal(value), "f")
    if kind == "uuid":
        return str(UUID(str(value)))
    if kind == "timestamptz":
        if not isinstance(value, datetime) or value.tzinfo is None:
            raise TypeError(f"a timestamptz must be an aware datetime, not {value!r}")
        return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    if kind == "date":
        if not isinstance(value, date):
            raise TypeError(f"a date must be a date, not {value!r}")
        return value.strftime("%Y-%m-%d")
    elements = "".join(",-" if item is None else f",{len(item.encode())}:{item}" for item in value)
    return f"{len(value)}{elements}"


def _field(name: str, value: str | None) -> str:
    return "" if value is None else f"{name}:{len(value.encode())}:{value}\n"


def canonical(table: str, prev: bytes, values: Mapping[str, Any]) -> bytes:
    """The bytes a row's ``chain_hash`` is the SHA-256 of (see the module docstring)."""
    parts = [_field("table", table), _field("chain_prev", prev.hex())]
    # a column missing from ``values`` is NULL (rows read before sql/0029 added two)
    parts.extend(_field(name, text_of(kind, values.get(name))) for name, kind in COLUMNS[table])
    return "".join(parts).encode()


def row_hash(table: str, prev: bytes, values: Mapping[str, Any]) -> bytes:
    return hashlib.sha256(canonical(table, prev, values)).digest()


@dataclass(frozen=True)
class ChainRow:
    """One chained row as stored, with the hash its content gives now."""

    table: str
    id: int
    account_id: str
    seq: int
    prev: bytes
    stored: bytes
    computed: bytes
    written_at: datetime

    @property
    def label(self) -> str:
        return f"{self.table} id={self.id}"


@dataclass(frozen=True)
class Head:
    """Where an account's chain ends: the database's pointer, or an exported anchor."""

    account_id: str
    table: str
    id: int
    seq: int
    hash: bytes


def _select(table: str) -> str:
    columns = ", ".join(
        f"{name}::text AS {name}" if kind == "jsonb" else name for name, kind in COLUMNS[table]
    )
    return (
        f"SELECT {columns}, chain_seq, chain_prev, chain_hash FROM {table}"  # noqa: S608 - constants
        " WHERE $1::text IS NULL OR account_id = $1"
    )


def _chain_row(table: str, record: Mapping[str, Any]) -> ChainRow:
    prev = bytes(record["chain_prev"] or b"")
    return ChainRow(
        table=table,
        id=record["id"],
        account_id=record["account_id"],
        seq=record["chain_seq"] or 0,
        prev=prev,
        stored=bytes(record["chain_hash"] or b""),
        computed=row_hash(table, prev, record),
        written_at=record[WRITTEN_AT[table]],
    )


async def chains(conn: Conn, account: str | None = None) -> dict[str, list[ChainRow]]:
    """Every chained row (of ``account``, else of all), per account in chain order."""
    found: dict[str, list[ChainRow]] = {}
    for table in COLUMNS:
        for record in await conn.fetch(_select(table), account):
            row = _chain_row(table, record)
            found.setdefault(row.account_id, []).append(row)
    for rows in found.values():
        rows.sort(key=lambda r: (r.seq, TABLE_RANK[r.table], r.id))
    return found


async def heads(conn: Conn, account: str | None = None) -> dict[str, Head]:
    """The database's own pointers to each chain's last row (``audit_chain_heads``)."""
    records = await conn.fetch(
        "SELECT account_id, source_table, source_id, chain_seq, chain_hash"
        " FROM audit_chain_heads WHERE $1::text IS NULL OR account_id = $1",
        account,
    )
    return {
        r["account_id"]: Head(
            r["account_id"], r["source_table"], r["source_id"], r["chain_seq"], r["chain_hash"]
        )
        for r in records
    }


def heads_at_end_of(day: date, found: Mapping[str, Sequence[ChainRow]]) -> list[Head]:
    """Each account's last row written on or before ``day`` (America/New_York)."""
    result = []
    for account, rows in sorted(found.items()):
        upto = [r for r in rows if trading_day(r.written_at) <= day]
        if upto:
            last = upto[-1]
            result.append(Head(account, last.table, last.id, last.seq, last.stored))
    return result
