"""The invariants every fault scenario must leave at 0, checked against the broker's own log
(the paper broker's ``/__paper/orders``: every order request that reached it) and the audit
tables, never against what the gatekeeper says about itself.

- **I1** every order the broker received has an earlier ``allow`` decision (by the
  ``external-identifier`` the gatekeeper put on it, ``gk-<decision id>`` or the bot's own).
- **I2** every answer a bot saw on an order route carries a decision id that has exactly one
  row in ``risk_decisions``, and no two answers share one.
- **I3** no limit overshoot: orders the broker accepted beyond ``max_daily_trades``, and
  orders received whose value exceeds the single-trade limit.
- **I4** nothing forwarded after a committed emergency stop (per account or global): no allow
  decision after the stop in the account's audit chain (``chain_seq``: the order the account
  lock serialized them in), and nothing received by the broker after the stop was committed
  (the time the scenario saw it answered, else the stop row's own time).
- **I5** no planted secret in the captured logs, the metrics text, any row of any table, or
  any answer a bot saw (body or headers).
- **I6** no order received twice for one submission: no ``external-identifier`` twice, and no
  two received orders decided for one submission a bot made (its retries included).
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import aiohttp
import asyncpg

# Broker and Postgres timestamps come from one host clock; the broker's are in milliseconds.
CLOCK_SLACK = timedelta(milliseconds=2)


@dataclass(frozen=True)
class Seen:
    """One answer a bot got on an order route (``status`` None: no answer at all)."""

    submission: str  # the bot's own name for what it meant to place once (retries share it)
    status: int | None
    decision_id: str | None
    code: str | None
    text: str  # body and headers, for I5


@dataclass
class Evidence:
    """What a scenario saw and planted, for the checker."""

    answers: list[Seen] = field(default_factory=list)
    secrets: list[str] = field(default_factory=list)
    texts: dict[str, str] = field(default_factory=dict)  # name -> captured text (logs...)
    max_daily_trades: int | None = None
    max_order_value: Decimal | None = None
    # When the scenario saw each stop answered (account, or "*" for a global stop): the
    # latest its commit can be. Without it, the stop row's own time (its transaction's start).
    stops_answered: dict[str, datetime] = field(default_factory=dict)
    # Answers refused because the audit database itself was unreachable cannot have a row:
    # the scenario says which codes it accepts without one (I2 still wants the header).
    unrecorded_codes: frozenset[str] = frozenset()


@dataclass
class Report:
    """Violations per invariant, with what each one was."""

    violations: dict[str, list[str]] = field(
        default_factory=lambda: {f"I{n}": [] for n in range(1, 7)}
    )
    received: int = 0
    answers: int = 0

    def count(self, name: str) -> int:
        return len(self.violations[name])

    @property
    def counts(self) -> dict[str, int]:
        return {name: len(found) for name, found in self.violations.items()}

    def explain(self) -> str:
        lines = [f"{n}: {len(v)}" for n, v in self.violations.items()]
        for name, found in self.violations.items():
            lines.extend(f"  {name}: {item}" for item in found[:10])
        return "\n".join(lines)


def identifiers(body: dict[str, Any]) -> list[str]:
    """The ``external-identifier`` of every order a received body places."""
    members = [body.get("trigger-order"), *(body.get("orders") or [])]
    orders = [m for m in members if isinstance(m, dict)] or [body]
    return [str(o["external-identifier"]) for o in orders if o.get("external-identifier")]


def order_value(body: dict[str, Any]) -> Decimal | None:
    """A limit order's value (price times total quantity); None for other orders."""
    price = body.get("price")
    legs = body.get("legs") or []
    if price is None or not legs:
        return None
    return abs(Decimal(str(price))) * sum(Decimal(str(leg.get("quantity", 0))) for leg in legs)


async def broker_log(paper_url: str, control_headers: dict[str, str]) -> list[dict[str, Any]]:
    async with (
        aiohttp.ClientSession() as session,
        session.get(paper_url + "/__paper/orders", headers=control_headers) as response,
    ):
        response.raise_for_status()
        items: list[dict[str, Any]] = (await response.json())["data"]["items"]
    return items


async def _all_rows_text(conn: Any) -> dict[str, str]:
    tables = await conn.fetch(
        "SELECT table_name FROM information_schema.tables"
        " WHERE table_schema = 'public' AND table_type = 'BASE TABLE'"
    )
    texts = {}
    for row in tables:
        name = row["table_name"]
        quoted = '"' + name.replace('"', '""') + '"'
        texts[f"table {name}"] = str(
            await conn.fetchval(f"SELECT coalesce(json_agg(t)::text, '') FROM {quoted} t")  # noqa: S608
        )
    return texts


def _stop_windows(rows: list[asyncpg.Record]) -> list[tuple[str, datetime, datetime | None, str]]:
    """(account or '*', triggered at, cleared at or None, mode) from event rows in order."""
    windows: list[tuple[str, datetime, datetime | None, str]] = []
    open_: dict[str, tuple[datetime, str]] = {}
    for row in rows:
        scope = row["account_id"]
        if row["event"] == "triggered" and scope not in open_:
            open_[scope] = (row["occurred_at"], row["mode"] or "halt")
        elif row["event"] == "cleared" and scope in open_:
            started, mode = open_.pop(scope)
            windows.append((scope, started, row["occurred_at"], mode))
    windows.extend((scope, started, None, mode) for scope, (started, mode) in open_.items())
    return windows


def _reduces_only(body: dict[str, Any]) -> bool:
    legs = body.get("legs") or []
    return bool(legs) and all(str(leg.get("action", "")).endswith("to Close") for leg in legs)


def _secrets_found(secrets: list[str], texts: dict[str, str]) -> list[str]:
    return [
        f"secret {secret[:4]}… in {name}"
        for secret in secrets
        for name, text in texts.items()
        if secret and secret in text
    ]


async def check(
    pool: asyncpg.Pool,
    paper_url: str,
    control_headers: dict[str, str],
    evidence: Evidence,
) -> Report:
    """Every invariant, from the broker's log and the audit tables (``pool``: the database
    itself, never through a fault proxy)."""
    received = await broker_log(paper_url, control_headers)
    report = Report(received=len(received), answers=len(evidence.answers))
    async with pool.acquire() as conn:
        decisions = {
            str(r["decision_id"]): r
            for r in await conn.fetch(
                "SELECT decision_id, verdict, decided_at, account_id, trade_count,"
                " coalesce(detail -> 'external_identifiers', '[]') AS ids FROM risk_decisions"
            )
        }
        events = await conn.fetch(
            "SELECT account_id, event, mode, occurred_at, chain_seq FROM emergency_events"
            " UNION ALL SELECT '*', event, mode, occurred_at, NULL FROM global_emergency_events"
            " ORDER BY occurred_at"
        )
        after_stop = await conn.fetch(
            "SELECT d.decision_id, d.chain_seq, e.chain_seq AS stop_seq FROM risk_decisions d"
            " JOIN emergency_events e ON e.account_id = d.account_id AND e.event = 'triggered'"
            " AND d.chain_seq > e.chain_seq AND d.verdict = 'allow' AND d.trade_count > 0"
            " AND NOT EXISTS (SELECT 1 FROM emergency_events c WHERE c.account_id = e.account_id"
            " AND c.event = 'cleared' AND c.chain_seq > e.chain_seq AND c.chain_seq < d.chain_seq)"
            " AND (e.mode IS DISTINCT FROM 'reduce_only' OR d.detail::text NOT LIKE '%to Close%')"
        )
        tables = await _all_rows_text(conn)
    by_identifier: dict[str, asyncpg.Record] = {}
    for row in decisions.values():
        for ident in json.loads(row["ids"]):
            by_identifier.setdefault(ident, row)

    # I1: an earlier allow decision for every order received.
    decided_for: dict[int, str] = {}
    for entry in received:
        at = datetime.fromisoformat(entry["received-at"])
        for ident in identifiers(entry["body"]) or ["(none)"]:
            found = by_identifier.get(ident)
            if found is None or found["verdict"] != "allow":
                report.violations["I1"].append(f"seq {entry['seq']} {ident}: no allow decision")
            elif found["decided_at"] > at + CLOCK_SLACK:
                report.violations["I1"].append(f"seq {entry['seq']} {ident}: decided after")
            else:
                decided_for[entry["seq"]] = str(found["decision_id"])

    # I2: one decision row per answer seen.
    answered = [seen for seen in evidence.answers if seen.status is not None]
    shared = Counter(seen.decision_id for seen in answered if seen.decision_id)
    for seen in answered:
        if not seen.decision_id:
            report.violations["I2"].append(f"{seen.submission}: {seen.status} without decision id")
        elif seen.decision_id not in decisions and seen.code not in evidence.unrecorded_codes:
            report.violations["I2"].append(f"{seen.submission}: {seen.decision_id} has no row")
        elif shared[seen.decision_id] > 1:
            report.violations["I2"].append(
                f"{seen.decision_id} answered {shared[seen.decision_id]}x"
            )

    # I3: limits.
    accepted = [e for e in received if e["outcome"] == "accepted" and e["kind"] != "replace"]
    if evidence.max_daily_trades is not None and len(accepted) > evidence.max_daily_trades:
        over = len(accepted) - evidence.max_daily_trades
        report.violations["I3"].extend(f"trade {n} over max_daily_trades" for n in range(over))
    if evidence.max_order_value is not None:
        for entry in received:
            value = order_value(entry["body"])
            if value is not None and value > evidence.max_order_value:
                report.violations["I3"].append(f"seq {entry['seq']} worth {value}")

    # I4: nothing decided after a stop (chain order), nothing received after its commit.
    for row in after_stop:
        report.violations["I4"].append(
            f"decision {row['decision_id']} allowed at chain {row['chain_seq']},"
            f" after the stop at {row['stop_seq']}"
        )
    for scope, started, cleared, mode in _stop_windows(list(events)):
        committed = max(started, evidence.stops_answered.get(scope, started))
        for entry in received:
            at = datetime.fromisoformat(entry["received-at"])
            inside = at > committed + CLOCK_SLACK and (cleared is None or at < cleared)
            mine = scope == "*" or entry["account-number"] == scope
            allowed = mode == "reduce_only" and _reduces_only(entry["body"])
            if inside and mine and not allowed:
                late = (at - committed).total_seconds()
                report.violations["I4"].append(f"seq {entry['seq']} {late:.3f}s after stop")

    # I5: planted secrets nowhere (searched off the event loop: the texts may be large).
    texts = {**evidence.texts, **tables}
    texts.update({f"answer {n}": seen.text for n, seen in enumerate(evidence.answers)})
    texts["broker log"] = json.dumps(received)
    report.violations["I5"] = await asyncio.to_thread(_secrets_found, evidence.secrets, texts)

    # I6: one order placed per submission (an order the broker refused may be sent again).
    for ident, n in Counter(i for e in accepted for i in identifiers(e["body"])).items():
        if n > 1:
            report.violations["I6"].append(f"{ident} received {n}x")
    submission_of = {s.decision_id: s.submission for s in answered if s.decision_id}
    per_submission = Counter(
        submission_of[decided_for[e["seq"]]]
        for e in accepted
        if decided_for.get(e["seq"]) in submission_of
    )
    for submission, n in per_submission.items():
        if n > 1:
            report.violations["I6"].append(f"submission {submission} received {n}x")
    return report
