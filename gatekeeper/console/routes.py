"""The console's routes on the admin listener (``/console/``): log in with an admin token,
then pages for the accounts, today's decisions and the stop and change history, and the two
forms that STOP an account and clear its stop. Handlers are thin: check, call the modules
that read or write, render."""

from __future__ import annotations

import logging
from importlib import resources
from typing import Any

from aiohttp import web

from gatekeeper.adapters.users import authenticate
from gatekeeper.auth import Permission, TokenMalformed, looks_like_token
from gatekeeper.console import actions
from gatekeeper.console.access import HOME, LOGIN, Visit, console_page, error_page
from gatekeeper.console.decision_list import (
    PAGE_SIZE,
    VERDICTS,
    Filters,
    one_decision,
    todays_decisions,
)
from gatekeeper.console.history import stop_and_change_history
from gatekeeper.console.overview import overview, visible_accounts
from gatekeeper.console.render import (
    TEMPLATES,
    compile_templates,
    create_environment,
    page,
    redirect,
)
from gatekeeper.console.sessions import (
    COOKIE,
    COOKIE_PATH,
    LOGIN_COOKIE,
    SESSION_SECONDS,
    SessionStore,
    new_secret,
    same_secret,
)
from gatekeeper.core.codes import Code
from gatekeeper.core.summary import summary_text
from gatekeeper.errors import GatekeeperError, Unauthorized
from gatekeeper.web import keys

log = logging.getLogger(__name__)

# Pages ask the browser to fetch them again this often (console.js; a meta refresh without JS).
REFRESH_SECONDS = 10
_ENDED = {
    "logout": "You are logged out.",
    "token": "Your token was revoked or has expired: log in with a valid one.",
}
_STATIC = {"console.css": "text/css", "console.js": "text/javascript"}
_STATIC_FILES = web.AppKey("console_static", dict[str, bytes])


def _set_cookie(
    request: web.Request, response: web.Response, name: str, value: str, max_age: int
) -> None:
    """HttpOnly (no script reads it), SameSite=Strict (no other site's page sends it), and
    Secure whenever the browser reached us over TLS (the admin listener is plain HTTP on
    127.0.0.1 by default, where a Secure cookie would never come back)."""
    response.set_cookie(
        name, value, path=COOKIE_PATH, max_age=max_age, httponly=True, samesite="Strict",
        secure=request.secure,
    )  # fmt: skip


def _login_page(request: web.Request, status: int = 200, error: str | None = None) -> web.Response:
    nonce = new_secret()
    notice = _ENDED.get(request.query.get("ended", ""))
    response = page(request, "login.html", status, nonce=nonce, error=error, notice=notice,
                    visit=None)  # fmt: skip
    _set_cookie(request, response, LOGIN_COOKIE, nonce, 3600)
    return response


async def login_form(request: web.Request) -> web.StreamResponse:
    return _login_page(request)


async def login(request: web.Request) -> web.StreamResponse:
    """Exchange an admin token for a session cookie. The token is checked exactly as the
    admin API checks it (and recorded as used); it is kept nowhere."""
    form = await request.post()
    nonce = form.get("login_nonce")
    if not same_secret(
        request.cookies.get(LOGIN_COOKIE, ""), nonce if isinstance(nonce, str) else None
    ):
        return error_page(request, 403, "Not allowed", "The login form expired or was not"
                          " sent from this console: reload the login page.")  # fmt: skip
    token = form.get("token")
    token = token.strip() if isinstance(token, str) else ""
    try:
        if not looks_like_token(token):
            raise TokenMalformed("that is not an admin token: expected gk_ and 64 hex digits"
                                 " (from `gatekeeper tokens create`)")  # fmt: skip
        async with request.app[keys.PG_POOL].acquire(timeout=5.0) as conn:
            principal = await authenticate(conn, token)
        sessions = SessionStore(request.app[keys.REDIS])
        previous = request.cookies.get(COOKIE)
        if previous:  # a new login never keeps an old session id alive
            await sessions.end(previous)
        session_id, _ = await sessions.create(principal)
    except Unauthorized as error:
        request.app[keys.METRICS].admin_auth_failures.labels(reason=error.code).inc()
        return _login_page(request, 401, error.message)
    except GatekeeperError as error:
        return _login_page(request, error.status, error.message)
    log.info("console login: user %s (token %s, %s)", principal.email, principal.token_id,
             principal.role.value)  # fmt: skip
    response = redirect(HOME)
    _set_cookie(request, response, COOKIE, session_id, SESSION_SECONDS)
    response.del_cookie(LOGIN_COOKIE, path=COOKIE_PATH)
    return response


async def logout(visit: Visit) -> web.StreamResponse:
    await visit.sessions.end(visit.session_id)
    response = redirect(LOGIN + "?ended=logout")
    response.del_cookie(COOKIE, path=COOKIE_PATH)
    return response


def _common(visit: Visit, active: str, refresh: int = REFRESH_SECONDS) -> dict[str, Any]:
    principal = visit.principal
    return {
        "visit": visit.session,
        "active": active,
        "refresh": refresh,
        "can_stop": principal.can(Permission.STOP),
        "can_clear": principal.can(Permission.CLEAR),
    }


async def accounts_page(visit: Visit) -> web.StreamResponse:
    found = await overview(visit.conn, visit.principal)
    return page(visit.request, "accounts.html", overview=found, **_common(visit, "accounts"))


async def decisions_page(visit: Visit) -> web.StreamResponse:
    filters = Filters.of(visit.request.query)
    visible = await visible_accounts(visit.conn, visit.principal)
    rows = await todays_decisions(visit.conn, visit.principal, filters, visible)
    return page(
        visit.request, "decisions.html", rows=rows, filters=filters, verdicts=VERDICTS,
        codes=[code.value for code in Code], accounts=visible, summary_text=summary_text,
        older=filters.query(rows[-1].id) if len(rows) >= PAGE_SIZE else None,
        **_common(visit, "decisions"),
    )  # fmt: skip


async def decision_page(visit: Visit) -> web.StreamResponse:
    visible = await visible_accounts(visit.conn, visit.principal)
    found = await one_decision(
        visit.conn, visit.principal, visit.request.match_info["decision_id"], visible
    )
    return page(visit.request, "decision.html", d=found, summary_text=summary_text,
                **_common(visit, "decisions", refresh=0))  # fmt: skip


async def history_page(visit: Visit) -> web.StreamResponse:
    stop_events, changes = await stop_and_change_history(visit.conn, visit.principal)
    return page(visit.request, "history.html", stop_events=stop_events, changes=changes,
                **_common(visit, "history"))  # fmt: skip


def _field(form: object, name: str) -> str:
    value = form.get(name) if hasattr(form, "get") else None
    return value.strip() if isinstance(value, str) else ""


async def stop_form(visit: Visit) -> web.StreamResponse:
    account = visit.request.match_info["account"]
    form = await visit.request.post()
    try:
        changed = await actions.stop_account(
            visit.request.app, visit.conn, visit.principal, account,
            _field(form, "reason"), _field(form, "mode") or None,
        )  # fmt: skip
    except GatekeeperError as error:
        await visit.tell(f"{account} was not stopped: {error.message}", "error")
    else:
        await visit.tell(f"{account} is stopped." if changed else f"{account} was stopped already.")
    return redirect(f"{HOME}#account-{account}")


async def clear_form(visit: Visit) -> web.StreamResponse:
    account = visit.request.match_info["account"]
    form = await visit.request.post()
    try:
        await actions.clear_account(visit.conn, visit.principal, account, _field(form, "confirm"))
    except GatekeeperError as error:
        await visit.tell(f"The stop on {account} was not cleared: {error.message}", "error")
    else:
        await visit.tell(f"The stop on {account} is cleared.")
    return redirect(f"{HOME}#account-{account}")


async def static_file(request: web.Request) -> web.StreamResponse:
    name = request.match_info["name"]
    body = request.app[_STATIC_FILES].get(name)
    if body is None:
        raise web.HTTPNotFound()
    headers = {"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"}
    return web.Response(body=body, content_type=_STATIC[name], headers=headers)


async def to_home(request: web.Request) -> web.StreamResponse:
    return redirect(HOME)


_ACCOUNT = r"/console/accounts/{account:[A-Za-z0-9][A-Za-z0-9_-]{0,63}}"
READ, STOP, CLEAR = Permission.READ, Permission.STOP, Permission.CLEAR


def add_console(app: web.Application) -> None:
    """Serve the console on ``app`` (the admin listener, which holds PG_POOL and REDIS)."""
    app[TEMPLATES] = create_environment()
    app.on_startup.append(compile_templates)
    static = resources.files("gatekeeper.console") / "static"
    app[_STATIC_FILES] = {name: (static / name).read_bytes() for name in _STATIC}
    router = app.router
    router.add_get("/console", to_home)
    router.add_get("/console/", console_page(READ, accounts_page))
    router.add_get(LOGIN, login_form)
    router.add_post(LOGIN, login)
    router.add_post("/console/logout", console_page(READ, logout))
    router.add_get("/console/decisions", console_page(READ, decisions_page))
    router.add_get("/console/decisions/{decision_id}", console_page(READ, decision_page))
    router.add_get("/console/history", console_page(READ, history_page))
    router.add_post(_ACCOUNT + "/stop", console_page(STOP, stop_form))
    router.add_post(_ACCOUNT + "/clear", console_page(CLEAR, clear_form))
    router.add_get("/console/static/{name}", static_file)
