"""The console's routes over plain HTTP (no browser): login, sessions, CSRF, roles, the STOP
and clear forms, and the pages filled from a real run through the proxy to the paper broker."""

from __future__ import annotations

import html
import re
from datetime import timedelta

import aiohttp
import asyncpg
import redis.asyncio as aioredis
from yarl import URL

from gatekeeper.adapters import decisions as db
from gatekeeper.adapters import users
from gatekeeper.console.decision_list import PAGE_SIZE
from gatekeeper.core import trading_day
from tests.console.conftest import (
    ACCOUNT,
    CASH_ACCOUNT,
    Console,
    cookie_jar,
    csrf_of,
    log_in,
    nonce_of,
    real_run,
)
from tests.fixtures.audit import decision_row
from tests.fixtures.orders import Bot

UNKNOWN_TOKEN = "gk_" + "0" * 64


async def _stopped(pool: asyncpg.Pool, account: str) -> bool:
    found: bool = await pool.fetchval(
        "SELECT bool_or(emergency_stop_triggered_at IS NOT NULL) FROM portfolio_protections"
        " WHERE account_id = $1",
        account,
    )
    return found


async def test_pages_send_a_visitor_without_a_session_to_the_login(console: Console) -> None:
    async with aiohttp.ClientSession() as session:
        for path in ("/console/", "/console/decisions", "/console/history"):
            async with session.get(console.path(path), allow_redirects=False) as answer:
                assert answer.status == 303, path
                assert answer.headers["Location"] == "/console/login"
        async with session.post(
            console.path(f"/console/accounts/{ACCOUNT}/stop"), data={"reason": "x"},
            allow_redirects=False,
        ) as answer:  # fmt: skip
            assert answer.status == 303
    assert not await _stopped(console.admin_api.pool, ACCOUNT)


async def test_login_refuses_unknown_malformed_and_revoked_tokens(console: Console) -> None:
    async with console.admin_api.pool.acquire() as conn:
        revoked = await users.create_token(
            conn, await users.find_user(conn, "admin@example.com"), console.admin.role,
            timedelta(hours=1),
        )  # fmt: skip
        await users.revoke_token(conn, revoked[1].id)
    cases = {
        UNKNOWN_TOKEN: "unknown API token",
        "not-a-token": "not an admin token",
        revoked[0]: "revoked",
    }
    for token, expected in cases.items():
        async with aiohttp.ClientSession(cookie_jar=cookie_jar()) as session:
            async with session.get(console.path("/console/login")) as page:
                nonce = nonce_of(await page.text())
            async with session.post(
                console.path("/console/login"), data={"token": token, "login_nonce": nonce}
            ) as answer:
                text = await answer.text()
                assert answer.status == 401, text
                assert expected in text
                assert token not in text  # never echoed
                assert "gk_console=" not in answer.headers.get("Set-Cookie", "")
    metrics = await console.admin_api.session.get(console.path("/metrics"))
    exposition = await metrics.text()
    assert 'gatekeeper_admin_auth_failures_total{reason="token_unknown"} 1.0' in exposition


async def test_login_form_without_its_nonce_is_refused(console: Console) -> None:
    async with (
        aiohttp.ClientSession(cookie_jar=cookie_jar()) as session,
        session.post(console.path("/console/login"), data={"token": console.admin.token}) as answer,
    ):
        assert answer.status == 403
        assert "gk_console=" not in answer.headers.get("Set-Cookie", "")


async def test_session_cookie_is_httponly_samesite_strict_and_not_the_token(
    console: Console, redis_client: aioredis.Redis
) -> None:
    async with aiohttp.ClientSession(cookie_jar=cookie_jar()) as session:
        async with session.get(console.path("/console/login")) as page:
            nonce = nonce_of(await page.text())
        async with session.post(
            console.path("/console/login"),
            data={"token": console.admin.token, "login_nonce": nonce},
            allow_redirects=False,
        ) as answer:
            assert answer.status == 303
            cookies = answer.headers.getall("Set-Cookie")
    session_cookie = next(c for c in cookies if c.startswith("gk_console="))
    flags = [part.strip().lower() for part in session_cookie.split(";")]
    assert "httponly" in flags
    assert "samesite=strict" in flags
    assert "path=/console" in flags
    session_id = session_cookie.split(";")[0].split("=", 1)[1]
    assert console.admin.token not in session_cookie
    keys = [key async for key in redis_client.scan_iter("gatekeeper:console:session:*")]
    assert len(keys) == 1
    assert session_id.encode() not in keys[0]  # stored under its hash
    stored = await redis_client.get(keys[0])
    assert stored is not None
    assert console.admin.token.encode() not in stored
    assert session_id.encode() not in stored


async def test_revoking_the_token_ends_its_console_session(console: Console) -> None:
    async with aiohttp.ClientSession(cookie_jar=cookie_jar()) as session:
        await log_in(session, console, console.operator)
        async with console.admin_api.pool.acquire() as conn:
            await users.revoke_token(conn, console.operator.token_id)
        async with session.get(console.path("/console/"), allow_redirects=False) as answer:
            assert answer.status == 303
            assert answer.headers["Location"] == "/console/login?ended=token"


async def test_post_without_the_csrf_token_is_refused(console: Console) -> None:
    async with aiohttp.ClientSession(cookie_jar=cookie_jar()) as session:
        html = await log_in(session, console, console.admin)
        for data in ({"reason": "no token"}, {"reason": "bad", "csrf_token": "forged"}):
            async with session.post(
                console.path(f"/console/accounts/{ACCOUNT}/stop"), data=data
            ) as answer:
                assert answer.status == 403
                assert "CSRF" in await answer.text()
        assert not await _stopped(console.admin_api.pool, ACCOUNT)
        async with session.post(console.path("/console/logout"), data={}) as answer:
            assert answer.status == 403  # logout is a form too
        async with session.post(
            console.path(f"/console/accounts/{ACCOUNT}/stop"),
            data={"reason": "with the token", "csrf_token": csrf_of(html)},
        ) as answer:
            assert answer.status == 200
        assert await _stopped(console.admin_api.pool, ACCOUNT)


async def test_operator_stops_admin_clears_with_the_typed_account(console: Console) -> None:
    pool = console.admin_api.pool
    async with aiohttp.ClientSession(cookie_jar=cookie_jar()) as operator:
        html = await log_in(operator, console, console.operator)
        assert "STOP" not in html  # the operator owns no protection: no card to stop
        async with operator.post(
            console.path(f"/console/accounts/{ACCOUNT}/stop"),
            data={"reason": "bot looping", "csrf_token": csrf_of(html)},
        ) as answer:
            assert answer.status == 200
            assert f"{ACCOUNT} is stopped." in await answer.text()
        assert await _stopped(pool, ACCOUNT)
        async with operator.post(
            console.path(f"/console/accounts/{ACCOUNT}/clear"),
            data={"confirm": ACCOUNT, "csrf_token": csrf_of(html)},
        ) as answer:
            assert answer.status == 403
            assert "may not clear emergency stop" in await answer.text()
        assert await _stopped(pool, ACCOUNT)
    async with aiohttp.ClientSession(cookie_jar=cookie_jar()) as admin:
        html = await log_in(admin, console, console.admin)
        assert 'action="/console/accounts/5WT00001/clear"' in html
        for wrong in ("5WT0000", CASH_ACCOUNT, ""):
            async with admin.post(
                console.path(f"/console/accounts/{ACCOUNT}/clear"),
                data={"confirm": wrong, "csrf_token": csrf_of(html)},
            ) as answer:
                assert answer.status == 200
                assert f"The stop on {ACCOUNT} was not cleared" in await answer.text()
            assert await _stopped(pool, ACCOUNT)
        async with admin.post(
            console.path(f"/console/accounts/{ACCOUNT}/clear"),
            data={"confirm": ACCOUNT, "csrf_token": csrf_of(html)},
        ) as answer:
            assert f"The stop on {ACCOUNT} is cleared." in await answer.text()
        assert not await _stopped(pool, ACCOUNT)
    events = await pool.fetch(
        "SELECT event, actor, via, reason FROM emergency_events WHERE account_id = $1 ORDER BY id",
        ACCOUNT,
    )
    assert [(e["event"], e["actor"], e["via"]) for e in events] == [
        ("triggered", "operator@example.com", "api"),
        ("cleared", "admin@example.com", "api"),
    ]


async def test_viewer_gets_no_stop_or_clear_and_may_not_post_them(console: Console) -> None:
    await console.admin_api.call(
        "POST", "/api/v1/emergency_stops", console.admin,
        {"account_id": CASH_ACCOUNT, "reason": "held"},
    )  # fmt: skip
    async with console.admin_api.pool.acquire() as conn:  # the viewer sees the admin's
        await conn.execute("UPDATE portfolio_protections SET user_id = $1", console.viewer.user_id)
    async with aiohttp.ClientSession(cookie_jar=cookie_jar()) as session:
        html = await log_in(session, console, console.viewer)
        assert f'id="account-{ACCOUNT}"' in html
        assert f'id="account-{CASH_ACCOUNT}"' in html
        assert "/stop" not in html
        assert "/clear" not in html
        for action, data in (("stop", {"reason": "x"}), ("clear", {"confirm": CASH_ACCOUNT})):
            async with session.post(
                console.path(f"/console/accounts/{CASH_ACCOUNT}/{action}"),
                data={**data, "csrf_token": csrf_of(html)},
            ) as answer:
                assert answer.status == 403
    assert await _stopped(console.admin_api.pool, CASH_ACCOUNT)
    assert not await _stopped(console.admin_api.pool, ACCOUNT)


async def test_pages_show_a_real_run(console: Console, bot: Bot) -> None:
    run = await real_run(console, bot)
    async with aiohttp.ClientSession(cookie_jar=cookie_jar()) as session:
        html = await log_in(session, console, console.admin)
        for account in (ACCOUNT, CASH_ACCOUNT):
            assert f'id="account-{account}"' in html
        assert html.count("<meter") >= 2 * 4  # both cards: every limit known after a trade
        assert "100,000.00" in html  # the margin account's NLV
        async with session.get(console.path("/console/decisions")) as page:
            table = await page.text()
        for decision_id in (*run.allowed_ids, run.rejected_id):
            assert f'data-decision="{decision_id}"' in table
        assert "max_single_trade" in table
        assert "Buy to Open" in table
        assert "SPY" in table
        async with session.get(console.path(f"/console/decisions/{run.rejected_id}")) as page:
            detail = await page.text()
        assert "150,000.00" in detail or "150000.00" in detail
        assert "max_single_trade" in detail
        async with session.get(console.path("/console/history")) as page:
            history = await page.text()
        assert "drill" in history
        assert "cleared" in history
        assert "max_daily_trades: 20 → 30" in history


async def test_decision_filters(console: Console, bot: Bot) -> None:
    run = await real_run(console, bot)
    async with aiohttp.ClientSession(cookie_jar=cookie_jar()) as session:
        await log_in(session, console, console.admin)

        async def rows(query: str) -> set[str]:
            async with session.get(console.path("/console/decisions?" + query)) as page:
                assert page.status == 200, query
                text = await page.text()
            every = {*run.allowed_ids, run.rejected_id}
            return {d for d in every if f'data-decision="{d}"' in text}

        assert await rows("verdict=reject") == {run.rejected_id}
        assert await rows("code=max_single_trade") == {run.rejected_id}
        assert await rows("verdict=allow") == set(run.allowed_ids)
        assert await rows(f"account={CASH_ACCOUNT}") == {run.allowed_ids[-1]}
        assert await rows(f"account={ACCOUNT}&verdict=allow") == set(run.allowed_ids[:2])
        async with session.get(console.path("/console/decisions?verdict=maybe")) as page:
            assert page.status == 400
        async with session.get(console.path("/console/decisions/not-a-uuid")) as page:
            assert page.status == 404


async def test_non_admin_sees_only_their_accounts(console: Console, bot: Bot) -> None:
    run = await real_run(console, bot)
    async with aiohttp.ClientSession(cookie_jar=cookie_jar()) as session:
        html = await log_in(session, console, console.operator)
        assert "account-5WT0000" not in html  # the operator owns no protection
        async with session.get(console.path(f"/console/decisions/{run.rejected_id}")) as page:
            assert page.status == 404
        async with session.get(console.path("/console/decisions")) as page:
            assert run.rejected_id not in await page.text()


async def test_logout_ends_the_session(console: Console) -> None:
    async with aiohttp.ClientSession(cookie_jar=cookie_jar()) as session:
        html = await log_in(session, console, console.admin)
        cookie = session.cookie_jar.filter_cookies(URL(console.path("/console/")))[
            "gk_console"
        ].value
        async with session.post(
            console.path("/console/logout"), data={"csrf_token": csrf_of(html)}
        ) as answer:
            assert answer.url.path == "/console/login"
            assert "You are logged out." in await answer.text()
    async with (
        aiohttp.ClientSession(cookies={"gk_console": cookie}) as replay,
        replay.get(console.path("/console/"), allow_redirects=False) as answer,
    ):
        assert answer.status == 303  # the old cookie is worth nothing


async def test_values_are_escaped_and_pages_carry_security_headers(console: Console) -> None:
    await console.admin_api.call(
        "POST", "/api/v1/emergency_stops", console.admin,
        {"account_id": ACCOUNT, "reason": "<script>alert(1)</script>"},
    )  # fmt: skip
    async with aiohttp.ClientSession(cookie_jar=cookie_jar()) as session:
        await log_in(session, console, console.admin)
        async with session.get(console.path("/console/")) as page:
            html = await page.text()
            csp = page.headers["Content-Security-Policy"]
            assert page.headers["X-Frame-Options"] == "DENY"
            assert page.headers["Cache-Control"] == "no-store"
        assert "<script>alert(1)</script>" not in html
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
        assert "script-src 'self'" in csp
        assert "frame-ancestors 'none'" in csp
        for name, kind in (("console.css", "text/css"), ("console.js", "text/javascript")):
            async with session.get(console.path(f"/console/static/{name}")) as asset:
                assert asset.status == 200
                assert asset.content_type == kind
        async with session.get(console.path("/console/static/../admin.py")) as asset:
            assert asset.status == 404


async def test_decisions_page_pages_through_older_rows(console: Console) -> None:
    async with console.admin_api.pool.acquire() as conn:
        day = trading_day(await db.database_now(conn))
        for _ in range(PAGE_SIZE + 5):
            async with conn.transaction():
                await db.insert_decision(conn, decision_row(ACCOUNT, trading_day=day))
    async with aiohttp.ClientSession(cookie_jar=cookie_jar()) as session:
        await log_in(session, console, console.admin)
        async with session.get(console.path("/console/decisions?verdict=allow")) as page:
            first = await page.text()
        assert first.count("data-decision=") == PAGE_SIZE
        older = re.search(r'href="(/console/decisions\?[^"]+)" rel="next"', first)
        assert older is not None
        link = html.unescape(older.group(1))
        assert "verdict=allow" in link  # the filters are kept
        async with session.get(console.path(link)) as page:
            second = await page.text()
        assert second.count("data-decision=") == 5
        assert 'rel="next"' not in second
        seen = set(re.findall(r'data-decision="([^"]+)"', first + second))
        assert len(seen) == PAGE_SIZE + 5
