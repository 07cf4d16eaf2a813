"""Admin API tokens and roles: pure functions, no I/O.

A token is ``gk_`` + 64 hex digits (32 random bytes), shown once at creation. Only its SHA-256
digest is stored: tokens carry 256 bits of entropy, so a fast hash is enough (no salt or
key stretching needed), and a lookup by digest reveals nothing about the token. The ``gk_``
prefix keeps them apart from TastyTrade session tokens, which grant nothing here.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum

from gatekeeper.errors import BadRequest, Forbidden, Unauthorized

TOKEN_PREFIX = "gk_"  # noqa: S105 - a prefix, not a secret
_TOKEN_SHAPE = re.compile(r"^gk_[0-9a-f]{64}$")
_TTL = re.compile(r"^(?P<amount>\d{1,6})(?P<unit>[smhd]?)$")
_TTL_UNITS = {"s": 1, "": 1, "m": 60, "h": 3600, "d": 86400}
MAX_TTL = timedelta(days=366)


class Role(StrEnum):
    ADMIN = "admin"  # everything
    OPERATOR = "operator"  # read, trigger an emergency stop
    VIEWER = "viewer"  # read


class Permission(StrEnum):
    READ = "read"
    READ_ALL = "read_every_users_protections"
    STOP = "trigger_emergency_stop"
    EDIT = "edit_protections"
    CLEAR = "clear_emergency_stop"


ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.VIEWER: frozenset({Permission.READ}),
    Role.OPERATOR: frozenset({Permission.READ, Permission.STOP}),
    Role.ADMIN: frozenset(Permission),
}


class InvalidTtl(BadRequest):
    code = "invalid_ttl"


# Why a request was not authenticated. The message never repeats the presented token.
class TokenMissing(Unauthorized):
    code = "token_missing"


class TokenMalformed(Unauthorized):
    code = "token_malformed"


class TokenUnknown(Unauthorized):
    code = "token_unknown"


class TokenExpired(Unauthorized):
    code = "token_expired"


class TokenRevoked(Unauthorized):
    code = "token_revoked"


class InsufficientRole(Forbidden):
    code = "insufficient_role"


@dataclass(frozen=True)
class Principal:
    """Who is calling: a user acting through one token with one role."""

    user_id: int
    email: str
    token_id: int
    role: Role

    def can(self, permission: Permission) -> bool:
        return permission in ROLE_PERMISSIONS[self.role]

    def require(self, permission: Permission) -> None:
        """Raise Forbidden unless this principal's role grants ``permission``."""
        if not self.can(permission):
            raise InsufficientRole(
                f"role {self.role.value!r} may not {permission.value.replace('_', ' ')}"
            )

    @property
    def owner_scope(self) -> int | None:
        """The user whose protections this principal may see: None (all) for admins."""
        return None if self.can(Permission.READ_ALL) else self.user_id


def new_token() -> str:
    """A fresh token: ``gk_`` + 32 random bytes in hex."""
    return TOKEN_PREFIX + secrets.token_hex(32)


def token_digest(token: str) -> bytes:
    """The SHA-256 digest stored in place of the token."""
    return hashlib.sha256(token.encode("ascii", "replace")).digest()


def looks_like_token(value: str) -> bool:
    """True when ``value`` has the shape of one of our tokens (not whether it is valid)."""
    return _TOKEN_SHAPE.fullmatch(value) is not None


def digests_match(stored: bytes, presented: bytes) -> bool:
    """Constant-time comparison of two digests."""
    return hmac.compare_digest(stored, presented)


def parse_ttl(text: str) -> timedelta:
    """``"24h"`` -> 24 hours; units s, m, h, d (bare numbers are seconds); at most 366 days."""
    match = _TTL.fullmatch(text.strip())
    if match is None:
        raise InvalidTtl(f"invalid TTL {text[:20]!r}: use a number with s, m, h or d, e.g. 24h")
    ttl = timedelta(seconds=int(match["amount"]) * _TTL_UNITS[match["unit"]])
    if ttl <= timedelta(0) or ttl > MAX_TTL:
        raise InvalidTtl(f"TTL must be more than 0 and at most {MAX_TTL.days} days")
    return ttl
