"""Operators' commands: ``users``, ``tokens`` and ``protections`` (the seed's Rails console
steps as commands). They talk to Postgres directly (DATABASE_URL), so they also bootstrap the
first admin token. Heavy imports happen inside the commands, keeping ``gatekeeper --help`` fast.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from gatekeeper.cli_errors import DatabaseNotConfigured, connect
from gatekeeper.errors import BadRequest
from gatekeeper.settings import Settings

if TYPE_CHECKING:
    from gatekeeper.adapters.pg import Conn
    from gatekeeper.adapters.protections import Protection

Command = Callable[[Settings, argparse.Namespace], Coroutine[Any, Any, int]]
__all__ = ["ADMIN_ARGUMENTS", "ADMIN_COMMANDS", "Command", "DatabaseNotConfigured", "connect_db"]


@asynccontextmanager
async def _connect(settings: Settings) -> AsyncIterator[Conn]:
    """DATABASE_URL's Postgres, or one line saying why not (gatekeeper.cli_errors)."""
    conn = await connect(settings)
    try:
        yield conn
    finally:
        await conn.close()


def _out(line: str = "") -> None:
    sys.stdout.write(line + "\n")


connect_db = _connect  # for the other command modules


# -- users ------------------------------------------------------------------------------------


async def cmd_users(settings: Settings, args: argparse.Namespace) -> int:
    from gatekeeper.adapters import users

    async with _connect(settings) as conn:
        if args.action == "create":
            user = await users.create_user(conn, args.email, args.name)
            _out(f"created user {user.id}: {user.email}")
        else:
            for user in await users.list_users(conn):
                _out(f"{user.id:>5}  {user.email}  {user.name or ''}".rstrip())
    return 0


# -- tokens -----------------------------------------------------------------------------------


async def cmd_tokens(settings: Settings, args: argparse.Namespace) -> int:
    from gatekeeper.adapters import users
    from gatekeeper.auth import Role, parse_ttl

    async with _connect(settings) as conn:
        if args.action == "create":
            ttl = parse_ttl(args.ttl or settings.admin.default_token_ttl)
            user = await users.find_user(conn, args.user)
            token, info = await users.create_token(conn, user, Role(args.role), ttl, args.label)
            _out(f"token: {token}")
            _out("(shown once: only its SHA-256 digest is stored; keep it somewhere safe)")
            _out(f"id: {info.id}  user: {info.email}  role: {info.role.value}")
            _out(f"expires: {info.expires_at.isoformat(timespec='seconds')}")
        elif args.action == "revoke":
            info = await users.revoke_token(conn, args.token_id)
            _out(f"revoked token {info.id} ({info.email}, {info.role.value})")
        else:
            _out(f"{'id':>5}  {'user':<28} {'role':<9} {'state':<8} {'expires':<26} last used")
            for info in await users.list_tokens(conn, args.user):
                used = info.last_used_at.isoformat(timespec="seconds") if info.last_used_at else "-"
                expires = info.expires_at.isoformat(timespec="seconds")
                _out(
                    f"{info.id:>5}  {info.email:<28} {info.role.value:<9} {info.state:<8}"
                    f" {expires:<26} {used}"
                )
    return 0


# -- protections ------------------------------------------------------------------------------

_SETTING_FLAGS = (
    ("--cash-reserve", "cash_reserve_percentage", Decimal, "percent of NLV kept in cash"),
    ("--daily-loss", "max_daily_loss_percentage", Decimal, "daily loss limit, percent"),
    ("--single-trade", "max_single_trade_percentage", Decimal, "largest trade, percent"),
    ("--exposure", "max_portfolio_exposure_percentage", Decimal, "most invested, percent"),
    (
        "--concentration",
        "max_position_concentration_percentage",
        Decimal,
        "one underlying, percent",
    ),
    ("--daily-trades", "max_daily_trades", int, "orders per trading day"),
    ("--collar-equity", "price_collar_equity_percentage", Decimal, "equity price collar, %%"),
    ("--collar-option", "price_collar_option_percentage", Decimal, "option price collar, %%"),
    (
        "--collar-option-width",
        "price_collar_option_width_multiple",
        Decimal,
        "option collar, multiple of the bid-ask width",
    ),
    ("--collar-future", "price_collar_future_percentage", Decimal, "future price collar, %%"),
    ("--max-shares", "max_order_quantity_equity", int, "most shares in one leg"),
    ("--max-option-contracts", "max_order_quantity_equity_option", int, "per option leg"),
    ("--max-future-contracts", "max_order_quantity_future", int, "per future leg"),
    (
        "--max-future-option-contracts",
        "max_order_quantity_future_option",
        int,
        "per future option leg",
    ),
)


# --stop-mode unset: the protection has no mode of its own (the API's null).
_UNSET = "unset"


def _off(value: object, unit: str) -> str:
    return "off" if value is None else f"{value}{unit}"


def _describe(protection: Protection, owner: str) -> list[str]:
    p = protection
    stop = (
        f"ACTIVE since {p.emergency_stop_triggered_at.isoformat(timespec='seconds')}"
        f" by {p.emergency_stop_triggered_by}: {p.emergency_stop_reason}"
        f" (mode {p.emergency_stop_active_mode})"
        if p.emergency_stop_triggered_at is not None
        else "inactive"
    )
    mode = p.emergency_stop_mode or "not set (automatic stops reduce_only, manual stops halt)"
    return [
        f"Protection {p.id} on account {p.account_id} (owner {owner})",
        "Settings:",
        f"  Cash Reserve: {p.cash_reserve_percentage}%",
        f"  Daily Loss Limit: {p.max_daily_loss_percentage}%",
        f"  Single Trade Limit: {p.max_single_trade_percentage}%",
        f"  Max Exposure: {p.max_portfolio_exposure_percentage}%",
        f"  Max Concentration: {p.max_position_concentration_percentage}%",
        f"  Max Daily Trades: {p.max_daily_trades}",
        f"  Email Alerts: {'on' if p.email_alerts_enabled else 'off'}",
        f"  Active: {'yes' if p.active else 'no'}",
        f"  Price Collars: equity {_off(p.price_collar_equity_percentage, '%')}, option"
        f" {_off(p.price_collar_option_percentage, '%')} or"
        f" {_off(p.price_collar_option_width_multiple, 'x the bid-ask width')}, future"
        f" {_off(p.price_collar_future_percentage, '%')}",
        f"  Max Order Quantity: {_off(p.max_order_quantity_equity, ' shares')},"
        f" {_off(p.max_order_quantity_equity_option, ' option contracts')},"
        f" {_off(p.max_order_quantity_future, ' future contracts')},"
        f" {_off(p.max_order_quantity_future_option, ' future option contracts')}",
        f"  Emergency Stop Mode: {mode}",
        f"  Cancel Working Orders On Stop: {'yes' if p.cancel_working_orders_on_stop else 'no'}",
        f"  Emergency Stop: {stop}",
    ]


async def _owner(conn: Conn, email: str | None) -> tuple[int, str]:
    from gatekeeper.adapters import users

    if email is not None:
        user = await users.find_user(conn, email)
        return user.id, user.email
    everyone = await users.list_users(conn)
    if len(everyone) != 1:
        raise BadRequest(f"{len(everyone)} users exist: say whose protection with --user EMAIL")
    return everyone[0].id, everyone[0].email


async def _emails(conn: Conn) -> dict[int, str]:
    from gatekeeper.adapters import users

    return {user.id: user.email for user in await users.list_users(conn)}


_LIST_HEADER = (
    f"{'id':>5}  {'account':<12} {'owner':<24} {'reserve':>7} {'loss':>7} {'trade':>7}"
    f" {'expo':>7} {'conc':>7} {'trades':>6}  {'active':<6} stop"
)


def _pct(value: object) -> str:
    return f"{value}%".rjust(7)


async def _list_protections(conn: Conn, account: str | None) -> int:
    """One line per protection (every owner's), the stop state last."""
    from gatekeeper.adapters import protections as store

    found = await store.list_protections(conn, None, account)
    if not found:
        _out("no protections" + (f" for account {account}" if account else ""))
        return 0 if account is None else 1
    emails = await _emails(conn)
    _out(_LIST_HEADER)
    for p in found:
        stop = f"STOPPED ({p.emergency_stop_active_mode})" if p.emergency_stop_active else "-"
        _out(
            f"{p.id:>5}  {p.account_id:<12} {emails.get(p.user_id, '?')[:24]:<24}"
            f" {_pct(p.cash_reserve_percentage)} {_pct(p.max_daily_loss_percentage)}"
            f" {_pct(p.max_single_trade_percentage)} {_pct(p.max_portfolio_exposure_percentage)}"
            f" {_pct(p.max_position_concentration_percentage)} {p.max_daily_trades:>6}"
            f"  {'yes' if p.active else 'no':<6} {stop}"
        )
    return 0


async def cmd_protections(settings: Settings, args: argparse.Namespace) -> int:
    from gatekeeper.adapters import protections as store
    from gatekeeper.adapters.protection_stops import clear_emergency_stop

    actor = store.Actor(getattr(args, "by", None) or "cli", "cli")
    async with _connect(settings) as conn:
        if args.action == "set":
            from gatekeeper.web.admin_input import parse
            from gatekeeper.web.admin_models import ProtectionSettings

            given = {field: getattr(args, field) for _, field, _, _ in _SETTING_FLAGS}
            given |= {"email_alerts_enabled": args.email_alerts, "active": args.active}
            given["cancel_working_orders_on_stop"] = args.cancel_working_orders_on_stop
            given["emergency_stop_mode"] = args.stop_mode
            data = {k: v for k, v in given.items() if v is not None}
            if args.stop_mode == _UNSET:
                data["emergency_stop_mode"] = None  # the API's null
            values = parse(ProtectionSettings, data)
            owner, email = await _owner(conn, args.user)
            protection, created = await store.upsert_protection(
                conn,
                owner,
                args.account,
                values.given(),
                actor,
                default_stop_mode=settings.admin.default_emergency_stop_mode,
            )
            _out(f"{'Created' if created else 'Updated'} protection for account {args.account}")
            for line in _describe(protection, email):
                _out(line)
            return 0
        if args.action == "stop":  # any account: one with no protection gets the system's
            from gatekeeper.adapters.stops import stop_account

            stopped = await stop_account(
                conn, args.account, reason=args.reason, triggered_by=actor.name, mode=args.mode,
                actor=actor, may_loosen=True, risk=settings.risk,  # the database's owner
                default_stop_mode=settings.admin.default_emergency_stop_mode,
            )  # fmt: skip
            emails = await _emails(conn)
            for protection, _ in stopped:
                for line in _describe(protection, emails.get(protection.user_id, "?")):
                    _out(line)
            return 0
        if args.action == "list":
            return await _list_protections(conn, args.account)
        found = await store.list_protections(conn, None, args.account)
        if not found:
            _out(f"no protection for account {args.account}")
            return 1
        emails = await _emails(conn)
        for protection in found:
            if args.action == "clear" and protection.emergency_stop_active:
                protection = await clear_emergency_stop(
                    conn, protection.id, None, cleared_by=actor.name, actor=actor
                )
            for line in _describe(protection, emails.get(protection.user_id, "?")):
                _out(line)
    return 0


# -- argument definitions ---------------------------------------------------------------------


def _users_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    create = actions.add_parser("create", help="add a user")
    create.add_argument("email")
    create.add_argument("--name", default=None)
    actions.add_parser("list", help="list users")


def _tokens_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    create = actions.add_parser("create", help="issue a token (printed once)")
    create.add_argument("--user", required=True, help="the user's email")
    create.add_argument("--role", required=True, choices=("admin", "operator", "viewer"))
    create.add_argument("--ttl", default=None, help="lifetime, e.g. 24h, 30m, 7d (default 24h)")
    create.add_argument("--label", default=None, help="a note, e.g. which machine uses it")
    revoke = actions.add_parser("revoke", help="revoke a token by id")
    revoke.add_argument("token_id", type=int)
    listing = actions.add_parser("list", help="list tokens (never their values)")
    listing.add_argument("--user", default=None)


def _protections_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    set_ = actions.add_parser("set", help="create or update a user's protection on an account")
    set_.add_argument("account")
    set_.add_argument("--user", default=None, help="owner's email (default: the only user)")
    for flag, field, kind, help_text in _SETTING_FLAGS:
        metavar = "N" if kind is int else "PCT"
        set_.add_argument(
            flag, dest=field, type=kind, default=None, metavar=metavar, help=help_text
        )
    set_.add_argument("--email-alerts", action=argparse.BooleanOptionalAction, default=None)
    set_.add_argument("--active", action=argparse.BooleanOptionalAction, default=None)
    set_.add_argument(
        "--cancel-working-orders",
        dest="cancel_working_orders_on_stop",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="cancel the working orders that are not risk-reducing when a stop becomes active",
    )
    set_.add_argument(
        "--stop-mode",
        choices=("halt", "reduce_only", _UNSET),
        default=None,
        help="what a stop lets through: halt (nothing), reduce_only (verified closes); unset:"
        " automatic (daily-loss) stops reduce_only, manual stops halt",
    )
    set_.add_argument("--by", default=None, help="name recorded in the history (default cli)")
    listing = actions.add_parser("list", help="every protection, one line each")
    listing.add_argument("--account", default=None, help="only this account's")
    show = actions.add_parser("show", help="every protection on an account")
    show.add_argument("account")
    stop = actions.add_parser("stop", help="trigger the emergency stop on an account")
    stop.add_argument("account")
    stop.add_argument("--reason", required=True)
    stop.add_argument("--by", required=True, help="who triggers it")
    stop.add_argument(
        "--mode",
        choices=("halt", "reduce_only"),
        default=None,
        help="this stop's mode (default: the protection's stop mode, else halt)",
    )
    clear = actions.add_parser("clear", help="clear the emergency stop (needs --confirm)")
    clear.add_argument("account")
    clear.add_argument("--by", required=True, help="who clears it")
    clear.add_argument("--confirm", action="store_true", required=True)


ADMIN_COMMANDS: dict[str, tuple[Command, str]] = {
    "users": (cmd_users, "users who own protections: create, list"),
    "tokens": (cmd_tokens, "admin API tokens: create (shown once), list, revoke"),
    "protections": (cmd_protections, "portfolio protections: list, set, show, stop, clear"),
}
ADMIN_ARGUMENTS: dict[str, Callable[[argparse.ArgumentParser], None]] = {
    "users": _users_arguments,
    "tokens": _tokens_arguments,
    "protections": _protections_arguments,
}
