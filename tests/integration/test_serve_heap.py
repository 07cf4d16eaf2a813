"""``gatekeeper serve`` settles its heap once it listens (gatekeeper.web.server.settle_heap):
what start-up built is frozen out of the cyclic collector's reach, and young collections are
rarer, so no full collection pauses the event loop for tens of milliseconds under load."""

from __future__ import annotations

import asyncio
import json
import sys

from tests.processes import ROOT, base_environment, free_ports

# serve() in a child process of its own (the collector's state is per process); it reports
# the collector's state once the heap is frozen, then stops.
_CHILD = """
import asyncio, gc, json
from gatekeeper.settings import Settings
from gatekeeper.web.server import serve

async def main():
    stop = asyncio.Event()
    before = gc.get_freeze_count()
    task = asyncio.ensure_future(serve(Settings(), stop))
    for _ in range(600):
        if gc.get_freeze_count() > 0 or task.done():
            break
        await asyncio.sleep(0.05)
    print(json.dumps({"before": before, "frozen": gc.get_freeze_count(),
                      "threshold": gc.get_threshold()}))
    stop.set()
    await task

asyncio.run(main())
"""


async def test_serve_freezes_what_start_up_built_and_collects_young_objects_rarely(
    database_url: str, redis_url: str
) -> None:
    env = base_environment(database_url, redis_url)
    proxy_port, admin_port = free_ports(2)
    env["GATEKEEPER_PROXY__PORT"] = str(proxy_port)
    env["GATEKEEPER_ADMIN__PORT"] = str(admin_port)
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", _CHILD, cwd=ROOT, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode == 0, stderr.decode()[-2000:]
    state = json.loads(stdout.decode().strip().splitlines()[-1])
    assert state["before"] == 0
    # everything start-up left: modules, settings, pools, both apps (tens of thousands)
    assert state["frozen"] > 10_000
    assert state["threshold"][0] == 10_000
