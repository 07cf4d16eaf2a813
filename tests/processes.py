"""Running the real ``gatekeeper`` processes from tests and benchmarks, as they are deployed."""

from __future__ import annotations

import asyncio
import os
import socket
import sys
import tempfile
from collections.abc import Iterable
from contextlib import ExitStack
from pathlib import Path

import aiohttp

from tests.fixtures.paper import paper_seed

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    return free_ports(1)[0]


def free_ports(count: int) -> list[int]:
    """``count`` distinct free ports: all held at once while chosen, so two never coincide
    (the kernel may hand a just-released port out again)."""
    with ExitStack() as stack:
        ports = []
        for _ in range(count):
            sock = stack.enter_context(socket.socket())
            sock.bind(("127.0.0.1", 0))
            ports.append(int(sock.getsockname()[1]))
        return ports


def base_environment(database_url: str, redis_url: str) -> dict[str, str]:
    """This process's environment without GATEKEEPER_* settings, pointed at the backends."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEKEEPER_")}
    env.update(GATEKEEPER_LOG_LEVEL="WARNING", DATABASE_URL=database_url, REDIS_URL=redis_url)
    return env


async def spawn_cli(args: list[str], env: dict[str, str]) -> asyncio.subprocess.Process:
    """``gatekeeper <args>`` as a child process; its stderr goes to a temporary file that
    ``wait_http`` shows if the child dies before it answers."""
    with tempfile.NamedTemporaryFile(
        prefix="gatekeeper-child-", suffix=".log", delete=False
    ) as log:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "gatekeeper.cli", *args,
            cwd=ROOT, env=env, stdout=asyncio.subprocess.DEVNULL, stderr=log,
        )  # fmt: skip
    _child_logs[process.pid] = Path(log.name)
    return process


_child_logs: dict[int, Path] = {}


def child_log(process: asyncio.subprocess.Process) -> str:
    """What a child started by ``spawn_cli`` wrote to stderr (its last 4,000 characters)."""
    path = _child_logs.get(process.pid)
    return _tail(path) if path is not None else ""


def _tail(path: Path) -> str:
    return path.read_text(errors="replace")[-4000:]


async def stop_all(processes: Iterable[asyncio.subprocess.Process]) -> None:
    processes = list(processes)
    running = [process for process in processes if process.returncode is None]
    for process in running:
        process.terminate()
    for process in running:
        try:
            await asyncio.wait_for(process.wait(), 15)
        except TimeoutError:  # a serve stuck in shutdown: do not hang the test, show it
            process.kill()
            await process.wait()
            sys.stderr.write(f"pid {process.pid} ignored SIGTERM for 15 s:\n{child_log(process)}")
    for process in processes:
        path = _child_logs.pop(process.pid, None)
        if path is not None:
            path.unlink(missing_ok=True)


async def wait_http(
    url: str,
    within: float = 30.0,
    process: asyncio.subprocess.Process | None = None,
    log: Path | None = None,
) -> None:
    """Wait until ``url`` answers with anything below 500. With the ``process`` that should
    answer, fail at once if it exits, with what it wrote (``log``, else its ``spawn_cli`` log)."""
    deadline = asyncio.get_running_loop().time() + within
    async with aiohttp.ClientSession() as session:
        while True:
            try:
                async with session.get(url) as response:
                    if response.status < 500:
                        return
            except aiohttp.ClientError:
                pass
            if process is not None and process.returncode is not None:
                output = _tail(log) if log else child_log(process)
                raise RuntimeError(
                    f"the process for {url} exited with {process.returncode}:\n{output}"
                )
            if asyncio.get_running_loop().time() > deadline:
                state = "" if process is None else f" (pid {process.pid} still running)"
                raise TimeoutError(f"{url} did not come up within {within} s{state}")
            await asyncio.sleep(0.1)


async def paper_oauth_header(paper_url: str) -> dict[str, str]:
    """``Authorization: Bearer …`` for the paper seed's first user, over OAuth."""
    client = paper_seed().users[0].oauth_clients[0]
    body = {
        "grant_type": "refresh_token",
        "refresh_token": client.refresh_token,
        "client_secret": client.client_secret,
    }
    async with (
        aiohttp.ClientSession() as session,
        session.post(paper_url + "/oauth/token", json=body) as response,
    ):
        token = (await response.json())["access_token"]
    return {"Authorization": f"Bearer {token}"}
