"""``gatekeeper decisions ACCOUNT``: an account's decisions (today's by default), newest first,
as a table to read or as JSON to pipe. It reads the decision log in Postgres (DATABASE_URL),
so it works whether or not the gatekeeper is running."""

from __future__ import annotations

import argparse
import dataclasses
import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from gatekeeper.cli_admin import Command, connect_db
from gatekeeper.errors import BadRequest
from gatekeeper.settings import Settings

_DEFAULT_LIMIT = 50


def _row(item: Any) -> str:
    from gatekeeper.core.summary import summary_text
    from gatekeeper.core.tradingday import NEW_YORK

    when = item.decided_at.astimezone(NEW_YORK).strftime("%Y-%m-%d %H:%M:%S")
    order = summary_text(item.summary) or "(order not read)"
    codes = ", ".join(item.codes) or "-"
    return (
        f"{when}  {item.verdict:<7} {item.outcome or '-':<15} {order[:60]:<60}"
        f"  {codes}  {item.decision_id}"
    )


def _as_json(items: list[Any]) -> str:
    def plain(value: Any) -> Any:
        if isinstance(value, datetime):
            return value.isoformat()
        return str(value)

    return json.dumps([dataclasses.asdict(item) for item in items], default=plain, indent=2)


async def cmd_decisions(settings: Settings, args: argparse.Namespace) -> int:
    from gatekeeper.adapters.decision_log import (
        MAX_LIMIT,
        InvalidTimeBound,
        list_decisions,
        parse_time_bound,
    )

    if not 1 <= args.limit <= MAX_LIMIT:
        raise BadRequest(f"--limit must be between 1 and {MAX_LIMIT}")
    try:
        since = parse_time_bound(args.since, datetime.now(UTC))
    except InvalidTimeBound as error:
        raise BadRequest(f"--since {error}") from None
    async with connect_db(settings) as conn:
        found = await list_decisions(
            conn,
            account_id=args.account,
            since=since,
            verdict=args.verdict,
            code=args.code,
            limit=args.limit,
        )
    if args.json:
        print(_as_json(found))
        return 0
    if not found:
        print(f"no decisions for {args.account} since {since.isoformat(timespec='seconds')}")
        return 0
    print(
        f"{'time (New York)':<19}  {'verdict':<7} {'outcome':<15} {'order':<60}  codes  decision id"
    )
    for item in found:
        print(_row(item))
    if len(found) == args.limit:
        print(f"(the newest {args.limit}; --limit or --since for more)")
    return 0


def _decisions_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("account", help="account number, e.g. 5WT00001")
    parser.add_argument(
        "--since",
        default="today",
        help="today (default: the New York trading day), YYYY-MM-DD, 15m / 2h / 7d back, or an"
        " ISO 8601 time with its offset",
    )
    parser.add_argument("--verdict", choices=("allow", "reject", "error"), default=None)
    parser.add_argument("--code", default=None, help="only decisions with this code")
    parser.add_argument("--limit", type=int, default=_DEFAULT_LIMIT, help="at most (50)")
    parser.add_argument("--json", action="store_true", help="JSON instead of a table")


DECISIONS_COMMANDS: dict[str, tuple[Command, str]] = {
    "decisions": (cmd_decisions, "an account's risk decisions, newest first (today's by default)"),
}
DECISIONS_ARGUMENTS: dict[str, Callable[[argparse.ArgumentParser], None]] = {
    "decisions": _decisions_arguments,
}
