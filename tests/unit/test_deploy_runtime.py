"""The deployment, run for real where Docker cannot run: the image's command line (its
ENTRYPOINT, CMD and ENV from the Dockerfile) against a real Postgres and Redis, answering
/healthz and /readyz and passing the image's own HEALTHCHECK; and the dashboards' and alert
rules' metric names among those a running gatekeeper serves on /metrics."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import sys
from pathlib import Path

import aiohttp

from tests.fixtures.gate import Gate
from tests.fixtures.paper import PaperBroker
from tests.processes import ROOT, base_environment, free_port, free_ports, stop_all, wait_http
from tests.unit.test_deploy import dashboard_metric_names
from tests.unit.test_deploy_files import read_dockerfile

READY_WITHIN_SECONDS = 30.0


def image_environment(database_url: str, redis_url: str, upstream: str) -> dict[str, str]:
    """The container's environment: the image's ENV, our venv standing in for its
    /opt/gatekeeper, the backends and the upstream as compose passes them, free ports."""
    env = base_environment(database_url, redis_url)
    image = read_dockerfile()
    env.update({key: value for key, value in image.env.items() if key != "PATH"})
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    env["GATEKEEPER_PROXY__UPSTREAM_URL"] = upstream
    proxy_port, admin_port = free_ports(2)
    env["GATEKEEPER_PROXY__PORT"] = str(proxy_port)
    env["GATEKEEPER_ADMIN__PORT"] = str(admin_port)
    return env


async def run_healthcheck(env: dict[str, str]) -> int:
    command = read_dockerfile().healthcheck
    process = await asyncio.create_subprocess_exec(
        *command, cwd=ROOT, env=env, stdout=asyncio.subprocess.DEVNULL
    )
    return await asyncio.wait_for(process.wait(), timeout=30)


async def wait_ready(url: str) -> int:
    """Poll /readyz until it says 200 (or the deadline passes); its last status."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + READY_WITHIN_SECONDS
    async with aiohttp.ClientSession() as session:
        while True:
            async with session.get(url) as response:
                if response.status == 200 or loop.time() > deadline:
                    return response.status
            await asyncio.sleep(0.1)


async def test_image_command_serves_health_and_passes_its_healthcheck(
    database_url: str, redis_url: str, paper_broker: PaperBroker
) -> None:
    image = read_dockerfile()
    # The image's working directory holds what a clone holds: config/, sql/ (the migrations
    # `gatekeeper migrate` and /readyz read) and the package.
    assert image.workdir == "/app"
    env = image_environment(database_url, redis_url, paper_broker.url)
    executable = shutil.which(image.command[0], path=env["PATH"])
    assert executable is not None, f"{image.command[0]} is not installed in this venv"
    process = await asyncio.create_subprocess_exec(
        executable,
        *image.command[1:],
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        admin = f"http://127.0.0.1:{env['GATEKEEPER_ADMIN__PORT']}"
        await wait_http(admin + "/healthz", within=READY_WITHIN_SECONDS, process=process)
        async with aiohttp.ClientSession() as session, session.get(admin + "/healthz") as health:
            assert health.status == 200
        assert await wait_ready(admin + "/readyz") == 200
        assert await run_healthcheck(env) == 0
        # Pointed at a port where nothing listens, the healthcheck fails: it does check.
        assert await run_healthcheck({**env, "GATEKEEPER_ADMIN__PORT": str(free_port())}) != 0
        # The proxy listener is up too, on every interface (GATEKEEPER_PROXY__HOST=0.0.0.0).
        proxy = f"http://127.0.0.1:{env['GATEKEEPER_PROXY__PORT']}"
        async with aiohttp.ClientSession() as session, session.get(proxy + "/") as response:
            assert response.status < 500
    finally:
        await stop_all([process])
    assert process.returncode == 0, "SIGTERM (docker stop) ends it cleanly"


def scraped_names(exposition: str) -> set[str]:
    """Metric names in a Prometheus text exposition: declared families and samples."""
    names = set(re.findall(r"^# TYPE (\w+) ", exposition, flags=re.MULTILINE))
    names |= set(re.findall(r"^(\w+)[{ ]", exposition, flags=re.MULTILINE))
    return {re.sub(r"_(bucket|sum|count)$", "", name) for name in names}


async def test_dashboards_and_alerts_query_metrics_a_running_gatekeeper_serves(
    gatekeeper: Gate,
) -> None:
    async with (
        aiohttp.ClientSession() as session,
        session.get(gatekeeper.admin_url + "/metrics") as response,
    ):
        assert response.status == 200
        served = scraped_names(await response.text())
    for file, names in dashboard_metric_names().items():
        assert names, file
        assert names <= served, f"{file}: {sorted(names - served)}"
    rules = (ROOT / "deploy" / "prometheus" / "alerts.yml").read_text()
    used = set(re.findall(r"\bgatekeeper_[a-z_]+", rules))
    assert used <= served, sorted(used - served)
