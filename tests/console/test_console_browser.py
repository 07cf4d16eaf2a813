"""The console in a real headless Chromium (Debian's, driven by Playwright): logging in, every
page filled from a real run (with a screenshot each), the STOP button, the clear form's typed
confirmation, CSRF and SameSite refusals, the cookie's flags and what a viewer is shown.

Skipped, with the reason, where no Chromium is installed (see tests/console/conftest.py).
"""

from __future__ import annotations

import contextlib
import re
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from tests.console.conftest import ACCOUNT, CASH_ACCOUNT, Console, real_run
from tests.fixtures.admin import Issued
from tests.fixtures.orders import Bot, order

# Where Playwright is missing, the module is skipped with this reason (the test extra has it).
playwright_api = pytest.importorskip("playwright.async_api", reason="Playwright is not installed")
PlaywrightError: Any = playwright_api.Error

WRONG_TOKEN = "gk_" + "ab" * 32
DASH = "\u2013"  # what the console shows for a figure not known


async def _stopped(pool: asyncpg.Pool, account: str) -> bool:
    found: bool = await pool.fetchval(
        "SELECT bool_or(emergency_stop_triggered_at IS NOT NULL) FROM portfolio_protections"
        " WHERE account_id = $1",
        account,
    )
    return found


async def _logged_in(
    browser: Any, console: Console, token: Issued, refresh_seconds: int | None = None
) -> Any:
    """A new browser page, logged in through the login form, on the accounts page; with
    ``refresh_seconds``, the pages ask for that refresh interval instead of theirs."""
    context = await browser.new_context(viewport={"width": 1400, "height": 900})
    page = await context.new_page()
    if refresh_seconds is not None:

        async def faster(route: Any) -> None:
            try:  # a redirect is the browser's to follow
                answer = await route.fetch(max_redirects=0)
            except PlaywrightError:  # the gatekeeper stopped (the test is over)
                with contextlib.suppress(PlaywrightError):
                    await route.abort()
                return
            body = re.sub(
                r'(name="gk-refresh" content=")\d+', rf"\g<1>{refresh_seconds}", await answer.text()
            )
            await route.fulfill(response=answer, body=body)

        await page.route(console.url, faster)
    await page.goto(console.url)  # sent on to the login page
    assert page.url.endswith("/console/login")
    await page.fill("#token", token.token)
    await page.click("button[type=submit]")
    await page.wait_for_url(console.url)
    if refresh_seconds is not None:  # a redirect's target is not routed: load it again
        await page.goto(console.url)
    return page


async def test_login_refuses_a_bad_token_and_sets_a_strict_httponly_cookie(
    console: Console, screenshots: Path, browser: Any
) -> None:
    context = await browser.new_context(viewport={"width": 1200, "height": 700})
    page = await context.new_page()
    await page.goto(console.path("/console/login"))
    await page.fill("#token", WRONG_TOKEN)
    await page.click("button[type=submit]")
    await page.wait_for_selector(".notice-error")
    assert "unknown API token" in await page.inner_text(".notice-error")
    assert page.url.endswith("/console/login")
    await page.screenshot(path=str(screenshots / "login-refused.png"), full_page=True)
    assert not [c for c in await context.cookies() if c["name"] == "gk_console"]

    await page.fill("#token", console.admin.token)
    await page.click("button[type=submit]")
    await page.wait_for_url(console.url)
    cookie = next(c for c in await context.cookies() if c["name"] == "gk_console")
    assert cookie["httpOnly"] is True
    assert cookie["sameSite"] == "Strict"
    assert cookie["value"] != console.admin.token
    assert await page.evaluate("document.cookie") == ""  # no script can read it
    assert await page.inner_text(".who .user") == "admin@example.com"


async def test_every_page_filled_from_a_real_run(
    console: Console, bot: Bot, screenshots: Path, browser: Any
) -> None:
    run = await real_run(console, bot)
    page = await _logged_in(browser, console, console.admin)

    cards = page.locator("section.card.account")
    assert await cards.count() == 2
    for account in (ACCOUNT, CASH_ACCOUNT):
        card = page.locator(f"#account-{account}")
        assert await card.locator("[data-state=trading]").count() == 1
        assert await card.locator("meter").count() == 5  # every limit's bar
        figures = await card.locator("dl.today").inner_text()
        assert "Start of day" in figures
        assert DASH not in figures
        in_use = await card.locator("dl.in-use").inner_text()
        assert "Cash after" in in_use
        assert DASH not in in_use
        assert await card.locator("button[data-action=stop]").count() == 1
    margin = await page.locator(f"#account-{ACCOUNT} dl.today").inner_text()
    assert "100,000.00" in margin
    assert "2 / 30" in margin  # trades today against the changed limit
    # What is in use comes from the last allowed order (SPY), not the rejected one after it.
    assert "56.00 %" in await page.locator(f"#account-{ACCOUNT} dl.in-use").inner_text()
    await page.screenshot(path=str(screenshots / "accounts.png"), full_page=True)

    await page.click("nav >> text=Decisions today")
    await page.wait_for_url("**/console/decisions")
    rows = page.locator("table.decisions tbody tr")
    assert await rows.count() == 4
    allowed = page.locator(f"tr[data-decision='{run.allowed_ids[0]}']")
    cells = await allowed.locator("td").all_inner_texts()
    assert cells[1:7] == [ACCOUNT, "allow", DASH, "AAPL", "Buy to Open", "10"]
    assert cells[7].startswith("150.00")
    assert "order 1.50 % of NLV" in cells[8]
    assert "exposure 41.50 %" in cells[8]
    assert cells[9] == "accepted"
    rejected = page.locator(f"tr[data-decision='{run.rejected_id}']")
    cells = await rejected.locator("td").all_inner_texts()
    assert cells[1:3] == [ACCOUNT, "reject"]
    assert "max_single_trade" in cells[3]
    assert "cash_reserve" in cells[3]
    assert "order 150.00 % of NLV" in cells[8]
    await page.screenshot(path=str(screenshots / "decisions.png"), full_page=True)

    await page.select_option("select[name=verdict]", "reject")
    await page.click("form.filters button[type=submit]")
    await page.wait_for_url("**/console/decisions?verdict=reject*")
    assert await page.locator("table.decisions tbody tr").count() == 1
    await page.screenshot(path=str(screenshots / "decisions-rejected.png"), full_page=True)

    await rejected.locator("a", has_text="details").click()
    await page.wait_for_url(f"**/console/decisions/{run.rejected_id}")
    violations = await page.locator("table.plain").first.inner_text()
    assert "max_single_trade" in violations
    assert "cash_reserve" in violations
    assert "order_value_pct" in await page.locator("table.figures-table").inner_text()
    await page.screenshot(path=str(screenshots / "decision-detail.png"), full_page=True)

    await page.click("nav >> text=Stops & changes")
    await page.wait_for_url("**/console/history")
    stops = await page.locator("table.stops-history tbody tr").all_inner_texts()
    assert len(stops) == 2
    assert "cleared" in stops[0]
    assert "drill" in stops[1]
    changes = await page.locator("table.changes-history").inner_text()
    assert "max_daily_trades: 20 → 30" in changes
    await page.screenshot(path=str(screenshots / "history.png"), full_page=True)


async def test_stop_button_stops_the_account(
    console: Console, bot: Bot, screenshots: Path, browser: Any
) -> None:
    await real_run(console, bot)
    async with console.admin_api.pool.acquire() as conn:  # the operator owns the protections
        await conn.execute(
            "UPDATE portfolio_protections SET user_id = $1", console.operator.user_id
        )
    page = await _logged_in(browser, console, console.operator)
    card = page.locator(f"#account-{ACCOUNT}")
    await card.locator("input[name=reason]").fill("bot is looping")
    await card.locator("button[data-action=stop]").click()
    await page.wait_for_selector(f"#account-{ACCOUNT} [data-state=stopped]")
    assert f"{ACCOUNT} is stopped." in await page.inner_text(".notice")
    assert "bot is looping" in await page.locator(f"#account-{ACCOUNT} ul.stops").inner_text()
    assert await page.locator(f"#account-{ACCOUNT} form.clear-form").count() == 0  # operator
    await page.screenshot(path=str(screenshots / "accounts-stopped.png"), full_page=True)

    assert await _stopped(console.admin_api.pool, ACCOUNT)
    assert not await _stopped(console.admin_api.pool, CASH_ACCOUNT)
    status = await console.admin_api.call(
        "GET", f"/api/v1/emergency_stops?account_id={ACCOUNT}", console.admin
    )
    assert status.body["emergency_stop_active"] is True
    assert status.body["protections"][0]["emergency_stop_reason"] == "bot is looping"
    refused = await bot.place(order("AAPL", 1, "150.00"))
    assert refused.status == 422
    assert "emergency_stop" in refused.codes


async def test_clear_form_refuses_a_wrong_confirmation_then_clears(
    console: Console, screenshots: Path, browser: Any
) -> None:
    stopped = await console.admin_api.call(
        "POST", "/api/v1/emergency_stops", console.admin,
        {"account_id": CASH_ACCOUNT, "reason": "held for review"},
    )  # fmt: skip
    assert stopped.status == 200
    page = await _logged_in(browser, console, console.admin)
    form = page.locator(f"#account-{CASH_ACCOUNT} form.clear-form")
    await form.locator("input[name=confirm]").fill(ACCOUNT)  # the other account's number
    await page.screenshot(path=str(screenshots / "clear-typing.png"), full_page=True)
    await form.locator("button[data-action=clear]").click()
    await page.wait_for_selector(".notice-error")
    message = await page.inner_text(".notice-error")
    assert f"The stop on {CASH_ACCOUNT} was not cleared" in message
    assert f"type the account number {CASH_ACCOUNT} exactly to confirm" in message
    await page.screenshot(path=str(screenshots / "clear-refused.png"), full_page=True)
    assert await _stopped(console.admin_api.pool, CASH_ACCOUNT)

    form = page.locator(f"#account-{CASH_ACCOUNT} form.clear-form")
    await form.locator("input[name=confirm]").fill(CASH_ACCOUNT)
    await form.locator("button[data-action=clear]").click()
    await page.wait_for_selector(f"#account-{CASH_ACCOUNT} [data-state=trading]")
    assert f"The stop on {CASH_ACCOUNT} is cleared." in await page.inner_text(".notice")
    assert not await _stopped(console.admin_api.pool, CASH_ACCOUNT)


async def test_viewer_sees_no_stop_button_or_clear_form(
    console: Console, screenshots: Path, browser: Any
) -> None:
    await console.admin_api.call(
        "POST", "/api/v1/emergency_stops", console.admin,
        {"account_id": CASH_ACCOUNT, "reason": "held"},
    )  # fmt: skip
    async with console.admin_api.pool.acquire() as conn:
        await conn.execute("UPDATE portfolio_protections SET user_id = $1", console.viewer.user_id)
    page = await _logged_in(browser, console, console.viewer)
    assert await page.locator("section.card.account").count() == 2
    assert await page.locator(f"#account-{CASH_ACCOUNT} [data-state=stopped]").count() == 1
    assert await page.locator("form.stop-form, form.clear-form").count() == 0
    assert await page.locator("button[data-action]").count() == 0
    await page.screenshot(path=str(screenshots / "accounts-viewer.png"), full_page=True)


async def test_forged_posts_are_refused(console: Console, browser: Any) -> None:
    page = await _logged_in(browser, console, console.admin)
    # Same origin, cookie sent, no CSRF token: refused.
    status = await page.evaluate(
        """url => fetch(url, {method: "POST", body: new URLSearchParams({reason: "forged"})})
                  .then(r => r.status)""",
        console.path(f"/console/accounts/{ACCOUNT}/stop"),
    )
    assert status == 403
    # Another site's auto-submitting form: SameSite=Strict keeps the cookie back, so the
    # console sees no session at all.
    attacker = "http://attacker.invalid/"
    form = (
        f'<form method="post" action="{console.path(f"/console/accounts/{ACCOUNT}/stop")}">'
        '<input name="reason" value="forged"></form>'
        "<script>document.forms[0].submit()</script>"
    )
    await page.route(attacker, lambda route: route.fulfill(body=form, content_type="text/html"))
    await page.goto(attacker)
    await page.wait_for_url("**/console/login")
    assert not await _stopped(console.admin_api.pool, ACCOUNT)


async def test_page_refreshes_itself(console: Console, browser: Any) -> None:
    page = await _logged_in(browser, console, console.admin, refresh_seconds=1)
    assert await page.locator(f"#account-{ACCOUNT} [data-state=trading]").count() == 1
    stopped = await console.admin_api.call(
        "POST", "/api/v1/emergency_stops", console.admin,
        {"account_id": ACCOUNT, "reason": "from another terminal"},
    )  # fmt: skip
    assert stopped.status == 200
    # No reload by the test: the page's own refresh loop shows the stop.
    await page.wait_for_selector(f"#account-{ACCOUNT} [data-state=stopped]", timeout=15_000)
    assert "Updated" in await page.inner_text("#refreshed")
