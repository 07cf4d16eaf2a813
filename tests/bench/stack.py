"""Every process of the comparison, started once for the whole run.

- the static upstream (``static_upstream.py``): TastyTrade's answers, precomputed;
- nginx in front of it, and nginx in front of two gatekeeper replicas (both skipped, with
  the reason, when nginx is absent);
- the minimal aiohttp proxy and the prototype (``minimal_proxy.py``);
- the gatekeeper (``gatekeeper serve``, as deployed; with ``stages``, under
  ``stage_times.py``'s counters) and a second replica sharing its Postgres and Redis.

Postgres and Redis are private to the run (the test fixtures' embedded servers), so they can
be pinned to a core without touching the machine's shared servers.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

from build_support.core_build import build_copy, missing_toolchain
from tests.bench.procs import Service, nginx_missing, spawn, spawn_module, start_nginx, stop
from tests.processes import base_environment, free_port, wait_http

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Stack:
    directory: Path
    database_url: str
    redis_url: str
    backends: list[Service]
    urls: dict[str, str] = field(default_factory=dict)
    services: dict[str, Service] = field(default_factory=dict)
    nginx_skipped: str | None = None
    # The gatekeeper runs under stage_times.py's counters, which it writes here on SIGUSR1.
    stage_figures: Path | None = None
    # BENCH_CORE=compiled: a compiled build of the checkout (build_support.core_build) that
    # both replicas import before the checkout.
    compiled_core: Path | None = None

    def pids(self, *names: str) -> list[int]:
        return [pid for name in names if name in self.services for pid in self.services[name].pids]

    def all_services(self) -> list[Service]:
        return [*self.backends, *self.services.values()]


async def _gatekeeper(stack: Stack, name: str) -> None:
    proxy_port, admin_port = free_port(), free_port()
    env = base_environment(stack.database_url, stack.redis_url)
    env.update(
        GATEKEEPER_PROXY__PORT=str(proxy_port),
        GATEKEEPER_ADMIN__PORT=str(admin_port),
        GATEKEEPER_PROXY__UPSTREAM_URL=stack.urls["upstream"],
        # replicas share credential confirmations (docs/order-path.md, "Credentials")
        GATEKEEPER_RISK__CREDENTIAL_DIGEST_KEY="bench-digest-key-0123456789",
    )
    interpreter = [sys.executable]
    if stack.compiled_core is not None:
        # -P: the working directory (the checkout) must not come before the build
        interpreter = [sys.executable, "-P"]
        env["PYTHONPATH"] = os.pathsep.join((str(stack.compiled_core), str(ROOT)))
    command = [*interpreter, "-m", "gatekeeper.cli", "serve"]
    if name == "gatekeeper" and stack.stage_figures is not None:
        command = [*interpreter, "-m", "tests.bench.stage_times",
                   "--out", str(stack.stage_figures), "serve"]  # fmt: skip
    await _check_core(interpreter, env, compiled=stack.compiled_core is not None)
    stack.services[name] = await spawn(name, command, env, log=stack.directory / f"{name}.log")
    stack.urls[name] = f"http://127.0.0.1:{proxy_port}"
    await wait_http(f"http://127.0.0.1:{admin_port}/healthz")


async def _check_core(interpreter: list[str], env: dict[str, str], *, compiled: bool) -> None:
    """That the gatekeeper started with ``interpreter`` and ``env`` imports the risk core
    asked for (else the run would compare a core with itself)."""
    probe = await asyncio.create_subprocess_exec(
        *interpreter, "-c", "import gatekeeper.core as c; print(c.COMPILED)",
        env=env, cwd=ROOT, stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, _ = await probe.communicate()
    if out.decode().strip() != str(compiled):
        raise RuntimeError(
            f"the gatekeeper would not import the {'compiled' if compiled else 'pure'} core"
        )


def build_compiled_core(directory: Path) -> Path:
    """BENCH_CORE=compiled: the checkout built with its risk core compiled, as
    ``GATEKEEPER_COMPILE=1 pip install .`` builds it, with the migrations beside it."""
    reason = missing_toolchain()
    if reason is not None:
        raise RuntimeError(f"BENCH_CORE=compiled: the compiled core cannot be built here: {reason}")
    build = build_copy(ROOT, directory / "compiled-core")
    (build / "sql").symlink_to(ROOT / "sql")
    return build


@asynccontextmanager
async def running_stack(
    directory: Path,
    database_url: str,
    redis_url: str,
    backends: list[Service],
    *,
    stages: bool = False,
    compiled_core: Path | None = None,
) -> AsyncIterator[Stack]:
    stack = Stack(directory, database_url, redis_url, backends, compiled_core=compiled_core)
    if stages:
        stack.stage_figures = directory / "stages.json"
    try:
        port = free_port()
        stack.services["upstream"] = await spawn_module(
            "upstream", "tests.bench.static_upstream", "--port", str(port),
            log=directory / "upstream.log",
        )  # fmt: skip
        stack.urls["upstream"] = upstream = f"http://127.0.0.1:{port}"
        await wait_http(upstream + "/__static/unknown")
        for name, extra in (
            ("minimal", []),
            ("prototype", ["--prototype", "--database-url", database_url,
                           "--redis-url", redis_url]),
        ):  # fmt: skip
            port = free_port()
            stack.services[name] = await spawn_module(
                name, "tests.bench.minimal_proxy", "--port", str(port), "--upstream", upstream,
                *extra, log=directory / f"{name}.log",
            )  # fmt: skip
            stack.urls[name] = f"http://127.0.0.1:{port}"
        await _gatekeeper(stack, "gatekeeper")
        await _gatekeeper(stack, "gatekeeper-2")
        for name in ("minimal", "prototype"):
            await wait_http(stack.urls[name] + "/__static/unknown")
        stack.nginx_skipped = nginx_missing()
        if stack.nginx_skipped is None:
            for name, targets in (
                ("nginx", [stack.urls["upstream"]]),
                ("nginx-replicas", [stack.urls["gatekeeper"], stack.urls["gatekeeper-2"]]),
            ):
                port = free_port()
                ports = [int(url.rsplit(":", 1)[1]) for url in targets]
                try:
                    stack.services[name] = await start_nginx(name, directory / name, port, ports)
                except RuntimeError as error:  # its setups are skipped, with the reason
                    stack.nginx_skipped = str(error)
                    break
                stack.urls[name] = f"http://127.0.0.1:{port}"
        yield stack
    finally:
        await stop(stack.services.values())


def describe_machine() -> str:
    cores = os.cpu_count()
    load = Path("/proc/loadavg").read_text().split()[:3]
    return f"{cores} cores, load average {' '.join(load)}"
