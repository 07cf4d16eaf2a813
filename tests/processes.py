"""Running the real ``gatekeeper`` processes from tests and benchmarks, as they are deployed."""

from __future__ import annotations

import asyncio
import os
import socket
import sys
from collections.abc import Iterable
from pathlib import Path

import aiohttp

from tests.fixtures.paper import paper_seed

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def base_environment(database_url: str, redis_url: str) -> dict[str, str]:
    """This process's environment without GATEKEEPER_* settings, pointed at the backends."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEKEEPER_")}
    env.update(GATEKEEPER_LOG_LEVEL="WARNING", DATABASE_URL=database_url, REDIS_URL=redis_url)
    return env


async def spawn_cli(args: list[str], env: dict[str, str]) -> asyncio.subprocess.Process:
    """``gatekeeper <args>`` as a child process (output discarded)."""
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gatekeeper.cli", *args,
        cwd=ROOT, env=env,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip


async def stop_all(processes: Iterable[asyncio.subprocess.Process]) -> None:
    running = [process for process in processes if process.returncode is None]
    for process in running:
        process.terminate()
    for process in running:
        try:
            await asyncio.wait_for(process.wait(), 15)
        except TimeoutError:  # a serve stuck in shutdown (see issue notes): do not hang the test
            process.kill()
            await process.wait()


async def wait_http(url: str, within: float = 30.0) -> None:
    """Wait until ``url`` answers with anything below 500."""
    deadline = asyncio.get_running_loop().time() + within
    async with aiohttp.ClientSession() as session:
        while True:
            try:
                async with session.get(url) as response:
                    if response.status < 500:
                        return
            except aiohttp.ClientError:
                pass
            if asyncio.get_running_loop().time() > deadline:
                raise TimeoutError(f"{url} did not come up")
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
