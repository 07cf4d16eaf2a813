"""Running the paper broker: a context manager for tests and ``serve_paper`` for the CLI."""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from aiohttp import web

from gatekeeper.paper.app import create_paper_app
from gatekeeper.paper.book import PaperBook
from gatekeeper.paper.seed import load_book

logger = logging.getLogger(__name__)


def new_control_token() -> str:
    """A fresh token for the ``/__paper/`` control routes."""
    return secrets.token_urlsafe(32)


@asynccontextmanager
async def running_paper(
    book: PaperBook,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    control_token: str | None = None,
    shutdown_timeout: float = 1.0,
) -> AsyncIterator[str]:
    """Serve ``book`` on host:port (0 = a free port) and yield the base URL.

    The ``/__paper/`` control routes need ``control_token``; without one, a random token
    nobody knows is used, so they are closed.

    A request whose client gives up (e.g. on an injected delay) is cancelled; on exit, requests
    still in flight get ``shutdown_timeout`` seconds before their connections are closed.
    """
    runner = web.AppRunner(
        create_paper_app(book, control_token=control_token or new_control_token()),
        access_log=None,
        shutdown_timeout=shutdown_timeout,
        handler_cancellation=True,
    )
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
        bound_host, bound_port = runner.addresses[0][:2]
        shown = f"[{bound_host}]" if ":" in str(bound_host) else bound_host
        yield f"http://{shown}:{bound_port}"
    finally:
        await runner.cleanup()


async def serve_paper(
    host: str, port: int, accounts_file: Path, control_token: str | None = None
) -> None:
    """Run the paper broker until cancelled (``gatekeeper paper``). Without a configured
    ``control_token`` one is generated and printed (never logged)."""
    book = load_book(accounts_file)
    token = control_token or new_control_token()
    async with running_paper(book, host, port, control_token=token) as url:
        logger.info("paper broker listening on %s (accounts from %s)", url, accounts_file)
        print(f"Paper broker listening on {url} (accounts from {accounts_file})", flush=True)
        if control_token is None:
            print(f"Control routes (/__paper/...): X-Paper-Control-Token: {token}", flush=True)
        await asyncio.Event().wait()
