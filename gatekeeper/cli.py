"""The ``gatekeeper`` command: serve, migrate, paper, demo, and the operators' tools."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any

from gatekeeper.cli_admin import ADMIN_ARGUMENTS, ADMIN_COMMANDS
from gatekeeper.cli_audit import AUDIT_ARGUMENTS, AUDIT_COMMANDS
from gatekeeper.cli_check import CHECK_ARGUMENTS, CHECK_COMMANDS
from gatekeeper.cli_check_setup import CHECK_SETUP_ARGUMENTS, CHECK_SETUP_COMMANDS
from gatekeeper.cli_decisions import DECISIONS_ARGUMENTS, DECISIONS_COMMANDS
from gatekeeper.cli_demo_env import use_demo_env
from gatekeeper.cli_errors import explain
from gatekeeper.cli_migrate import MIGRATE_ARGUMENTS, MIGRATE_COMMANDS
from gatekeeper.cli_stop import STOP_ARGUMENTS, STOP_COMMANDS
from gatekeeper.errors import GatekeeperError
from gatekeeper.logsetup import configure_logging
from gatekeeper.settings import Settings, SettingsError, load_settings

Command = Callable[[Settings, argparse.Namespace], Coroutine[Any, Any, int]]


def _loop_factory(event_loop: str) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's loop when asked for and installed, else Python's (None)."""
    if event_loop != "uvloop":
        return None
    try:
        import uvloop
    except ImportError:  # a platform without its wheels: Python's loop does the same work
        return None
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory


def _run_until_signalled(main: Coroutine[Any, Any, int], event_loop: str = "asyncio") -> int:
    """Run ``main`` on ``event_loop`` (proxy.event_loop); SIGINT/SIGTERM cancel it cleanly
    (listeners closed, children stopped)."""

    async def runner() -> int:
        task = asyncio.ensure_future(main)
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, task.cancel)
        try:
            return await task
        except asyncio.CancelledError:
            return 0

    with asyncio.Runner(loop_factory=_loop_factory(event_loop)) as loop_runner:
        return loop_runner.run(runner())


async def _forever() -> None:
    await asyncio.Event().wait()


async def cmd_serve(settings: Settings, args: argparse.Namespace) -> int:
    from gatekeeper.cli_serve import cmd_serve as serve_checked

    return await serve_checked(settings, args)  # backends looked at first (cli_serve)


async def cmd_paper(settings: Settings, args: argparse.Namespace) -> int:
    from gatekeeper.paper import serve_paper

    paper = settings.paper
    token = paper.control_token.get_secret_value() if paper.control_token is not None else None
    await serve_paper(paper.host, paper.port, paper.accounts_file, token)
    return 0


async def cmd_demo(settings: Settings, args: argparse.Namespace) -> int:
    from gatekeeper.demo import run_demo, with_local_tls

    if getattr(args, "tls", False):
        settings = with_local_tls(settings)
    await run_demo(settings, out=sys.stdout)
    return 0


COMMANDS: dict[str, tuple[Command, str]] = {
    "serve": (cmd_serve, "run the proxy and admin listeners (needs DATABASE_URL and REDIS_URL)"),
    "paper": (cmd_paper, "run the paper broker (TastyTrade's API, in memory)"),
    "demo": (
        cmd_demo,
        "everything on one machine: Postgres and Redis (from wheels unless configured),"
        " the paper broker, and the gatekeeper in front of it",
    ),
}
COMMANDS.update(ADMIN_COMMANDS)
COMMANDS.update(CHECK_COMMANDS)
COMMANDS.update(STOP_COMMANDS)
COMMANDS.update(CHECK_SETUP_COMMANDS)
COMMANDS.update(AUDIT_COMMANDS)
COMMANDS.update(MIGRATE_COMMANDS)
COMMANDS.update(DECISIONS_COMMANDS)


def _demo_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--tls",
        action="store_true",
        help="serve the bots' listener over HTTPS with a certificate from a local certificate"
        " authority (made once in the demo's data directory; the banner says how to trust it)",
    )


# Commands with arguments of their own: name -> a function that adds them to its parser.
ARGUMENTS: dict[str, Callable[[argparse.ArgumentParser], None]] = {
    "demo": _demo_arguments,
    **ADMIN_ARGUMENTS,
    **CHECK_ARGUMENTS,
    **STOP_ARGUMENTS,
    **CHECK_SETUP_ARGUMENTS,
    **AUDIT_ARGUMENTS,
    **MIGRATE_ARGUMENTS,
    **DECISIONS_ARGUMENTS,
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gatekeeper", description="Pre-trade risk gatekeeper for TastyTrade."
    )
    parser.add_argument(
        "--config",
        type=Path,
        default=None,
        help="TOML config file (default: config/gatekeeper.toml)",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (_, help_text) in COMMANDS.items():
        command = commands.add_parser(name, help=help_text, description=help_text)
        if name in ARGUMENTS:
            ARGUMENTS[name](command)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command != "demo":  # a second terminal next to `gatekeeper demo` finds it
        use_demo_env()
    try:
        settings = load_settings(args.config)
    except SettingsError as error:
        print(error, file=sys.stderr)
        return 2
    configure_logging(settings.log_level, settings.log_format)
    command, _ = COMMANDS[args.command]
    try:
        return _run_until_signalled(command(settings, args), settings.proxy.event_loop)
    except GatekeeperError as error:
        # e.g. a migration that failed for want of a privilege: say what to do about it
        cause = error.__cause__
        hint = explain(cause, settings) if cause is not None else None
        print(f"error: {hint or error.message}", file=sys.stderr)
        return 1
    except BrokenPipeError:  # `gatekeeper decisions … | head`: the reader has had enough
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except Exception as error:
        line = explain(error, settings)  # a busy port, a refused role, no schema: one line
        if line is None:
            raise
        print(f"error: {line}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
