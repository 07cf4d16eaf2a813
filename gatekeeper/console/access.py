"""Who may see a console page: the session cookie, the token behind it still active, the
role, and on every POST the session's CSRF token.

A page handler receives a :class:`Visit`; errors become HTML pages (never the admin API's
JSON), and nothing here logs the cookie, the CSRF token or a form's fields.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web
from redis.exceptions import RedisError

from gatekeeper.adapters import users
from gatekeeper.adapters.pg import DB_DOWN, Conn
from gatekeeper.auth import Permission, Principal
from gatekeeper.console.render import page, redirect
from gatekeeper.console.sessions import COOKIE, Session, SessionStore, same_secret
from gatekeeper.errors import Forbidden, GatekeeperError, Unauthorized
from gatekeeper.web import keys

log = logging.getLogger(__name__)

ACQUIRE_TIMEOUT = 5.0
LOGIN = "/console/login"
HOME = "/console/"


class CsrfRefused(Forbidden):
    code = "csrf_token_invalid"


@dataclass(frozen=True)
class Visit:
    """One authorised console request: who, their session, and a database connection."""

    request: web.Request
    principal: Principal
    session: Session
    session_id: str
    conn: Conn
    sessions: SessionStore

    async def tell(self, notice: str, kind: str = "info") -> None:
        """Show ``notice`` on the next page (after the redirect that answers a form)."""
        await self.sessions.tell(self.session_id, self.session, notice, kind)


PageHandler = Callable[[Visit], Awaitable[web.StreamResponse]]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def error_page(request: web.Request, status: int, title: str, message: str) -> web.Response:
    return page(request, "error.html", status, title=title, message=message, visit=None)


async def token_active(conn: Conn, session: Session) -> bool:
    """The session's token is neither revoked nor expired (nor gone)."""
    for issued in await users.list_tokens(conn, session.email):
        if issued.id == session.token_id:  # the token's row id, not the token
            return issued.state == "active" and issued.role.value == session.role
    return False


async def _csrf_checked(request: web.Request, session: Session) -> None:
    if request.method == "POST":
        form = await request.post()  # aiohttp keeps it: the handler reads the same form
        presented = form.get("csrf_token")
        if not same_secret(session.csrf, presented if isinstance(presented, str) else None):
            raise CsrfRefused("the form's CSRF token is missing or wrong: reload the page")


def console_page(permission: Permission, handler: PageHandler) -> Handler:
    """``handler`` behind the session, the token check, the role and (POST) the CSRF check."""

    async def visit(request: web.Request) -> web.StreamResponse:
        metrics = request.app[keys.METRICS]
        sessions = SessionStore(request.app[keys.REDIS])
        session_id = request.cookies.get(COOKIE, "")
        try:
            session = await sessions.load(session_id)
            if session is None:
                return redirect(LOGIN)
            async with request.app[keys.PG_POOL].acquire(timeout=ACQUIRE_TIMEOUT) as conn:
                if not await token_active(conn, session):
                    await sessions.end(session_id)
                    return redirect(LOGIN + "?ended=token")
                await _csrf_checked(request, session)
                principal = session.principal
                principal.require(permission)
                shown = await sessions.take_notice(session_id, session)
                return await handler(Visit(request, principal, shown, session_id, conn, sessions))
        except (Unauthorized, Forbidden) as error:
            metrics.admin_auth_failures.labels(reason=error.code).inc()
            return error_page(request, error.status, "Not allowed", error.message)
        except GatekeeperError as error:
            return error_page(request, error.status, "Refused", error.message)
        except RedisError as error:
            log.warning("console: Redis unavailable (%s)", type(error).__name__)
            return error_page(request, 503, "Unavailable", "The session store (Redis) is"
                              " unavailable; try again.")  # fmt: skip
        except DB_DOWN as error:
            log.warning("console: database unavailable (%s)", type(error).__name__)
            return error_page(request, 503, "Unavailable", "The database is unavailable;"
                              " try again.")  # fmt: skip

    return visit
