"""Console sessions, kept in Redis so that every replica behind a load balancer knows them.

The browser holds only an opaque random session id (cookie ``gk_console``: HttpOnly,
SameSite=Strict, path ``/console``); the admin token it logged in with is never stored,
neither in the cookie nor in Redis. Redis holds, under the SHA-256 of the session id (a copy
of Redis does not hand out usable session ids), who logged in with which token id, the
session's CSRF token and at most one message to show on the next page. Every request checks
again that the token is still active (gatekeeper.console.access), so revoking the token ends
its console sessions too.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from dataclasses import asdict, dataclass, replace

from redis.asyncio import Redis

from gatekeeper.auth import Principal, Role

COOKIE = "gk_console"
# Before login: the double-submit nonce that guards the login form itself.
LOGIN_COOKIE = "gk_console_login"
COOKIE_PATH = "/console"
# A console session lasts at most this long (the token's own expiry ends it sooner).
SESSION_SECONDS = 8 * 3600
_KEY = "gatekeeper:console:session:"


@dataclass(frozen=True)
class Session:
    """One logged-in browser: who, through which token, and its CSRF token."""

    user_id: int
    email: str
    token_id: int
    role: str
    csrf: str
    notice: str | None = None  # shown once on the next page (the answer to a form)
    notice_kind: str = "info"  # info | error

    @property
    def principal(self) -> Principal:
        return Principal(self.user_id, self.email, self.token_id, Role(self.role))


def new_secret() -> str:
    """A random value for a session id, a CSRF token or a login nonce (256 bits)."""
    return secrets.token_urlsafe(32)


def same_secret(expected: str, presented: str | None) -> bool:
    """Constant-time comparison of a CSRF token or nonce with what the browser sent."""
    if not presented:
        return False
    return hmac.compare_digest(expected.encode(), presented.encode("utf-8", "replace"))


def _key(session_id: str) -> str:
    return _KEY + hashlib.sha256(session_id.encode("utf-8", "replace")).hexdigest()


class SessionStore:
    """Create, read, update and end console sessions in Redis."""

    def __init__(self, redis: Redis) -> None:
        self._redis = redis

    async def create(self, principal: Principal) -> tuple[str, Session]:
        """A new session for ``principal``: its id (for the cookie only) and its contents."""
        session_id = new_secret()
        session = Session(
            principal.user_id, principal.email, principal.token_id, principal.role.value,
            new_secret(),
        )  # fmt: skip
        await self._save(session_id, session, SESSION_SECONDS)
        return session_id, session

    async def load(self, session_id: str | None) -> Session | None:
        if not session_id or len(session_id) > 128:
            return None
        raw = await self._redis.get(_key(session_id))
        if raw is None:
            return None
        return Session(**json.loads(raw))

    async def tell(self, session_id: str, session: Session, notice: str, kind: str) -> None:
        """Keep ``notice`` for the next page this session shows."""
        await self._update(session_id, replace(session, notice=notice, notice_kind=kind))

    async def take_notice(self, session_id: str, session: Session) -> Session:
        """The session as it was (notice included), the notice removed from the store."""
        if session.notice is not None:
            await self._update(session_id, replace(session, notice=None, notice_kind="info"))
        return session

    async def end(self, session_id: str) -> None:
        await self._redis.delete(_key(session_id))

    async def _update(self, session_id: str, session: Session) -> None:
        # Keep the session's remaining lifetime: a notice never extends it.
        remaining = await self._redis.ttl(_key(session_id))
        if remaining > 0:
            await self._save(session_id, session, remaining)

    async def _save(self, session_id: str, session: Session, seconds: int) -> None:
        await self._redis.set(_key(session_id), json.dumps(asdict(session)), ex=seconds)
