"""``gatekeeper audit verify`` and ``gatekeeper audit export``: the tamper-evident audit trail
(``sql/0028``, gatekeeper.adapters.audit_chain, gatekeeper.audit_verify).

``export`` writes each account's chain head at the end of a trading day as JSON, to be kept
somewhere the database's superuser cannot reach; ``verify --anchor FILE`` then also checks that
every chain still contains the head it had then (a truncated tail, or a rewritten chain, shows).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

from gatekeeper.cli_admin import Command, _connect, _out
from gatekeeper.errors import BadRequest
from gatekeeper.settings import Settings

EXPORT_FORMAT = "gatekeeper-audit-heads/1"


def _head_json(head: Any) -> dict[str, Any]:
    return {
        "account_id": head.account_id,
        "table": head.table,
        "id": head.id,
        "chain_seq": head.seq,
        "chain_hash": head.hash.hex(),
    }


def _read_anchor(path: Path) -> dict[str, Any]:
    from gatekeeper.adapters.audit_chain import Head

    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if data.get("format") != EXPORT_FORMAT:
            raise BadRequest(f"{path} is not a `gatekeeper audit export` file")
        return {
            item["account_id"]: Head(
                item["account_id"],
                item["table"],
                int(item["id"]),
                int(item["chain_seq"]),
                bytes.fromhex(item["chain_hash"]),
            )
            for item in data["heads"]
        }
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as error:
        raise BadRequest(f"cannot read the export {path}: {type(error).__name__}") from None


async def cmd_audit(settings: Settings, args: argparse.Namespace) -> int:
    if args.action == "verify":
        return await _verify(settings, args)
    return await _export(settings, args)


async def _verify(settings: Settings, args: argparse.Namespace) -> int:
    from gatekeeper.adapters import audit_chain
    from gatekeeper.audit_verify import Problem, check_chain

    anchors = _read_anchor(args.anchor) if args.anchor is not None else {}
    async with (
        _connect(settings) as conn,
        conn.transaction(isolation="repeatable_read", readonly=True),
    ):
        chains = await audit_chain.chains(conn, args.account)
        heads = await audit_chain.heads(conn, args.account)
    if args.account is not None:
        anchors = {k: v for k, v in anchors.items() if k == args.account}
    problems: list[Problem] = []
    rows = 0
    for account in sorted({*chains, *heads, *anchors}):
        found = chains.get(account, [])
        rows += len(found)
        problems.extend(check_chain(account, found, heads.get(account), anchors.get(account)))
    for problem in problems:
        _out(problem.line())
    accounts = len({*chains, *heads, *anchors})
    summary = f"{accounts} account(s), {rows} row(s)"
    if anchors:
        summary += f", {len(anchors)} exported head(s) checked"
    if problems:
        print(f"audit verify: FAILED: {len(problems)} problem(s) in {summary}", file=sys.stderr)
        return 1
    _out(f"audit verify: OK: {summary}")
    return 0


async def _export(settings: Settings, args: argparse.Namespace) -> int:
    from gatekeeper.adapters import audit_chain
    from gatekeeper.adapters.decisions import database_now
    from gatekeeper.core import trading_day

    async with (
        _connect(settings) as conn,
        conn.transaction(isolation="repeatable_read", readonly=True),
    ):
        now = await database_now(conn)
        chains = await audit_chain.chains(conn, args.account)
    day: date = args.day or trading_day(now)
    document = {
        "format": EXPORT_FORMAT,
        "day": day.isoformat(),
        "exported_at": now.isoformat(),
        "heads": [_head_json(h) for h in audit_chain.heads_at_end_of(day, chains)],
    }
    text = json.dumps(document, indent=2) + "\n"
    if args.output is None:
        sys.stdout.write(text)
    else:
        args.output.write_text(text, encoding="utf-8")
        _out(f"audit export: {len(document['heads'])} chain head(s) of {day} in {args.output}")
    return 0


def _audit_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    verify = actions.add_parser(
        "verify", help="recompute every chain; exit 1 on an edited, deleted, inserted or"
        " reordered row",
    )  # fmt: skip
    verify.add_argument("--account", default=None, help="only this account's chain")
    verify.add_argument(
        "--anchor", type=Path, default=None,
        help="an `audit export` file: each chain must still contain the head it names",
    )  # fmt: skip
    export = actions.add_parser("export", help="write each account's chain head of a day (JSON)")
    export.add_argument(
        "--day", type=date.fromisoformat, default=None,
        help="YYYY-MM-DD, a trading day (America/New_York; default today)",
    )  # fmt: skip
    export.add_argument("--account", default=None, help="only this account")
    export.add_argument("--output", type=Path, default=None, help="a file (default stdout)")


AUDIT_COMMANDS: dict[str, tuple[Command, str]] = {
    "audit": (cmd_audit, "the tamper-evident audit trail: verify the hash chains, export heads"),
}
AUDIT_ARGUMENTS: dict[str, Callable[[argparse.ArgumentParser], None]] = {
    "audit": _audit_arguments,
}
