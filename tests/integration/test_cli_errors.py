"""Errors a newcomer can act on: the real ``gatekeeper`` command, run as a subprocess, answers
each start-up problem with one line saying what to do, never a traceback; a backend that is
only down lets ``serve`` start not ready and is tried again."""

from __future__ import annotations

import asyncio
import os
import socket
import sys
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
import asyncpg

from gatekeeper.embedded import EmbeddedPostgres
from tests.fixtures.admin import CliResult
from tests.fixtures.infra import with_database
from tests.processes import free_port


def _environment(**env: str) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("GATEKEEPER_")}
    base.pop("DATABASE_URL", None)
    base.pop("REDIS_URL", None)
    return {**base, "GATEKEEPER_LOG_LEVEL": "WARNING", **env}


async def gatekeeper(*args: str, **env: str) -> CliResult:
    """The command, in an empty directory (defaults, no config file), to its end."""
    with tempfile.TemporaryDirectory(prefix="gk-cli-") as workdir:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "gatekeeper.cli", *args,
            cwd=workdir, env=_environment(**env),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, err = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode is not None
    return CliResult(process.returncode, out.decode(), err.decode())


def one_line(result: CliResult) -> str:
    """The only line on stderr (and no traceback)."""
    lines = result.stderr.strip().splitlines()
    assert "Traceback" not in result.stderr, result.stderr
    assert len(lines) == 1, result.stderr
    return lines[0]


def serving(database_url: str, redis_url: str, **env: str) -> dict[str, str]:
    return {
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "GATEKEEPER_PROXY__PORT": "0",
        "GATEKEEPER_ADMIN__PORT": "0",
        **env,
    }


# -- configuration ----------------------------------------------------------------------------


async def test_a_database_url_of_another_kind_stops_serve_before_it_listens() -> None:
    result = await gatekeeper(
        "serve", **serving("mysql://root:hunter2@db/gk", "redis://127.0.0.1:6379/0")
    )

    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    [problem] = [line for line in result.stderr.splitlines() if line.startswith("  - ")]
    assert "database_url" in problem
    assert "must start with postgresql:// or postgres:// (got mysql://)" in problem
    assert "hunter2" not in result.stderr


async def test_an_unparsable_redis_url_stops_serve_before_it_listens() -> None:
    result = await gatekeeper(
        "serve", **serving("postgresql://gk@127.0.0.1/gk", "redis://:secret@127.0.0.1:port/0")
    )

    assert result.returncode == 2
    [problem] = [line for line in result.stderr.splitlines() if line.startswith("  - ")]
    assert "redis_url" in problem
    assert "cannot be parsed as a URL" in problem
    assert "secret" not in result.stderr


async def test_configured_defaults_outside_the_guides_ranges_are_refused() -> None:
    result = await gatekeeper(
        "serve",
        GATEKEEPER_RISK__DEFAULT_CASH_RESERVE_PERCENTAGE="10",
        GATEKEEPER_RISK__DEFAULT_MAX_PORTFOLIO_EXPOSURE_PERCENTAGE="90",
    )

    assert result.returncode == 2
    problems = [line for line in result.stderr.splitlines() if line.startswith("  - ")]
    assert problems == [
        "  - risk.default_cash_reserve_percentage: Value error, must be between 20 and 50 like"
        " a protection's (CHECK cash_reserve_range_check); got 10",
        "  - risk.default_max_portfolio_exposure_percentage: Value error, must be between 50"
        " and 85 like a protection's (CHECK exposure_range_check); got 90",
    ]


# -- the port, the schema, the roles ----------------------------------------------------------


async def test_a_busy_port_is_one_line_naming_it(database_url: str, redis_url: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = await gatekeeper(
            "serve", **serving(database_url, redis_url, GATEKEEPER_ADMIN__PORT=str(port))
        )

    assert result.returncode == 1
    assert one_line(result) == (
        f"error: 127.0.0.1:{port} is already in use (the admin listener; choose another with"
        " GATEKEEPER_ADMIN__PORT), or stop what listens there (`ss -ltnp` shows it)"
    )


async def test_an_unmigrated_database_says_run_migrate(
    empty_database_url: str, redis_url: str
) -> None:
    served = await gatekeeper("serve", **serving(empty_database_url, redis_url))
    shown = await gatekeeper("protections", "show", "5WT00001", DATABASE_URL=empty_database_url)

    assert served.returncode == 1
    assert one_line(served).endswith(
        "migration(s) pending (first: 0001 create_users_and_api_tokens): run `gatekeeper"
        " migrate` (as the database's owner role)"
    )
    assert shown.returncode == 1
    assert one_line(shown).endswith("is not migrated (relation \"portfolio_protections\" does"
                                    " not exist): run `gatekeeper migrate`")  # fmt: skip


async def test_a_role_postgres_does_not_know_is_one_line(database_url: str, redis_url: str) -> None:
    ghost = database_url.replace("postgres@", "gk_no_such_role@", 1)
    assert ghost != database_url

    served = await gatekeeper("serve", **serving(ghost, redis_url))
    listed = await gatekeeper("protections", "list", DATABASE_URL=ghost)

    for result in (served, listed):
        assert result.returncode == 1
        line = one_line(result)
        assert 'role "gk_no_such_role" does not exist' in line
        assert "create the role or fix the user in DATABASE_URL" in line


async def test_an_unreachable_database_for_an_operator_command_is_one_line() -> None:
    result = await gatekeeper(
        "users", "list", DATABASE_URL=f"postgresql://gk@127.0.0.1:{free_port()}/gk"
    )

    assert result.returncode == 1
    assert "cannot reach Postgres at 127.0.0.1:" in one_line(result)


async def test_a_role_without_the_services_privileges_is_one_line(
    private_postgres: EmbeddedPostgres, redis_url: str
) -> None:
    conn = await asyncpg.connect(private_postgres.url)
    try:
        await conn.execute("CREATE ROLE gk_outsider LOGIN")
    finally:
        await conn.close()
    outsider = private_postgres.url.replace("postgres@", "gk_outsider@", 1)

    result = await gatekeeper("serve", **serving(outsider, redis_url))

    assert result.returncode == 1
    line = one_line(result)
    assert "permission denied for table schema_migrations" in line
    assert "GRANT gatekeeper_app TO <role>" in line


# -- a backend that is down: start not ready, try again ----------------------------------------


@asynccontextmanager
async def running_serve(env: dict[str, str]) -> AsyncIterator[tuple[str, list[str]]]:
    """``gatekeeper serve`` running; (admin URL, its stderr lines so far)."""
    admin_port = free_port()
    env = {**env, "GATEKEEPER_ADMIN__PORT": str(admin_port)}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gatekeeper.cli", "serve",
        cwd=tempfile.gettempdir(), env=_environment(**env),
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    lines: list[str] = []

    async def collect() -> None:
        assert process.stderr is not None
        async for line in process.stderr:
            lines.append(line.decode())

    reader = asyncio.create_task(collect())
    try:
        yield f"http://127.0.0.1:{admin_port}", lines
    finally:
        process.terminate()
        await asyncio.wait_for(process.wait(), 30)
        await reader


async def readyz(admin: str, *, within: float, want: int) -> dict[str, object]:
    """Poll /readyz until it answers ``want``."""
    deadline = asyncio.get_running_loop().time() + within
    async with aiohttp.ClientSession() as session:
        while True:
            try:
                async with session.get(admin + "/readyz") as response:
                    if response.status == want:
                        body: dict[str, object] = await response.json()
                        return body
            except aiohttp.ClientError:
                pass
            assert asyncio.get_running_loop().time() < deadline, f"/readyz never answered {want}"
            await asyncio.sleep(0.1)


async def logged(lines: list[str], text: str, *, within: float) -> str:
    """The first line of ``lines`` containing ``text``, waiting for it to come."""
    deadline = asyncio.get_running_loop().time() + within
    while True:
        found = [line for line in lines if text in line]
        if found:
            return found[0]
        assert asyncio.get_running_loop().time() < deadline, f"never logged {text!r}: {lines}"
        await asyncio.sleep(0.1)


async def test_an_unreachable_database_starts_not_ready_and_is_retried(
    private_postgres: EmbeddedPostgres, redis_url: str
) -> None:
    await asyncio.to_thread(private_postgres.stop)
    env = serving(private_postgres.url, redis_url, GATEKEEPER_LOG_LEVEL="INFO")
    async with running_serve(env) as (admin, stderr):
        not_ready = await readyz(admin, within=30, want=503)
        warned = await logged(stderr, "is unreachable", within=10)
        retried = await logged(stderr, "still unreachable", within=20)

        await asyncio.to_thread(private_postgres.start)
        await readyz(admin, within=60, want=200)
        recovered = await logged(stderr, "reachable now", within=40)

    assert not_ready["status"] == "not_ready"
    assert str(not_ready["checks"]["postgres"]).startswith("unavailable")  # type: ignore[index]
    assert " WARNING gatekeeper.startup: Postgres at 127.0.0.1:" in warned
    assert "starting not ready (/readyz answers 503 until it is reachable)" in warned
    assert " WARNING " in retried
    assert " INFO " in recovered
    assert not any("Traceback" in line for line in stderr)


# -- the documented roles: migrate as the owner, serve as the application role -----------------


async def test_migrate_as_the_owner_and_serve_as_the_application_role(
    private_postgres: EmbeddedPostgres, redis_url: str
) -> None:
    conn = await asyncpg.connect(private_postgres.url)
    try:  # what docs/admin.md asks a DBA to run
        await conn.execute("CREATE ROLE gk_owner LOGIN CREATEROLE")
        await conn.execute("CREATE DATABASE gk_prod OWNER gk_owner")
        await conn.execute("CREATE ROLE gk_service LOGIN IN ROLE gatekeeper_app")
    finally:
        await conn.close()
    server = with_database(private_postgres.url, "gk_prod")
    owner = server.replace("postgres@", "gk_owner@", 1)
    service = server.replace("postgres@", "gk_service@", 1)

    as_service = await gatekeeper("migrate", DATABASE_URL=service)
    as_owner = await gatekeeper("migrate", DATABASE_URL=owner)
    status = await gatekeeper("migrate", "--status", DATABASE_URL=service)

    assert as_service.returncode == 1
    assert "permission denied for schema public" in one_line(as_service)
    assert "run `gatekeeper migrate` as the database's owner role" in as_service.stderr
    assert as_owner.returncode == 0, as_owner.stderr
    assert status.returncode == 0, status.stderr
    assert "up to date" in status.stdout
    async with running_serve(serving(service, redis_url)) as (admin, stderr):
        ready = await readyz(admin, within=30, want=200)
    assert ready["status"] == "ready"
    assert not any("WARNING" in line or "ERROR" in line for line in stderr), stderr


def test_the_sql_directory_is_where_migrate_looks() -> None:
    # The migrate unit runs from the install directory; the files travel with the package.
    from gatekeeper.adapters.migrations import DEFAULT_SQL_DIR

    assert (DEFAULT_SQL_DIR / "0001_create_users_and_api_tokens.sql").is_file()
    assert Path(DEFAULT_SQL_DIR).is_absolute()
