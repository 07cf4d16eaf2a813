"""``gatekeeper demo`` from a second terminal: its env file makes the operators' commands (and
check-order, against the paper broker) work with nothing set by hand; a second demo refuses to
start and leaves the first one's Postgres alone."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import sys
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import asyncpg
import pytest

from gatekeeper.cli_demo_env import DEMO_ENV_FILE, read_demo_env, use_demo_env
from gatekeeper.embedded import EmbeddedPostgres, EmbeddedServerError
from tests.fixtures.admin import CliResult
from tests.processes import ROOT, paper_oauth_header

ACCOUNT = "5WT00001"
ORDER = {
    "order-type": "Limit",
    "time-in-force": "Day",
    "price": "150.00",
    "price-effect": "Debit",
    "legs": [
        {"instrument-type": "Equity", "symbol": "AAPL", "action": "Buy to Open", "quantity": 1}
    ],
}


def _clean_environment(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEKEEPER_")}
    env.pop("DATABASE_URL", None)
    env.pop("REDIS_URL", None)
    return {**env, "GATEKEEPER_LOG_LEVEL": "WARNING", **extra}


async def cli(workdir: Path, *args: str, **env: str) -> CliResult:
    """``gatekeeper ARGS`` run from ``workdir`` with no DATABASE_URL or REDIS_URL set."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gatekeeper.cli", *args,
        cwd=workdir, env=_clean_environment(**env),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode is not None
    return CliResult(process.returncode, out.decode(), err.decode())


@dataclass
class Demo:
    process: asyncio.subprocess.Process
    workdir: Path
    banner: str

    def url(self, label: str) -> str:
        found = re.search(rf"^\s+{label}:\s+(\S+)", self.banner, re.MULTILINE)
        assert found is not None, self.banner
        return found[1]


async def _read_banner(process: asyncio.subprocess.Process, stderr: Path) -> str:
    assert process.stdout is not None
    lines: list[str] = []
    async with asyncio.timeout(90):
        while not any("gatekeeper decisions" in line for line in lines):
            line = await process.stdout.readline()
            if not line:
                said = await asyncio.to_thread(stderr.read_text)
                raise AssertionError("the demo ended early:\n" + "".join(lines) + said)
            lines.append(line.decode())
    return "".join(lines)


def _demo_environment(database_url: str, redis_url: str, data_dir: Path) -> dict[str, str]:
    return _clean_environment(
        DATABASE_URL=database_url,
        REDIS_URL=redis_url,
        GATEKEEPER_PROXY__PORT="0",
        GATEKEEPER_ADMIN__PORT="0",
        GATEKEEPER_PAPER__PORT="0",
        GATEKEEPER_PAPER__ACCOUNTS_FILE=str(ROOT / "config" / "paper-accounts.json"),
        GATEKEEPER_EMBEDDED__DATA_DIR=str(data_dir),
    )


@pytest.fixture
async def demo(database_url: str, redis_url: str) -> AsyncIterator[Demo]:
    """``gatekeeper demo`` in a directory of its own (on the test's database and Redis)."""
    with tempfile.TemporaryDirectory(prefix="gk-demo-") as directory:
        workdir = Path(directory)
        stderr = workdir / "demo.stderr"
        with stderr.open("wb") as errors:
            process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "gatekeeper.cli", "demo",
                cwd=workdir, env=_demo_environment(database_url, redis_url, workdir / "var"),
                stdout=asyncio.subprocess.PIPE, stderr=errors,
            )  # fmt: skip
        try:
            yield Demo(process, workdir, await _read_banner(process, stderr))
        finally:
            if process.returncode is None:
                process.send_signal(signal.SIGINT)
                await asyncio.wait_for(process.wait(), timeout=30)


async def test_the_demo_prints_its_backends_and_writes_them_for_other_commands(
    demo: Demo, database_url: str, redis_url: str
) -> None:
    env_file = demo.workdir / DEMO_ENV_FILE
    found = read_demo_env(env_file)

    assert f"DATABASE_URL={database_url}" in demo.banner
    assert f"REDIS_URL={redis_url}" in demo.banner
    assert f"GATEKEEPER_PROXY__UPSTREAM_URL={demo.url('upstream')}" in demo.banner
    assert found == (
        demo.process.pid,
        {
            "DATABASE_URL": database_url,
            "REDIS_URL": redis_url,
            "GATEKEEPER_PROXY__UPSTREAM_URL": demo.url("upstream"),
        },
    )
    assert env_file.stat().st_mode & 0o077 == 0


async def test_a_second_terminal_needs_nothing_set_by_hand(demo: Demo) -> None:
    proxy = demo.url("bots")
    headers = await paper_oauth_header(demo.url("upstream"))
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{proxy}/accounts/{ACCOUNT}/orders", json=ORDER, headers=headers) as sent,
    ):
        assert sent.status == 201, await sent.text()

    shown = await cli(demo.workdir, "protections", "show", ACCOUNT)
    decisions = await cli(demo.workdir, "decisions", ACCOUNT)
    as_json = await cli(demo.workdir, "decisions", ACCOUNT, "--json")

    assert shown.returncode == 0, shown.stderr
    assert f"on account {ACCOUNT}" in shown.stdout
    assert "using DATABASE_URL, REDIS_URL, GATEKEEPER_PROXY__UPSTREAM_URL" in shown.stderr
    assert shown.stderr.count("\n") == 1  # said once
    assert decisions.returncode == 0, decisions.stderr
    assert "Buy to Open 1 AAPL @ 150.00 Debit" in decisions.stdout
    [item] = json.loads(as_json.stdout)
    assert (item["verdict"], item["account_id"]) == ("allow", ACCOUNT)
    assert item["outcome"] == "accepted"


async def test_check_order_next_to_the_demo_asks_the_paper_broker(demo: Demo) -> None:
    authorization = (await paper_oauth_header(demo.url("upstream")))["Authorization"]
    order = json.dumps(
        {"symbol": "AAPL", "quantity": 1000, "order_type": "limit", "action": "buy-to-open",
         "price": 150}
    )  # fmt: skip

    checked = await cli(
        demo.workdir, "check-order", ACCOUNT, order, "--broker-authorization", authorization
    )

    assert "max_single_trade" in checked.stdout, (checked.stdout, checked.stderr)
    assert "api.cert.tastyworks.com" not in checked.stdout + checked.stderr


async def test_a_variable_set_by_hand_wins_over_the_demo(demo: Demo) -> None:
    unreachable = "postgresql://postgres@127.0.0.1:9/nowhere"
    shown = await cli(demo.workdir, "protections", "show", ACCOUNT, DATABASE_URL=unreachable)

    assert shown.returncode == 1
    assert "127.0.0.1:9/nowhere" in shown.stderr
    assert "using REDIS_URL, GATEKEEPER_PROXY__UPSTREAM_URL from" in shown.stderr


async def test_a_second_demo_refuses_in_one_line_and_the_first_keeps_working(
    demo: Demo, database_url: str, redis_url: str
) -> None:
    second = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gatekeeper.cli", "demo",
        cwd=demo.workdir, env=_demo_environment(database_url, redis_url, demo.workdir / "var"),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, err = await asyncio.wait_for(second.communicate(), timeout=60)

    assert second.returncode == 1
    assert err.decode().strip().splitlines() == [
        f"error: another gatekeeper demo is running (pid {demo.process.pid}, data in"
        f" {demo.workdir / 'var'}); use it (commands run from its directory read its"
        f" {DEMO_ENV_FILE}) or stop it with Ctrl-C first"
    ]
    assert demo.process.returncode is None
    assert read_demo_env(demo.workdir / DEMO_ENV_FILE) is not None  # still the first's
    async with (
        aiohttp.ClientSession() as session,
        session.get(demo.url("operators") + "/readyz") as ready,
    ):
        assert ready.status == 200


async def test_the_env_file_goes_with_the_demo(demo: Demo) -> None:
    demo.process.send_signal(signal.SIGINT)
    await asyncio.wait_for(demo.process.wait(), timeout=30)

    assert not (demo.workdir / DEMO_ENV_FILE).exists()


def test_a_file_left_by_a_dead_demo_is_ignored(tmp_path: Path) -> None:
    (tmp_path / "demo.env").write_text("# pid 999999999\nDATABASE_URL=postgresql://x@h/db\n")
    environ: dict[str, str] = {}

    class Err:
        text = ""

        def write(self, text: str) -> int:
            self.text += text
            return len(text)

    err = Err()
    taken = use_demo_env(tmp_path / "demo.env", environ, err)  # type: ignore[arg-type]

    assert taken == []
    assert environ == {}
    assert "is not running" in err.text


async def test_a_postmaster_another_live_process_runs_is_left_alone(
    private_postgres_template: EmbeddedPostgres, server_tmp_path: Path
) -> None:
    directory = server_tmp_path / "pg"
    script = f"""
import sys, time
from pathlib import Path
from gatekeeper.embedded import EmbeddedPostgres
template = EmbeddedPostgres(Path({str(private_postgres_template.directory)!r}))
server = template.clone(Path({str(directory)!r}), durable=False).start()
print(server.pid, server.url, flush=True)
sys.stdin.read()  # until the test closes it
server.stop()
"""
    owner = await asyncio.create_subprocess_exec(
        sys.executable, "-c", script, cwd=ROOT,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert owner.stdout is not None
    assert owner.stdin is not None
    try:
        _, url = (await asyncio.wait_for(owner.stdout.readline(), 60)).decode().split()
        second = EmbeddedPostgres(directory, durable=False)

        with pytest.raises(
            EmbeddedServerError, match=f"belongs to the running process {owner.pid}"
        ):
            await asyncio.to_thread(second.start)

        conn = await asyncpg.connect(url)
        try:
            assert await conn.fetchval("SELECT 1") == 1
        finally:
            await conn.close()
    finally:
        owner.stdin.close()
        await asyncio.wait_for(owner.wait(), 30)
