"""Users and admin API tokens in Postgres: the only module with their SQL."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import asyncpg

from gatekeeper.adapters.pg import Conn
from gatekeeper.auth import (
    Principal,
    Role,
    TokenExpired,
    TokenRevoked,
    TokenUnknown,
    digests_match,
    new_token,
    token_digest,
)
from gatekeeper.errors import BadRequest, Conflict, NotFound


class UserExists(Conflict):
    code = "user_exists"


class UserNotFound(NotFound):
    code = "user_not_found"


class TokenNotFound(NotFound):
    code = "token_not_found"


class InvalidEmail(BadRequest):
    code = "invalid_email"


@dataclass(frozen=True)
class User:
    id: int
    email: str
    name: str | None
    created_at: datetime


@dataclass(frozen=True)
class TokenInfo:
    """A token's metadata: never the token, never its digest."""

    id: int
    user_id: int
    email: str
    role: Role
    label: str | None
    created_at: datetime
    expires_at: datetime
    revoked_at: datetime | None
    last_used_at: datetime | None
    expired: bool

    @property
    def state(self) -> str:
        if self.revoked_at is not None:
            return "revoked"
        return "expired" if self.expired else "active"


_METADATA_COLUMNS = """
    t.id, t.user_id, u.email, t.role, t.label, t.created_at, t.expires_at, t.revoked_at,
    t.last_used_at, t.expires_at <= now() AS expired
"""


def _returned(row: asyncpg.Record | None) -> asyncpg.Record:
    if row is None:  # INSERT ... RETURNING always returns its row
        raise RuntimeError("INSERT returned no row")
    return row


def _token(row: asyncpg.Record) -> TokenInfo:
    values = dict(row)
    values["role"] = Role(values["role"])
    return TokenInfo(**values)


def normalise_email(email: str) -> str:
    email = email.strip().lower()
    local, at, domain = email.partition("@")
    if not (local and at and domain) or any(c.isspace() for c in email) or "@" in domain:
        raise InvalidEmail(f"not an email address: {email[:80]!r}")
    return email


async def create_user(conn: Conn, email: str, name: str | None = None) -> User:
    email = normalise_email(email)
    try:
        row = await conn.fetchrow(
            "INSERT INTO users (email, name) VALUES ($1, $2) RETURNING id, email, name, created_at",
            email,
            name,
        )
    except asyncpg.UniqueViolationError:
        raise UserExists(f"a user with email {email} exists already") from None
    return User(**dict(_returned(row)))


async def find_user(conn: Conn, email: str) -> User:
    row = await conn.fetchrow(
        "SELECT id, email, name, created_at FROM users WHERE email = $1", email.strip().lower()
    )
    if row is None:
        raise UserNotFound(f"no user with email {email.strip().lower()[:80]}")
    return User(**dict(row))


async def list_users(conn: Conn) -> list[User]:
    rows = await conn.fetch("SELECT id, email, name, created_at FROM users ORDER BY id")
    return [User(**dict(row)) for row in rows]


async def create_token(
    conn: Conn, user: User, role: Role, ttl: timedelta, label: str | None = None
) -> tuple[str, TokenInfo]:
    """A new token for ``user``: the token itself (show it once) and its stored metadata."""
    token = new_token()
    row = await conn.fetchrow(
        f"""
        WITH t AS (
            INSERT INTO api_tokens (user_id, token_sha256, role, label, expires_at)
            VALUES ($1, $2, $3, $4, now() + $5::interval)
            RETURNING *
        )
        SELECT {_METADATA_COLUMNS} FROM t JOIN users u ON u.id = t.user_id
        """,  # noqa: S608 - a constant column list, no input
        user.id,
        token_digest(token),
        role.value,
        label,
        ttl,
    )
    return token, _token(_returned(row))


async def revoke_token(conn: Conn, token_id: int) -> TokenInfo:
    """Revoke a token (revoking twice keeps the first revocation time)."""
    row = await conn.fetchrow(
        f"""
        WITH t AS (
            UPDATE api_tokens SET revoked_at = coalesce(revoked_at, now())
            WHERE id = $1 RETURNING *
        )
        SELECT {_METADATA_COLUMNS} FROM t JOIN users u ON u.id = t.user_id
        """,  # noqa: S608 - a constant column list, no input
        token_id,
    )
    if row is None:
        raise TokenNotFound(f"no token with id {token_id}")
    return _token(row)


async def list_tokens(conn: Conn, email: str | None = None) -> list[TokenInfo]:
    rows = await conn.fetch(
        f"""
        SELECT {_METADATA_COLUMNS} FROM api_tokens t JOIN users u ON u.id = t.user_id
        WHERE $1::text IS NULL OR u.email = $1 ORDER BY t.id
        """,  # noqa: S608 - a constant column list, no input
        email.strip().lower() if email is not None else None,
    )
    return [_token(row) for row in rows]


async def authenticate(conn: Conn, token: str) -> Principal:
    """The principal behind ``token``; records its use. Raises an Unauthorized subclass."""
    digest = token_digest(token)
    row = await conn.fetchrow(
        """
        SELECT t.id, t.user_id, u.email, t.role, t.token_sha256,
               t.revoked_at IS NOT NULL AS revoked, t.expires_at <= now() AS expired
        FROM api_tokens t JOIN users u ON u.id = t.user_id
        WHERE t.token_sha256 = $1
        """,
        digest,
    )
    # The index lookup is by digest, which tells an observer nothing about the token; the
    # constant-time comparison guards against a lookup that ever matched loosely.
    if row is None or not digests_match(bytes(row["token_sha256"]), digest):
        raise TokenUnknown("unknown API token")
    if row["revoked"]:
        raise TokenRevoked("this API token has been revoked")
    if row["expired"]:
        raise TokenExpired("this API token has expired: create a new one")
    await conn.execute("UPDATE api_tokens SET last_used_at = now() WHERE id = $1", row["id"])
    return Principal(row["user_id"], row["email"], row["id"], Role(row["role"]))
