"""Benchmarks run the real processes (``gatekeeper paper``, ``gatekeeper serve``), as deployed."""

from __future__ import annotations

import asyncio
import os
import socket
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def wait_http(url: str, within: float = 30.0) -> None:
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


@dataclass
class Stack:
    paper_url: str
    proxy_url: str
    admin_url: str


async def _spawn(args: list[str], env: dict[str, str]) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "gatekeeper.cli",
        *args,
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )


@pytest.fixture
async def bench_stack(database_url: str, redis_url: str) -> AsyncIterator[Stack]:
    """The paper broker and the gatekeeper as two separate processes, as deployed."""
    paper_port, proxy_port, admin_port = free_port(), free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEKEEPER_")}
    env.update(
        GATEKEEPER_LOG_LEVEL="WARNING",
        GATEKEEPER_PAPER__PORT=str(paper_port),
        GATEKEEPER_PROXY__PORT=str(proxy_port),
        GATEKEEPER_ADMIN__PORT=str(admin_port),
        GATEKEEPER_PROXY__UPSTREAM_URL=f"http://127.0.0.1:{paper_port}",
        DATABASE_URL=database_url,
        REDIS_URL=redis_url,
    )
    processes = [await _spawn(["paper"], env), await _spawn(["serve"], env)]
    try:
        stack = Stack(
            f"http://127.0.0.1:{paper_port}",
            f"http://127.0.0.1:{proxy_port}",
            f"http://127.0.0.1:{admin_port}",
        )
        await wait_http(stack.paper_url + "/api-quote-tokens")
        await wait_http(stack.admin_url + "/healthz")
        yield stack
    finally:
        for process in processes:
            if process.returncode is None:
                process.terminate()
        for process in processes:
            await process.wait()
