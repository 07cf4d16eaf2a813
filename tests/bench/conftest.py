"""Benchmarks run the real processes (``gatekeeper paper``, ``gatekeeper serve``), as deployed."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest

from tests.processes import base_environment, free_port, spawn_cli, stop_all, wait_http


@dataclass
class Stack:
    paper_url: str
    proxy_url: str
    admin_url: str


@pytest.fixture
async def bench_stack(database_url: str, redis_url: str) -> AsyncIterator[Stack]:
    """The paper broker and the gatekeeper as two separate processes, as deployed."""
    paper_port, proxy_port, admin_port = free_port(), free_port(), free_port()
    env = base_environment(database_url, redis_url)
    env.update(
        GATEKEEPER_PAPER__PORT=str(paper_port),
        GATEKEEPER_PROXY__PORT=str(proxy_port),
        GATEKEEPER_ADMIN__PORT=str(admin_port),
        GATEKEEPER_PROXY__UPSTREAM_URL=f"http://127.0.0.1:{paper_port}",
    )
    processes = [await spawn_cli(["paper"], env), await spawn_cli(["serve"], env)]
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
        await stop_all(processes)
