"""``gatekeeper check-order``: the proxy's risk engine on one order, without forwarding.

    gatekeeper check-order 5WT00001 '{"symbol": "AAPL", "quantity": 100,
        "order_type": "limit", "action": "buy-to-open", "price": 150}' \\
        --broker-authorization "Bearer <a bot's token>"

Prints the verdict as JSON (violations with codes, messages and inputs; figures). Exit status:
0 allowed, 1 rejected, 2 could not decide (bad order, backend or account state unavailable).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Coroutine
from typing import Any

import aiohttp

from gatekeeper.adapters.account_state import StateSource
from gatekeeper.adapters.day_start import DayStartSource
from gatekeeper.adapters.instruments import InstrumentSource
from gatekeeper.checks import check_order, verdict_payload
from gatekeeper.errors import GatekeeperError
from gatekeeper.metrics import Metrics
from gatekeeper.orderpath.engine import Engine
from gatekeeper.settings import Settings

Command = Callable[[Settings, argparse.Namespace], Coroutine[Any, Any, int]]


def _arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("account", help="account number, e.g. 5WT00001")
    parser.add_argument(
        "order",
        help="the order as JSON: the seed's simple form or TastyTrade's dasherized form",
    )
    parser.add_argument(
        "--broker-authorization",
        default=None,
        help="the Authorization value a bot of this account uses with the broker (needed"
        " unless the account's state is cached)",
    )


async def cmd_check_order(settings: Settings, args: argparse.Namespace) -> int:
    from gatekeeper.web.server import open_backends

    try:
        order = json.loads(args.order)
    except ValueError:
        print("error: the order is not valid JSON", file=sys.stderr)
        return 2
    if not isinstance(order, dict):
        print("error: the order must be a JSON object", file=sys.stderr)
        return 2
    async with open_backends(settings) as backends, aiohttp.ClientSession() as session:
        metrics = Metrics.create()
        state = StateSource(session, backends.redis, settings, metrics)
        instruments = InstrumentSource(session, backends.redis, settings, metrics)
        day_start = DayStartSource(session, backends.redis, backends.pool, settings, metrics)
        engine = Engine(backends.pool, state, settings, instruments, day_start)
        try:
            result = await check_order(
                engine, args.account, order, args.broker_authorization, route_kind="check_order"
            )
        except GatekeeperError as error:
            print(json.dumps({"error": {"code": error.code, "message": error.message}}))
            return 2
        finally:
            await state.aclose()
    print(json.dumps(verdict_payload(result), indent=2))
    return 0 if result.decision.allowed else 1


CHECK_COMMANDS: dict[str, tuple[Command, str]] = {
    "check-order": (cmd_check_order, "run the risk engine on an order without forwarding it"),
}
CHECK_ARGUMENTS: dict[str, Callable[[argparse.ArgumentParser], None]] = {
    "check-order": _arguments,
}
