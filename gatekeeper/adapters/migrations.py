"""Forward-only SQL migrations: ``sql/NNNN_description.sql``, applied in numeric order.

Each file runs in its own transaction together with its row in ``schema_migrations``, so a
failing file leaves nothing behind and the files before it stay applied. The whole run holds a
Postgres advisory lock on the connection it was given, so replicas starting at once apply each
migration exactly once (the others wait, then find nothing to do).

Files must not contain their own ``BEGIN``/``COMMIT`` nor statements that cannot run inside a
transaction (``CREATE INDEX CONCURRENTLY``, ``VACUUM``...).

An applied file is never edited: its sha256 is recorded, and a changed or missing file makes
the runner refuse to do anything until someone looks.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import asyncpg

from gatekeeper.adapters.pg import Conn
from gatekeeper.errors import GatekeeperError

__all__ = [
    "DEFAULT_SQL_DIR",
    "INSTALLED_SQL_DIR",
    "AppliedMigration",
    "Migration",
    "MigrationError",
    "MigrationStatus",
    "applied_at",
    "apply_migrations",
    "discover",
    "is_current",
    "migration_status",
    "pending_migrations",
    "sql_dir",
]

# Where a wheel installs the migrations (pyproject.toml: [tool.setuptools.data-files]).
INSTALLED_SQL_DIR = Path("share", "gatekeeper", "sql")


def sql_dir(module: Path, prefix: Path) -> Path:
    """The migrations for this module's install: the repository's ``sql/`` beside the package
    (a clone, installed editable, as the README's commands do), else the copy a wheel put
    under the environment's ``prefix`` (``GATEKEEPER_COMPILE=1 pip install .``)."""
    beside = module.resolve().parents[2] / "sql"
    return beside if beside.is_dir() else prefix / INSTALLED_SQL_DIR


DEFAULT_SQL_DIR = sql_dir(Path(__file__), Path(sys.prefix))

# pg_advisory_lock key: "gkmigrat" read as a big-endian int64. Any fixed value works, as long
# as nothing else in the database uses it.
MIGRATION_LOCK_KEY = int.from_bytes(b"gkmigrat", "big", signed=True)

_FILE_NAME = re.compile(r"^(?P<version>\d+)_(?P<name>[A-Za-z0-9_\-]+)\.sql$")
_MAX_VERSION = 2**31 - 1  # schema_migrations.version is an int

_CREATE_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version    int PRIMARY KEY,
    name       text NOT NULL,
    checksum   text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)
"""


class MigrationError(GatekeeperError):
    """The migrations cannot be applied: bad files, a changed or missing applied file, or SQL
    that failed. Nothing was applied by the call that raised it, except the migrations it
    reported as applied before the failing one."""

    status = 503
    code = "migration_error"


@dataclass(frozen=True, slots=True)
class Migration:
    """One SQL file: ``version`` and ``name`` come from ``NNNN_name.sql``."""

    version: int
    name: str
    path: Path
    checksum: str  # sha256 of the file's bytes, hex

    @property
    def label(self) -> str:
        """``0001 create_protections``: how the CLI names it."""
        return f"{self.version:04d} {self.name}"

    def read_sql(self) -> str:
        """The file's SQL text."""
        return self.path.read_text(encoding="utf-8")


@dataclass(frozen=True, slots=True)
class AppliedMigration(Migration):
    """A migration this run applied, with how long it took."""

    seconds: float = 0.0


@dataclass(frozen=True, slots=True)
class MigrationStatus:
    """How the database compares with the files. ``current`` is what ``/readyz`` wants."""

    pending: list[Migration]
    changed: list[Migration]  # applied, but the file's checksum differs
    missing: list[int]  # applied versions whose file is gone

    @property
    def current(self) -> bool:
        """True when every file is applied, unchanged, and nothing applied is missing."""
        return not (self.pending or self.changed or self.missing)


def discover(sql_dir: Path = DEFAULT_SQL_DIR) -> list[Migration]:
    """The migration files in ``sql_dir``, in version order.

    Other files (README.md...) are ignored; a ``.sql`` file not named ``NNNN_name.sql`` or two
    files with the same version are errors, so a typo cannot silently skip a migration.
    """
    if not sql_dir.is_dir():
        raise MigrationError(f"migrations directory not found: {sql_dir}")
    migrations: dict[int, Migration] = {}
    for path in sorted(sql_dir.iterdir()):
        if path.suffix != ".sql" or not path.is_file():
            continue
        match = _FILE_NAME.match(path.name)
        if match is None:
            raise MigrationError(f"{path.name}: migration files are named NNNN_description.sql")
        version = int(match["version"])
        if not 0 < version <= _MAX_VERSION:
            raise MigrationError(f"{path.name}: version must be between 1 and {_MAX_VERSION}")
        if version in migrations:
            raise MigrationError(
                f"{path.name} and {migrations[version].path.name} have the same version"
            )
        checksum = hashlib.sha256(path.read_bytes()).hexdigest()
        migrations[version] = Migration(version, match["name"], path, checksum)
    return [migrations[version] for version in sorted(migrations)]


async def _applied(conn: Conn) -> dict[int, str]:
    """Version → checksum of what the database has applied (empty without the table)."""
    exists = await conn.fetchval("SELECT to_regclass('schema_migrations') IS NOT NULL")
    if not exists:
        return {}
    rows = await conn.fetch("SELECT version, checksum FROM schema_migrations")
    return {row["version"]: row["checksum"] for row in rows}


def _compare(files: list[Migration], applied: dict[int, str]) -> MigrationStatus:
    by_version = {migration.version: migration for migration in files}
    return MigrationStatus(
        pending=[m for m in files if m.version not in applied],
        changed=[m for m in files if m.version in applied and applied[m.version] != m.checksum],
        missing=sorted(version for version in applied if version not in by_version),
    )


async def migration_status(conn: Conn, sql_dir: Path = DEFAULT_SQL_DIR) -> MigrationStatus:
    """Compare the database with the files, without locking or changing anything."""
    return _compare(discover(sql_dir), await _applied(conn))


async def applied_at(conn: Conn) -> dict[int, datetime]:
    """Version → when it was applied (empty without ``schema_migrations``)."""
    exists = await conn.fetchval("SELECT to_regclass('schema_migrations') IS NOT NULL")
    if not exists:
        return {}
    rows = await conn.fetch("SELECT version, applied_at FROM schema_migrations")
    return {row["version"]: row["applied_at"] for row in rows}


async def pending_migrations(conn: Conn, sql_dir: Path = DEFAULT_SQL_DIR) -> list[Migration]:
    """The files not applied yet, in the order they would be applied."""
    return (await migration_status(conn, sql_dir)).pending


async def is_current(conn: Conn, sql_dir: Path = DEFAULT_SQL_DIR) -> bool:
    """True when the schema is exactly what the files describe (for ``/readyz``)."""
    return (await migration_status(conn, sql_dir)).current


def _refuse_if_inconsistent(status: MigrationStatus, applied: dict[int, str]) -> None:
    problems = [
        f"{m.path.name} was changed after it was applied "
        f"(recorded sha256 {applied[m.version][:12]}…, file {m.checksum[:12]}…)"
        for m in status.changed
    ]
    problems += [f"version {v} is applied but its file is missing" for v in status.missing]
    latest = max(applied, default=0)
    problems += [
        f"{m.path.name} is older than the latest applied version {latest}: give it a new number"
        for m in status.pending
        if m.version < latest
    ]
    if problems:
        raise MigrationError(
            "refusing to migrate, nothing was applied: " + "; ".join(problems),
            details={"changed": [m.path.name for m in status.changed], "missing": status.missing},
        )


async def apply_migrations(
    conn: asyncpg.Connection,
    sql_dir: Path = DEFAULT_SQL_DIR,
    *,
    on_migrating: Callable[[Migration], None] | None = None,
    on_migrated: Callable[[AppliedMigration], None] | None = None,
) -> list[AppliedMigration]:
    """Apply the pending migrations in order; return those applied (empty when current).

    ``conn`` must be a dedicated connection, not inside a transaction: the advisory lock is
    held on it for the whole run. ``on_migrating`` is called before each file runs and
    ``on_migrated`` after it committed (the CLI prints its progress with them).

    Raises MigrationError, before applying anything, when an applied file changed or is
    missing; and when a file fails, after rolling that file back (earlier ones stay applied).
    """
    if conn.is_in_transaction():
        raise MigrationError("apply_migrations needs a connection outside any transaction")
    files = discover(sql_dir)
    await conn.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK_KEY)
    try:
        await conn.execute(_CREATE_TABLE)
        applied = await _applied(conn)
        status = _compare(files, applied)
        _refuse_if_inconsistent(status, applied)
        done: list[AppliedMigration] = []
        for migration in status.pending:
            if on_migrating is not None:
                on_migrating(migration)
            done.append(await _apply_one(conn, migration))
            if on_migrated is not None:
                on_migrated(done[-1])
        return done
    finally:
        # A lost connection has released the lock already; do not hide the original error.
        with contextlib.suppress(asyncpg.InterfaceError, OSError):
            await conn.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK_KEY)


async def _apply_one(conn: asyncpg.Connection, migration: Migration) -> AppliedMigration:
    sql = migration.read_sql()
    started = time.perf_counter()
    try:
        async with conn.transaction():
            await conn.execute(sql)
            await conn.execute(
                "INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)",
                migration.version,
                migration.name,
                migration.checksum,
            )
    except asyncpg.PostgresError as error:
        raise MigrationError(
            f"{migration.path.name} failed and was rolled back: {type(error).__name__}: {error}"
        ) from error
    return AppliedMigration(
        migration.version,
        migration.name,
        migration.path,
        migration.checksum,
        seconds=time.perf_counter() - started,
    )
