"""BENCH_PG_STATS=1: what Postgres spent on each round, statement by statement.

The run's own Postgres then loads ``pg_stat_statements`` (shipped with the embedded server
and with Debian's), counting nested statements too (the order path's plpgsql functions and
triggers). Before each round that uses Postgres the counters are reset; after it, the
statements that took the most time are printed, per request of the round. The figures are
wall time inside Postgres, so waits (the account lock, a row lock, a CPU shared with the
load generator) count: compare the 1-connection rounds to see the work alone. This is how
sql/0035 was found: a trigger's lookup that visited every outcome ever recorded.
"""

from __future__ import annotations

import asyncpg

OPTIONS = {"shared_preload_libraries": "pg_stat_statements", "pg_stat_statements.track": "all"}
_TOP = 10


async def reset(database_url: str) -> None:
    connection = await asyncpg.connect(database_url)
    try:
        await connection.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        await connection.execute("SELECT pg_stat_statements_reset()")
    finally:
        await connection.close()


async def report(database_url: str, requests: int) -> str:
    """The statements that took the most time since :func:`reset`, per request."""
    connection = await asyncpg.connect(database_url)
    try:
        rows = await connection.fetch(
            """
            SELECT calls, total_exec_time, toplevel,
                   left(regexp_replace(query, '\\s+', ' ', 'g'), 90) AS query
            FROM pg_stat_statements
            WHERE query NOT LIKE '%pg_stat_statements%'
            ORDER BY total_exec_time DESC LIMIT $1
            """,
            _TOP,
        )
    finally:
        await connection.close()
    per = max(requests, 1)
    lines = ["    calls/req  ms/req  ms/call  level   statement"]
    for row in rows:
        calls, total = row["calls"], row["total_exec_time"]
        level = "top" if row["toplevel"] else "nested"
        lines.append(
            f"    {calls / per:9.2f} {total / per:7.3f} {total / max(calls, 1):8.3f}"
            f"  {level:6}  {row['query']}"
        )
    return "\n".join(lines)
