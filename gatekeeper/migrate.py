"""``gatekeeper migrate``: apply sql/ and report it the way the seed's Step 1 shows.

::

    == 0002 create_portfolio_protections: migrating ===============================
    -- create_table(:portfolio_protections)
    -- add_index(:portfolio_protections, [:user_id, :account_id], {:unique=>true})
    -- add_check_constraint(:portfolio_protections, "cash_reserve_percentage >= 20.0 ...
    == 0002 create_portfolio_protections: migrated (0.0123s) ======================
"""

from __future__ import annotations

import re
from typing import TextIO

import asyncpg

from gatekeeper.adapters.migrations import (
    DEFAULT_SQL_DIR,
    AppliedMigration,
    Migration,
    apply_migrations,
    discover,
)

_WIDTH = 79
_COMMENT = re.compile(r"--[^\n]*")
_STATEMENT = re.compile(
    r"CREATE\s+TABLE\s+(?:IF\s+NOT\s+EXISTS\s+)?(?P<table>\w+)"
    r"|CREATE\s+(?P<unique>UNIQUE\s+)?INDEX\s+(?:IF\s+NOT\s+EXISTS\s+)?\w+\s+ON\s+(?P<index_table>\w+)"
    r"\s*\((?P<columns>[^)]*)\)"
    r"|ALTER\s+TABLE\s+(?P<check_table>\w+)\s+ADD\s+CONSTRAINT\s+(?P<check_name>\w+)\s+CHECK\s*"
    r"\((?P<check>.*?)\);"
    r"|CREATE\s+(?:OR\s+REPLACE\s+)?FUNCTION\s+(?P<function>\w+)"
    r"|CREATE\s+TRIGGER\s+(?P<trigger>\w+)\s.*?\sON\s+(?P<trigger_table>\w+)"
    r"|DO\s+\$\$",
    re.IGNORECASE | re.DOTALL,
)


def _banner(text: str) -> str:
    return f"== {text} ".ljust(_WIDTH, "=")


def _symbols(columns: str) -> str:
    names = [f":{name.strip()}" for name in columns.split(",")]
    return names[0] if len(names) == 1 else "[" + ", ".join(names) + "]"


def describe(sql: str) -> list[str]:
    """One ``-- what(...)`` line per schema statement in ``sql``, in order (Rails' wording)."""
    lines: list[str] = []
    for match in _STATEMENT.finditer(_COMMENT.sub("", sql)):
        group = match.groupdict()
        if group["table"]:
            lines.append(f"-- create_table(:{group['table']})")
        elif group["index_table"]:
            unique = ", {:unique=>true}" if group["unique"] else ""
            columns = _symbols(group["columns"])
            lines.append(f"-- add_index(:{group['index_table']}, {columns}{unique})")
        elif group["check_table"]:
            expression = " ".join(group["check"].split())
            lines.append(
                f'-- add_check_constraint(:{group["check_table"]}, "{expression}",'
                f' {{:name=>"{group["check_name"]}"}})'
            )
        elif group["function"]:
            lines.append(f"-- create_function(:{group['function']})")
        elif group["trigger"]:
            lines.append(f"-- create_trigger(:{group['trigger_table']}, :{group['trigger']})")
        else:
            lines.append("-- execute(DO block)")
    return lines


async def migrate_and_report(dsn: str, out: TextIO) -> None:
    """Apply every pending migration in ``sql/`` and print each as it runs."""

    def migrating(migration: Migration) -> None:
        out.write(_banner(f"{migration.label}: migrating") + "\n")
        for line in describe(migration.read_sql()):
            out.write(line + "\n")
        out.flush()

    def migrated(migration: AppliedMigration) -> None:
        out.write(_banner(f"{migration.label}: migrated ({migration.seconds:.4f}s)") + "\n\n")
        out.flush()

    conn = await asyncpg.connect(dsn)
    try:
        applied = await apply_migrations(
            conn, DEFAULT_SQL_DIR, on_migrating=migrating, on_migrated=migrated
        )
    finally:
        await conn.close()
    if not applied:
        latest = max((m.version for m in discover(DEFAULT_SQL_DIR)), default=0)
        out.write(f"nothing to migrate: the schema is current (version {latest:04d})\n")
        out.flush()
