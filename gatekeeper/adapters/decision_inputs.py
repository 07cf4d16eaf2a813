"""The order path's locked read: the account lock, the protections, start-of-day NLV, today's
trades and orders in flight, and the first submission a retry repeats, in one round trip
(``sql/0030``'s ``order_path_inputs``). The rows it reads are written by
:mod:`gatekeeper.adapters.decisions`.

The trading day is the America/New_York calendar date of the database's ``now()`` (one clock
for every replica); :func:`decision_inputs` takes an optional ``clock`` instead, for tests.

An allowed, non-dry-run decision is its own reservation. The database keeps the day's ledger
as the rows are appended (``sql/0030``: triggers on ``risk_decisions`` and ``order_outcomes``),
so the locked read costs the same at the first order of the day and at the ten-thousandth:

- **trades today** (``account_day_trades``): the counted decisions of the day whose newest
  outcome is missing, ``unknown`` or ``accepted``; ``broker_rejected``, ``not_sent`` and
  ``not_placed`` (the reconciler's) uncount it.
- **orders in flight** (``orders_in_flight``): a counted decision *unresolved* (no outcome
  yet, or ``unknown``) is in flight until it is resolved, however long that takes (issue 11:
  "until resolved it counts as in flight and as a trade"; it used to stop counting after
  PENDING_HORIZON, so a replica killed mid-order left an order that silently stopped
  counting after five minutes). An ``accepted`` order is in flight until the account state
  shows its broker order id (``seen_order_ids``: ``/orders/live`` lists today's orders in any
  status). Given ``state_fetched_at`` (when the state was fetched), only the orders
  answered after it (less STATE_CLOCK_MARGIN) are looked up: one answered before it is in
  it. Without it, every accepted order not yet settled is. A locked read deletes an accepted
  order's row once its answer is SEEN_SETTLE_AFTER old: every state a decision may still use
  was fetched after it, so shows it (until then a decision holding an older state, on
  another replica, still counts it). Accepted without a
  broker id (an answer without one): in flight for PENDING_HORIZON after the answer. Only
  the day's rows count.

So the locked read looks at the unresolved orders and those answered since the state was
fetched (without ``state_fetched_at``: within the last SEEN_SETTLE_AFTER), whatever the day's
total; it sends the state's order ids once (their number is the state's, which grows with the
day anyway).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

import orjson

from gatekeeper.adapters.pg import Conn
from gatekeeper.adapters.protections import Protection
from gatekeeper.core import trading_day

# An order accepted without a broker order id cannot be recognised in the account state: it
# counts as in flight this long after the answer, then its exposure is left to the state.
PENDING_HORIZON = timedelta(minutes=5)

# An accepted order keeps its in-flight row this long after its answer (the state decides
# whether it counts): another decision may still use an older state, one that does not show
# it yet. Must exceed risk.max_state_age_seconds (10 s by default) plus the time a state read
# can take; only then does the locked read delete the row.
SEEN_SETTLE_AFTER = timedelta(seconds=60)

# The account state's fetch time comes from the gatekeeper host's clock, an order's answer time
# from the database's: orders answered this close before the fetch are looked up all the same.
STATE_CLOCK_MARGIN = timedelta(seconds=2)


@dataclass(frozen=True)
class Reservations:
    """Today's trade count and the orders still in flight for one account."""

    trades_today: int
    in_flight: list[dict[str, Any]]


async def database_now(conn: Conn) -> datetime:
    """The one clock: the database's."""
    now: datetime = await conn.fetchval("SELECT now()")
    return now


@dataclass(frozen=True)
class DecisionInputs:
    """What the locked decision reads from Postgres, in one round trip."""

    now: datetime
    trading_day: date
    protections: list[Protection]
    start_of_day_nlv: Decimal
    reservations: Reservations
    # 'broker_bod' or 'first_sight' (sql/0025); the broker's row wins when both exist.
    start_of_day_source: str | None = None
    # The day's net deposits not contained in the start-of-day figure.
    net_deposits: Decimal = Decimal(0)
    # The global emergency stop's mode while it is active, else None (sql/0026).
    global_stop_mode: str | None = None


class TradingDayChanged(Exception):
    """The database's trading day is not the one the caller gathered its inputs for (they
    straddle New York midnight): nothing was recorded; gather them again for ``actual``."""

    def __init__(self, expected: date, actual: date) -> None:
        super().__init__(f"the trading day is {actual}, not {expected}")
        self.expected = expected
        self.actual = actual


@dataclass(frozen=True)
class FirstSubmission:
    """The earlier decision a retried submission repeats, and what the broker answered it."""

    decision_id: UUID
    outcome: str | None  # None: still in flight (no outcome yet)
    http_status: int | None
    broker_order_id: str | None
    answer_body: str | None

    @property
    def in_flight(self) -> bool:
        """Whether the broker's answer is not known yet (409 to the retry)."""
        return self.outcome is None or self.outcome == "unknown"


@dataclass(frozen=True)
class LockedInputs:
    """What :func:`decision_inputs_locked` read: the database's clock and trading day; the
    first submission this one repeats (then nothing else was read or recorded), else the
    decision's inputs."""

    now: datetime
    trading_day: date
    duplicate: FirstSubmission | None
    inputs: DecisionInputs | None


# sql/0030's order_path_inputs: the locks (optional), the duplicate lookup (skipped when there
# is nothing to look for), then one statement with a snapshot taken after the locks.
_INPUTS_SQL = (
    "SELECT * FROM order_path_inputs($1::text, $2::numeric, $3::date, $4::numeric,"
    " $5::timestamptz, $6::text, $7::interval, $8::interval, $9::interval, $10::boolean,"
    " $11::boolean, $12::text[], $13::text, $14::float8)"
)
_PROTECTION_FIELDS = tuple(Protection.__dataclass_fields__)


async def _read_inputs(
    conn: Conn,
    account_id: str,
    nlv: Decimal,
    *,
    hold: bool,
    lock: bool,
    seen_order_ids: Collection[str],
    day: date | None,
    net_deposits: Decimal,
    clock: datetime | None,
    state_fetched_at: datetime | None,
    settle_after: timedelta,
    client_identifiers: Sequence[str] = (),
    fingerprint: str = "",
    duplicate_window_seconds: float = 0.0,
) -> LockedInputs:
    row = await conn.fetchrow(
        _INPUTS_SQL,
        account_id,
        nlv,
        day,
        net_deposits,
        clock,
        None,  # the state's ids are looked up here (in_flight_from_row), not sent
        state_age(state_fetched_at, clock),
        PENDING_HORIZON,
        settle_after,
        hold,
        lock,
        list(client_identifiers),
        fingerprint,
        duplicate_window_seconds,
    )
    assert row is not None  # noqa: S101 - the function always returns one row
    return inputs_from_row(row, day=day, net_deposits=net_deposits, seen_order_ids=seen_order_ids)


def inputs_from_row(
    row: Any,
    *,
    day: date | None,
    net_deposits: Decimal,
    seen_order_ids: Collection[str] | None = None,
) -> LockedInputs:
    """The LockedInputs of one ``order_path_inputs`` row (sql/0030; also sql/0031's)."""
    if row["duplicate_decision_id"] is not None:
        first = FirstSubmission(
            decision_id=row["duplicate_decision_id"],
            outcome=row["duplicate_outcome"],
            http_status=row["duplicate_http_status"],
            broker_order_id=row["duplicate_broker_order_id"],
            answer_body=row["duplicate_answer_body"],
        )
        return LockedInputs(row["now"], row["day"], first, None)
    now, database_day = row["now"], row["day"]
    if database_day != trading_day(now):
        # Postgres and Python disagree on America/New_York (time zone data): count nothing.
        raise RuntimeError(f"the database's trading day {database_day} is not that of {now}")
    if day is not None and database_day != day:
        raise TradingDayChanged(day, database_day)
    protections = [
        Protection(**{field: item[field] for field in _PROTECTION_FIELDS})
        for item in row["protections"]
    ]
    inputs = DecisionInputs(
        now=now,
        trading_day=database_day,
        protections=protections,
        start_of_day_nlv=row["start_of_day_nlv"],
        reservations=Reservations(row["trades_today"], in_flight_from_row(row, seen_order_ids)),
        start_of_day_source=row["start_of_day_source"],
        global_stop_mode=_global_stop_mode(row["global_stop_mode"]),
        net_deposits=net_deposits - (row["start_of_day_deposits"] or Decimal(0)),
    )
    return LockedInputs(now, database_day, None, inputs)


async def decision_inputs(
    conn: Conn,
    account_id: str,
    nlv: Decimal,
    *,
    hold: bool,
    seen_order_ids: Collection[str],
    day: date | None = None,
    net_deposits: Decimal = Decimal(0),
    clock: datetime | None = None,
    state_fetched_at: datetime | None = None,
    settle_after: timedelta = SEEN_SETTLE_AFTER,
) -> DecisionInputs:
    """In one round trip: the database's ``now()`` (the transaction's start: one clock for
    the whole decision; ``clock`` replaces it in tests) and its trading day; every protection
    of the account (with ``hold``, share-locked until commit: an emergency stop, which takes
    them FOR UPDATE, then commits after this decision, never during it); the start-of-day NLV
    of the day: the broker's when recorded, else the first sight (``nlv``, recorded now with
    ``net_deposits`` if this is the first decision of the day); and the day's reservations
    (trades counted, orders in flight: see the module docstring). With ``hold`` it also
    deletes the in-flight rows it finds settled (``settle_after``: see SEEN_SETTLE_AFTER; pass
    more when ``risk.max_state_age_seconds`` plus a state read's timeout exceed it).
    ``state_fetched_at``: when the account state behind ``seen_order_ids`` was fetched (the
    wall clock when the engine got it less ``payloads.age_seconds``); orders answered before
    that are in it. Call it
    after :func:`lock_account` (its own statement), or use :func:`decision_inputs_locked`.

    ``day``: the trading day the caller fetched the broker's start of day and ``net_deposits``
    for; if the database's differs, TradingDayChanged (nothing recorded)."""
    read = await _read_inputs(
        conn,
        account_id,
        nlv,
        hold=hold,
        lock=False,
        seen_order_ids=seen_order_ids,
        day=day,
        net_deposits=net_deposits,
        clock=clock,
        state_fetched_at=state_fetched_at,
        settle_after=settle_after,
    )
    assert read.inputs is not None  # noqa: S101 - no duplicate lookup was asked for
    return read.inputs


async def decision_inputs_locked(
    conn: Conn,
    account_id: str,
    nlv: Decimal,
    *,
    seen_order_ids: Collection[str],
    day: date | None = None,
    net_deposits: Decimal = Decimal(0),
    clock: datetime | None = None,
    state_fetched_at: datetime | None = None,
    settle_after: timedelta = SEEN_SETTLE_AFTER,
    client_identifiers: Sequence[str] = (),
    fingerprint: str = "",
    duplicate_window_seconds: float = 0.0,
) -> LockedInputs:
    """:func:`lock_account`, the duplicate lookup of
    :func:`gatekeeper.adapters.outcomes.find_duplicate` (when there are identifiers or a
    window) and :func:`decision_inputs` with ``hold``, in ONE round trip (a plpgsql function:
    each of its statements takes its snapshot after the lock was granted). Inside the
    decision's transaction; the lock is held until it ends. When a duplicate is found, nothing
    else is read or recorded (``inputs`` is None; ``now`` and ``trading_day`` are given for the
    retry's own row, no need for :func:`database_now`)."""
    return await _read_inputs(
        conn,
        account_id,
        nlv,
        hold=True,
        lock=True,
        seen_order_ids=seen_order_ids,
        day=day,
        net_deposits=net_deposits,
        clock=clock,
        state_fetched_at=state_fetched_at,
        settle_after=settle_after,
        client_identifiers=client_identifiers,
        fingerprint=fingerprint,
        duplicate_window_seconds=duplicate_window_seconds,
    )


def in_flight_from_row(row: Any, seen_order_ids: Collection[str] | None) -> list[dict[str, Any]]:
    """The orders in flight of an ``order_path_inputs`` row: looked up in the database when it
    was given the state's ids (``in_flight``), else here among ``seen_order_ids``: the broker
    order ids of every order answered since the state was fetched (``candidate_order_ids``,
    sql/0032) are looked up in a set, and only the orders of those the state does not show are
    parsed (``candidate_orders``); without ``seen_order_ids``, all of them count."""
    ids = row["candidate_order_ids"]
    if ids is None:
        in_flight: list[dict[str, Any]] = orjson.loads(row["in_flight"])
        return in_flight
    seen = (
        seen_order_ids
        if isinstance(seen_order_ids, (set, frozenset))
        else set(seen_order_ids or ())
    )
    return [
        item
        for order_id, orders in zip(ids, row["candidate_orders"], strict=True)
        if order_id is None or order_id not in seen
        for item in orjson.loads(orders)
    ]


def seen_text(order_ids: Collection[str]) -> str:
    """The state's order ids as ``order_path_inputs`` takes them when it is to look them up
    itself (one text, not a text[]: see sql/0030)."""
    return _seen_text(order_ids)


def _seen_text(order_ids: Collection[str]) -> str:
    """The state's order ids as sql/0030 takes them: one text, each id between newlines (an
    id with a newline in it cannot be matched: its order stays in flight)."""
    return "\n" + "\n".join(order_ids) + "\n"


def state_age(fetched_at: datetime | None, clock: datetime | None) -> timedelta | None:
    """How long before the database's clock the state was fetched, at least: measured now on
    this host (the database's ``now()`` is the transaction's start, no later), plus the
    margin for the two hosts' clocks."""
    if fetched_at is None:
        return None
    reference = clock if clock is not None else datetime.now(UTC)
    return max(reference - fetched_at, timedelta(0)) + STATE_CLOCK_MARGIN


def _global_stop_mode(mode: str | None) -> str | None:
    if mode is None:  # sql/0026 inserts the row and a trigger keeps it: fail closed
        raise RuntimeError("global_emergency_stop has no row: the schema is damaged")
    return mode or None
