"""``gatekeeper stop ACCOUNT|--all`` and ``gatekeeper clear ACCOUNT|--all --confirm``: the
kill switch from the database host (the CLI holds the database, so it may choose any mode).

A stop commits at once and binds every replica; the running replicas then cancel the working
orders (with the gatekeeper's own broker credentials when configured, else with the first bot
credential the broker confirms). The command says which, plainly.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import TYPE_CHECKING

from gatekeeper.cli_admin import Command, _connect, _describe, _emails, _out
from gatekeeper.errors import BadRequest
from gatekeeper.settings import Settings

if TYPE_CHECKING:
    from gatekeeper.adapters.pg import Conn


def _scope(args: argparse.Namespace) -> str | None:
    """The account, or None for --all (exactly one of them)."""
    if (args.account is None) == (not args.all):
        raise BadRequest("give an ACCOUNT or --all (not both)")
    account: str | None = args.account
    return account


async def _cancels_line(conn: Conn, account: str, settings: Settings) -> str:
    from gatekeeper.adapters import stop_cancels
    from gatekeeper.web.cancel_models import working_orders_on_stop

    events = await stop_cancels.active_stop_events(conn, account)
    state = working_orders_on_stop(events, await stop_cancels.cancel_runs(conn, account, events))
    line = f"Working orders: {state.message}"
    if state.state == "pending":
        own = any(account in c.accounts for c in settings.stops.broker_clients)
        line += (
            " (the running gatekeeper uses its own broker credentials for this account)"
            if own
            else " (no broker credentials of the gatekeeper's own for this account)"
        )
    return line


async def cmd_stop(settings: Settings, args: argparse.Namespace) -> int:
    from gatekeeper.adapters import protections as store
    from gatekeeper.adapters import stops

    account = _scope(args)
    actor = store.Actor(args.by or "cli", "cli")
    async with _connect(settings) as conn:
        if account is None:
            state, changed = await stops.trigger_global_stop(
                conn, reason=args.reason, triggered_by=actor.name, mode=args.mode,
                actor=actor, may_loosen=True,
            )  # fmt: skip
            _out(
                f"GLOBAL EMERGENCY STOP {'triggered' if changed else 'already active'}:"
                f" every account, mode {state.mode}, by {state.triggered_by}: {state.reason}"
            )
            _out("Working orders: cancelled by the running gatekeeper, account by account")
            return 0
        results = await stops.stop_account(
            conn, account, reason=args.reason, triggered_by=actor.name, mode=args.mode,
            actor=actor, may_loosen=True, risk=settings.risk,
            default_stop_mode=settings.admin.default_emergency_stop_mode,
        )  # fmt: skip
        emails = await _emails(conn)
        for protection, changed in results:
            _out("Stopped now" if changed else "Was already stopped")
            for line in _describe(protection, emails.get(protection.user_id, "?")):
                _out(line)
        _out(await _cancels_line(conn, account, settings))
    return 0


async def cmd_clear(settings: Settings, args: argparse.Namespace) -> int:
    from gatekeeper.adapters import protections as store
    from gatekeeper.adapters import stops

    account = _scope(args)
    actor = store.Actor(args.by or "cli", "cli")
    async with _connect(settings) as conn:
        if account is None:
            await stops.clear_global_stop(conn, cleared_by=actor.name, actor=actor)
            _out("Global emergency stop cleared (stops on single accounts stay)")
            return 0
        cleared = await stops.clear_account(conn, account, cleared_by=actor.name, actor=actor)
        emails = await _emails(conn)
        for protection in cleared:
            for line in _describe(protection, emails.get(protection.user_id, "?")):
                _out(line)
    return 0


def _target(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("account", nargs="?", default=None, help="the account number")
    parser.add_argument("--all", action="store_true", help="every account (the global stop)")
    parser.add_argument("--by", default=None, help="name recorded (default cli)")


def _stop_arguments(parser: argparse.ArgumentParser) -> None:
    _target(parser)
    parser.add_argument("--reason", required=True)
    parser.add_argument(
        "--mode",
        choices=("halt", "reduce_only"),
        default=None,
        help="this stop's mode (default: each protection's stop mode, else halt; --all: halt)",
    )


def _clear_arguments(parser: argparse.ArgumentParser) -> None:
    _target(parser)
    parser.add_argument("--confirm", action="store_true", required=True)


STOP_COMMANDS: dict[str, tuple[Command, str]] = {
    "stop": (cmd_stop, "emergency stop: an account (any, protected or not) or --all"),
    "clear": (cmd_clear, "clear an emergency stop: an account or --all (needs --confirm)"),
}
STOP_ARGUMENTS: dict[str, Callable[[argparse.ArgumentParser], None]] = {
    "stop": _stop_arguments,
    "clear": _clear_arguments,
}
