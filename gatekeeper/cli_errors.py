"""What went wrong, in one line an operator can act on, instead of a traceback.

Only errors whose cause is outside the program are explained here: a busy port, a database
that cannot be reached, is not migrated, or refuses the role; anything else is a bug and
keeps its traceback. Messages name hosts, ports, roles and tables, never a password.
asyncpg and redis are imported when an error is explained, keeping ``gatekeeper --help`` fast.
"""

from __future__ import annotations

import errno
import re
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from gatekeeper.errors import GatekeeperError
from gatekeeper.settings import Settings

if TYPE_CHECKING:
    import asyncpg

__all__ = [
    "DatabaseNotConfigured",
    "PostgresUnreachable",
    "connect",
    "explain",
    "postgres_target",
    "redis_target",
]

DOCS_ROLES = "docs/admin.md#the-database-roles"
DEMO_ENV_HINT = ".gatekeeper-demo.env"
_BIND_ADDRESS = re.compile(r"\('([^']*)', (\d+)\)")


def _target(url: str | None, default_port: int) -> str:
    if not url:
        return "(not set)"
    try:
        parts = urlsplit(url)
        port = parts.port or default_port
    except ValueError:
        return "(unparsable URL)"
    where = f"{parts.hostname or 'localhost'}:{port}"
    path = parts.path.strip("/")
    return f"{where}/{path}" if path else where


def postgres_target(settings: Settings) -> str:
    """``host:port/database`` of DATABASE_URL, without user or password."""
    url = settings.database_url.get_secret_value() if settings.database_url else None
    return _target(url, 5432)


def redis_target(settings: Settings) -> str:
    """``host:port/db`` of REDIS_URL, without password."""
    url = settings.redis_url.get_secret_value() if settings.redis_url else None
    return _target(url, 6379)


def _listener(settings: Settings, host: str, port: int) -> str:
    for name, section in (("proxy", settings.proxy), ("admin", settings.admin)):
        if section.port == port:
            return f"the {name} listener; choose another with GATEKEEPER_{name.upper()}__PORT"
    if settings.paper.port == port:
        return "the paper broker; choose another with GATEKEEPER_PAPER__PORT"
    return "choose another port"


def _busy_port(error: OSError, settings: Settings) -> str:
    found = _BIND_ADDRESS.search(str(error))
    if found is None:
        return "a port this command listens on is already in use: stop what listens there"
    host, port = found[1], int(found[2])
    return (
        f"{host}:{port} is already in use ({_listener(settings, host, port)}), or stop what"
        " listens there (`ss -ltnp` shows it)"
    )


def _privilege(error: asyncpg.InsufficientPrivilegeError, settings: Settings) -> str:
    message = str(error).splitlines()[0]
    if "schema public" in message or "must be owner" in message:
        return (
            f"Postgres at {postgres_target(settings)}: {message}: run `gatekeeper migrate` as"
            f" the database's owner role and serve as a member of gatekeeper_app ({DOCS_ROLES})"
        )
    return (
        f"Postgres at {postgres_target(settings)}: {message}: the service's role must be a member"
        f" of gatekeeper_app (GRANT gatekeeper_app TO <role>; {DOCS_ROLES})"
    )


def _postgres(error: BaseException, settings: Settings) -> str | None:
    import asyncpg

    where = f"Postgres at {postgres_target(settings)}"
    first_line = str(error).splitlines()[0] if str(error) else type(error).__name__
    if isinstance(error, asyncpg.UndefinedTableError):
        return f"{where} is not migrated ({first_line}): run `gatekeeper migrate`"
    if isinstance(error, asyncpg.InsufficientPrivilegeError):
        return _privilege(error, settings)
    if isinstance(error, asyncpg.InvalidPasswordError):
        return f"{where} refused the login ({first_line}): check the password in DATABASE_URL"
    if isinstance(error, asyncpg.InvalidAuthorizationSpecificationError):
        return (
            f"{where} refused the login ({first_line}): create the role or fix the user in"
            f" DATABASE_URL ({DOCS_ROLES})"
        )
    if isinstance(error, asyncpg.InvalidCatalogNameError):
        return (
            f"{where}: {first_line}: create it (`createdb`) and run `gatekeeper migrate`,"
            " or fix DATABASE_URL"
        )
    if isinstance(error, asyncpg.CannotConnectNowError | asyncpg.TooManyConnectionsError):
        return f"{where} does not accept connections now ({first_line}): try again shortly"
    return None


def explain(error: BaseException, settings: Settings) -> str | None:
    """One line for ``error`` (or what caused it), or None if it is not one we explain."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        line = _one(current, settings)
        if line is not None:
            return line
        current = current.__cause__ or current.__context__
    return None


def _one(error: BaseException, settings: Settings) -> str | None:
    from redis import exceptions as redis_errors

    if isinstance(error, OSError) and error.errno == errno.EADDRINUSE:
        return _busy_port(error, settings)
    postgres = _postgres(error, settings)
    if postgres is not None:
        return postgres
    if isinstance(error, redis_errors.AuthenticationError):
        return f"Redis at {redis_target(settings)} refused the login: check REDIS_URL"
    if isinstance(error, redis_errors.ConnectionError):
        return f"cannot reach Redis at {redis_target(settings)}: is it running? (REDIS_URL)"
    return None


class PostgresUnreachable(GatekeeperError):
    """The operators' commands could not connect to Postgres at all."""

    code = "database_unavailable"


class DatabaseNotConfigured(GatekeeperError):
    code = "configuration_missing"


CONNECT_TIMEOUT_SECONDS = 10.0


async def connect(settings: Settings) -> asyncpg.Connection:
    """A connection to DATABASE_URL; PostgresUnreachable (one line) if none can be made."""
    import asyncpg

    if settings.database_url is None:
        raise DatabaseNotConfigured(
            "database_url is not set (DATABASE_URL); `gatekeeper demo` writes"
            f" {DEMO_ENV_HINT} for the commands run next to it"
        )
    try:
        conn: asyncpg.Connection = await asyncpg.connect(
            settings.database_url.get_secret_value(), timeout=CONNECT_TIMEOUT_SECONDS
        )
    except (OSError, TimeoutError) as error:
        raise PostgresUnreachable(
            f"cannot reach Postgres at {postgres_target(settings)} ({type(error).__name__}):"
            " is it running, and is DATABASE_URL right?"
        ) from None
    return conn
