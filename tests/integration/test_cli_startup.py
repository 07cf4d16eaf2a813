"""``gatekeeper`` refuses to start on bad configuration, saying why, before listening."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


async def run_cli(*args: str, env: dict[str, str]) -> tuple[int, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("GATEKEEPER_")}
    base.pop("DATABASE_URL", None)
    base.pop("REDIS_URL", None)
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "gatekeeper.cli",
        *args,
        cwd=ROOT,
        env={**base, **env},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    _, stderr = await asyncio.wait_for(process.communicate(), timeout=30)
    assert process.returncode is not None
    return process.returncode, stderr.decode()


async def test_every_configuration_error_is_reported_at_start_up() -> None:
    code, stderr = await run_cli(
        "serve",
        env={
            "GATEKEEPER_PROXY__PORT": "eighty",
            "GATEKEEPER_PROXY__UPSTREAM_URL": "https://evil.example/path",
            "GATEKEEPER_ADMIN__PROT": "1",
            "DATABASE_URL": "postgresql://user:hunter2@db/gk",
        },
    )
    assert code == 2
    assert "proxy.port" in stderr
    assert "proxy.upstream_url" in stderr
    assert "origin only" in stderr
    assert "admin.prot: unknown setting" in stderr
    assert "hunter2" not in stderr
    assert "Traceback" not in stderr


async def test_serve_without_backends_says_what_is_missing() -> None:
    code, stderr = await run_cli("serve", env={})
    assert code == 1
    assert "database_url and redis_url must be set" in stderr
    assert "Traceback" not in stderr
