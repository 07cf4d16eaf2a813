"""``gatekeeper migrate [--status]``: apply the SQL migrations, or say which are applied and
which are pending without changing anything."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from gatekeeper.cli_admin import Command, connect_db
from gatekeeper.settings import Settings


async def _status(settings: Settings) -> int:
    from gatekeeper.adapters.migrations import applied_at, discover, migration_status

    async with connect_db(settings) as conn:
        status = await migration_status(conn)
        when = await applied_at(conn)
    pending = {m.version for m in status.pending}
    changed = {m.version for m in status.changed}
    for migration in discover():
        if migration.version in pending:
            state = "pending"
        elif migration.version in changed:
            state = "CHANGED"  # applied, then the file was edited
        else:
            state = "applied"
        stamp = when.get(migration.version)
        applied = stamp.isoformat(timespec="seconds") if stamp is not None else ""
        print(f"{state:<8} {migration.label:<48} {applied}".rstrip())
    for version in status.missing:
        print(f"{'MISSING':<8} {version:04d} (applied, but its file is gone)")
    if status.current:
        print(f"up to date: {len(when)} migration(s) applied")
        return 0
    problems = []
    if status.pending:
        problems.append(f"{len(status.pending)} pending: run `gatekeeper migrate`")
    if status.changed or status.missing:
        problems.append("the schema differs from sql/ (an applied file was edited or removed)")
    print("; ".join(problems))
    return 1


async def cmd_migrate(settings: Settings, args: argparse.Namespace) -> int:
    if args.status:
        return await _status(settings)
    from gatekeeper.migrate import migrate_and_report

    async with connect_db(settings):  # one line, not a traceback, when it cannot connect
        pass
    assert settings.database_url is not None  # noqa: S101 - connect_db checked it
    await migrate_and_report(settings.database_url.get_secret_value(), out=sys.stdout)
    return 0


def _migrate_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--status",
        action="store_true",
        help="list applied and pending migrations, change nothing (exit 1 unless up to date)",
    )


MIGRATE_COMMANDS: dict[str, tuple[Command, str]] = {
    "migrate": (
        cmd_migrate,
        "apply the SQL migrations in sql/ (idempotent, safe to race; as the database's owner"
        " role); --status lists applied and pending ones",
    ),
}
MIGRATE_ARGUMENTS: dict[str, Callable[[argparse.ArgumentParser], None]] = {
    "migrate": _migrate_arguments,
}
