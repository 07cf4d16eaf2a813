"""The console's fixtures: the gatekeeper in front of the paper broker with a real run behind
it (protections, orders through the proxy, a stop and a clear, a protection change), tokens of
each role, a cookie-keeping HTTP client, and a headless Chromium driven by Playwright.

The browser is Debian's ``chromium`` (``/usr/bin/chromium``, or ``GK_CHROMIUM``); Playwright's
own browser download is never used. Where there is no browser (or no Playwright), the browser
tests are skipped with the reason. Screenshots go to ``test-artifacts/console/`` in the
repository (git ignores it; ``GK_CONSOLE_SCREENSHOTS`` names another directory); the terminal
summary prints where.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest

from gatekeeper.auth import Role
from tests.fixtures.admin import AdminApi, Issued
from tests.fixtures.gate import Gate
from tests.fixtures.orders import Bot, order

# Imported here, at collection: its first import takes long enough to trip the event-loop
# watchdog if done inside a test.
try:
    from playwright.async_api import async_playwright
except ImportError:  # pragma: no cover - the test extra installs it
    async_playwright = None  # type: ignore[assignment]

ACCOUNT = "5WT00001"  # the paper seed's margin account
CASH_ACCOUNT = "5WT00002"  # the same user's cash account
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# Not under pytest's basetemp: pytest keeps only its last three, and other runs on the same
# machine (same user) rotate them away. Git ignores test-artifacts/.
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "console"
_screenshot_dir: list[Path] = []


@dataclass
class Console:
    """The running gatekeeper, its console's URL, the admin API and tokens of each role."""

    url: str  # .../console/
    admin_api: AdminApi
    admin: Issued
    operator: Issued
    viewer: Issued
    protection_ids: dict[str, int]

    def path(self, path: str) -> str:
        return self.url.rstrip("/").removesuffix("/console") + path


@pytest.fixture
async def console(
    gatekeeper: Gate, pg_pool: asyncpg.Pool, database_url: str
) -> AsyncIterator[Console]:
    """The gatekeeper in front of the paper broker, with protections on both of the seed
    user's accounts (owned by the admin) and tokens of each role."""
    async with aiohttp.ClientSession() as session:
        api = AdminApi(gatekeeper.admin_url, gatekeeper, pg_pool, session, database_url)
        admin = await api.issue("admin@example.com", Role.ADMIN)
        operator = await api.issue("operator@example.com", Role.OPERATOR)
        viewer = await api.issue("viewer@example.com", Role.VIEWER)
        ids = {}
        for account in (ACCOUNT, CASH_ACCOUNT):
            created = await api.call(
                "POST", "/api/v1/portfolio_protections", admin,
                {"portfolio_protection": {
                    "account_id": account, "cash_reserve_percentage": "25",
                    "max_daily_loss_percentage": "5", "max_single_trade_percentage": "10",
                    "max_portfolio_exposure_percentage": "75", "max_daily_trades": 20,
                    "max_position_concentration_percentage": "40",
                }},
            )  # fmt: skip
            assert created.status == 201, created.body
            ids[account] = created.body["portfolio_protection"]["id"]
        yield Console(gatekeeper.admin_url + "/console/", api, admin, operator, viewer, ids)


@dataclass(frozen=True)
class RealRun:
    """What the run did, for the tests to find on the pages."""

    allowed_ids: list[str]
    rejected_id: str


async def real_run(console: Console, bot: Bot) -> RealRun:
    """Orders through the proxy to the paper broker on both accounts (allowed and rejected),
    a protection change, and a stop triggered and cleared: every card and table has rows."""
    allowed = []
    for body in (order("AAPL", 10, "150.00"), order("SPY", 5, "500.00")):
        answer = await bot.place(body)
        assert answer.status == 201, answer.body
        allowed.append(answer.headers["X-Gatekeeper-Decision-Id"])
    rejected = await bot.place(order("AAPL", 1000, "150.00"))
    assert rejected.status == 422, rejected.body
    cash_bot = Bot(bot.base_url, bot.auth, bot.session, CASH_ACCOUNT)
    answer = await cash_bot.place(order("AAPL", 20, "150.00"))
    assert answer.status == 201, answer.body
    allowed.append(answer.headers["X-Gatekeeper-Decision-Id"])
    api, admin = console.admin_api, console.admin
    changed = await api.call(
        "PATCH", f"/api/v1/portfolio_protections/{console.protection_ids[ACCOUNT]}", admin,
        {"portfolio_protection": {"max_daily_trades": 30}},
    )  # fmt: skip
    assert changed.status == 200, changed.body
    stopped = await api.call(
        "POST", "/api/v1/emergency_stops", admin, {"account_id": CASH_ACCOUNT, "reason": "drill"}
    )
    assert stopped.status == 200, stopped.body
    cleared = await api.call(
        "DELETE", "/api/v1/emergency_stops", admin,
        {"account_id": CASH_ACCOUNT, "confirm": CASH_ACCOUNT},
    )  # fmt: skip
    assert cleared.status == 200, cleared.body
    return RealRun(allowed, rejected.headers["X-Gatekeeper-Decision-Id"])


def cookie_jar() -> aiohttp.CookieJar:
    # unsafe: the listener is on an IP address (127.0.0.1), whose cookies aiohttp's default
    # jar would drop.
    return aiohttp.CookieJar(unsafe=True)


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found is not None, "no CSRF token on the page"
    return found.group(1)


def nonce_of(html: str) -> str:
    found = re.search(r'name="login_nonce" value="([^"]+)"', html)
    assert found is not None, "no login nonce on the page"
    return found.group(1)


async def log_in(session: aiohttp.ClientSession, console: Console, token: Issued | str) -> str:
    """Log ``session`` in through the login form; the accounts page's HTML."""
    async with session.get(console.path("/console/login")) as page:
        nonce = nonce_of(await page.text())
    secret = token.token if isinstance(token, Issued) else token
    async with session.post(
        console.path("/console/login"), data={"token": secret, "login_nonce": nonce}
    ) as answer:
        assert answer.status == 200, await answer.text()
        assert answer.url.path == "/console/", answer.url
        return await answer.text()


# -- the browser ------------------------------------------------------------------------------


def chromium_path() -> str | None:
    wanted = os.environ.get("GK_CHROMIUM", "/usr/bin/chromium")
    return wanted if Path(wanted).is_file() else shutil.which("chromium")


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    """A headless Chromium (the system's) under Playwright; skipped where there is none."""
    executable = chromium_path()
    if executable is None:
        pytest.skip("no Chromium: install Debian's chromium package (or set GK_CHROMIUM)")
    if async_playwright is None:
        pytest.skip("Playwright for Python is not installed (the test extra has it)")
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=executable, args=CHROMIUM_ARGS, headless=True
        )
        try:
            yield launched
        finally:
            await launched.close()


@pytest.fixture
def screenshots() -> Path:
    """Where the console's screenshots go (kept after the run, listed in the summary)."""
    chosen = os.environ.get("GK_CONSOLE_SCREENSHOTS")
    where = Path(chosen) if chosen else ARTIFACTS
    where.mkdir(parents=True, exist_ok=True)
    if not _screenshot_dir:
        _screenshot_dir.append(where)
    return where


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if _screenshot_dir:
        terminalreporter.write_line(f"console screenshots: {_screenshot_dir[0]}")
