"""``gatekeeper audit verify`` and ``export`` in a subprocess, after a superuser edited,
deleted, forged or reordered chained rows, or cut the end off a chain (issue 11, item 5).

The chain of 5WT00001 is: decision 1, its outcome, decisions 2, 3 and 4 (positions 1 to 5);
5WT00002 has one decision (id 5), untouched.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from tests.fixtures.admin import CliResult, run_cli
from tests.fixtures.audit import ACCOUNT, as_superuser, decide, record_outcome

OTHER = "5WT00002"


@pytest.fixture
async def conn(database_url: str) -> AsyncIterator[asyncpg.Connection]:
    connection = await asyncpg.connect(database_url)
    try:
        first = await decide(connection)
        await record_outcome(connection, first)
        for _ in range(3):
            await decide(connection)
        await decide(connection, OTHER)
        yield connection
    finally:
        await connection.close()


async def verify(database_url: str, *args: str) -> CliResult:
    return await run_cli(database_url, "audit", "verify", *args)


def problems(result: CliResult) -> list[str]:
    assert result.returncode == 1, result.stdout + result.stderr
    assert "audit verify: FAILED" in result.stderr
    return result.stdout.splitlines()


async def test_untouched_chains_verify(conn: asyncpg.Connection, database_url: str) -> None:
    result = await verify(database_url)

    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == "audit verify: OK: 2 account(s), 6 row(s)"


async def test_a_decision_edited_by_hand_is_reported(
    conn: asyncpg.Connection, database_url: str
) -> None:
    async with conn.transaction():
        await conn.execute("ALTER TABLE risk_decisions DISABLE TRIGGER risk_decisions_append_only")
        await conn.execute("UPDATE risk_decisions SET latency_ms = 0.5 WHERE id = 2")
        await conn.execute("ALTER TABLE risk_decisions ENABLE TRIGGER risk_decisions_append_only")

    found = problems(await verify(database_url))

    assert found == [
        f"edited: risk_decisions id=2 account={ACCOUNT} position=3:"
        " its content does not give its chain_hash"
    ]
    # the other account's chain is fine on its own
    assert (await verify(database_url, "--account", OTHER)).returncode == 0


async def test_a_deleted_row_is_reported(conn: asyncpg.Connection, database_url: str) -> None:
    await as_superuser(conn, "risk_decisions", "DELETE FROM risk_decisions WHERE id = 3")

    found = problems(await verify(database_url, "--account", ACCOUNT))

    assert len(found) == 1
    assert found[0].startswith(f"deleted: risk_decisions id=4 account={ACCOUNT} position=5:")
    assert "after risk_decisions id=2" in found[0]


async def test_a_forged_row_is_reported_as_inserted(
    conn: asyncpg.Connection, database_url: str
) -> None:
    # A careful forger: the row links to a real row and its hash matches its content.
    await as_superuser(
        conn,
        "risk_decisions",
        """
        WITH forged AS (
            INSERT INTO risk_decisions (decision_id, account_id, route_kind, verdict, message,
                detail, trading_day, latency_ms, chain_seq, chain_prev, chain_hash)
            SELECT gen_random_uuid(), account_id, 'place', 'allow', 'forged', '{}',
                   current_date, 1, 3, chain_prev, chain_hash
            FROM risk_decisions WHERE id = 2
            RETURNING id
        )
        SELECT id FROM forged
        """,
    )
    await as_superuser(
        conn,
        "risk_decisions",
        "UPDATE risk_decisions r SET chain_hash ="
        " audit_hash('risk_decisions', r.chain_prev, audit_body_risk_decisions(r))"
        " WHERE message = 'forged'",
    )

    found = problems(await verify(database_url))

    assert len(found) == 1
    assert found[0].startswith(f"inserted: risk_decisions id=6 account={ACCOUNT} position=3:")
    assert "risk_decisions id=3 links past it" in found[0]


async def test_a_swapped_pair_is_reported_as_reordered(
    conn: asyncpg.Connection, database_url: str
) -> None:
    await as_superuser(
        conn,
        "risk_decisions",
        "UPDATE risk_decisions SET chain_seq = CASE id WHEN 3 THEN 5 ELSE 4 END WHERE id IN (3, 4)",
    )

    found = problems(await verify(database_url))

    assert found == [
        f"reordered: risk_decisions id=4 account={ACCOUNT} position=4: it comes before"
        " risk_decisions id=3 (position 5), the row it links to: the two were swapped"
    ]


async def test_a_cut_tail_is_reported_by_the_recorded_head_and_by_an_export(
    conn: asyncpg.Connection, database_url: str, tmp_path: Path
) -> None:
    exported = tmp_path / "heads.json"
    result = await run_cli(database_url, "audit", "export", "--output", str(exported))
    assert result.returncode == 0, result.stderr
    heads = json.loads(exported.read_text())["heads"]
    assert [(h["account_id"], h["table"], h["id"], h["chain_seq"]) for h in heads] == [
        (ACCOUNT, "risk_decisions", 4, 5),
        (OTHER, "risk_decisions", 5, 1),
    ]
    await as_superuser(conn, "risk_decisions", "DELETE FROM risk_decisions WHERE id = 4")

    found = problems(await verify(database_url))
    assert len(found) == 1
    assert found[0].startswith(f"deleted: risk_decisions id=4 account={ACCOUNT} position=5:")

    # A superuser who also moves the recorded head back hides it from everything but the export.
    await conn.execute(
        "UPDATE audit_chain_heads h SET chain_seq = 4, source_id = 3, chain_hash = r.chain_hash"
        " FROM risk_decisions r WHERE r.id = 3 AND h.account_id = r.account_id"
    )
    assert (await verify(database_url)).returncode == 0
    found = problems(await verify(database_url, "--anchor", str(exported)))
    assert len(found) == 1
    assert found[0].startswith(f"deleted: risk_decisions id=4 account={ACCOUNT} position=5:")
    assert "the exported head" in found[0]


async def test_an_export_of_a_day_names_the_chain_head_at_its_end(
    conn: asyncpg.Connection, database_url: str
) -> None:
    day = await conn.fetchval("SELECT (now() AT TIME ZONE 'America/New_York')::date")
    earlier = await run_cli(database_url, "audit", "export", "--day", "2020-01-02")
    today = await run_cli(
        database_url, "audit", "export", "--day", day.isoformat(), "--account", OTHER
    )

    assert json.loads(earlier.stdout)["heads"] == []
    document = json.loads(today.stdout)
    assert document["day"] == day.isoformat()
    stored = await conn.fetchval("SELECT encode(chain_hash, 'hex') FROM risk_decisions WHERE id=5")
    assert document["heads"] == [
        {"account_id": OTHER, "table": "risk_decisions", "id": 5, "chain_seq": 1,
         "chain_hash": stored}
    ]  # fmt: skip
