"""The test harness's process helpers: distinct ports, and a child that dies before it answers
fails the wait at once with what it wrote (not a bare timeout 30 s later)."""

from __future__ import annotations

import socket

import pytest

from tests.processes import base_environment, free_ports, spawn_cli, stop_all, wait_http


def test_free_ports_are_distinct_and_bindable() -> None:
    ports = free_ports(20)
    assert len(set(ports)) == 20
    for port in ports:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", port))


async def test_a_child_that_exits_fails_the_wait_with_its_stderr() -> None:
    (admin_port,) = free_ports(1)
    env = base_environment("postgresql://127.0.0.1:1/none", "redis://127.0.0.1:1/0")
    env["GATEKEEPER_ADMIN__PORT"] = "not-a-port"
    process = await spawn_cli(["serve"], env)
    try:
        with pytest.raises(RuntimeError, match=r"exited with [1-9][\s\S]*admin\.port"):
            await wait_http(f"http://127.0.0.1:{admin_port}/healthz", within=60, process=process)
    finally:
        await stop_all([process])
