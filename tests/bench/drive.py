"""One round of load: wrk (or the Python load generator when wrk is absent, or for a fixed
number of requests) against one setup, with the CPU each side used.

wrk runs one thread (``-t1``): its event loop in C answers tens of thousands of requests a
second, far above any setup here, so one core's share is enough; the load generator's CPU is
reported next to every figure so a saturated one shows. Requests rotate over a setup's paths
(one account each) from a table formatted once per thread, so the Lua costs one table read
per request. ``done`` prints one machine-readable line.
"""

from __future__ import annotations

import asyncio
import json
import resource
import shutil
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tests.bench.procs import core_busy_seconds, cpu_seconds
from tests.processes import ROOT

WRK = shutil.which("wrk")

WRK_SCRIPT = """
local paths = {{{paths}}}
local method = "{method}"
local body = {body}
local headers = {{{headers}}}
local formatted = {{}}
local turn = 0

init = function(args)
    for i, path in ipairs(paths) do
        formatted[i] = wrk.format(method, path, headers, body)
    end
end

request = function()
    turn = turn % #formatted + 1
    return formatted[turn]
end

done = function(summary, latency, requests)
    local e = summary.errors
    io.write(string.format(
        'BENCH {{"requests": %d, "seconds": %f, "p50_ms": %f, "p99_ms": %f, ' ..
        '"non_2xx": %d, "socket_errors": %d}}\\n',
        summary.requests, summary.duration / 1e6, latency:percentile(50) / 1e3,
        latency:percentile(99) / 1e3, e.status, e.connect + e.read + e.write + e.timeout))
end
"""


def _lua_string(value: str) -> str:
    level = "=" * 4
    if f"]{level}]" in value:
        raise ValueError("unquotable")
    return f"[{level}[{value}]{level}]"


@dataclass(frozen=True)
class Load:
    """What one setup is sent: a method, paths taken in turn, a body, headers."""

    base: str
    method: str
    paths: tuple[str, ...]
    body: bytes | None = None
    headers: tuple[tuple[str, str], ...] = ()


@dataclass
class Shot:
    """One round's figures."""

    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    non_2xx: int
    socket_errors: int
    sut_cpu: float = 0.0
    loadgen_cpu: float = 0.0
    core_busy: dict[int, float] = field(default_factory=dict)
    generator: str = "wrk"
    wall: float = 0.0  # the round's wall-clock time, the generator's start and exit included
    # The Python load generator's figures for each URL: requests, p50_ms, p99_ms, non_2xx,
    # socket_errors (wrk gives none).
    by_url: dict[str, dict[str, float]] = field(default_factory=dict)

    def part(self, url: str) -> Shot:
        """The round's requests to ``url`` alone: their count, latencies and failures; time,
        CPU and busy cores in proportion, so its rate and CPU per request are the round's."""
        own = self.by_url[url]
        share = own["requests"] / self.requests if self.requests else 0.0
        return Shot(
            requests=int(own["requests"]),
            seconds=self.seconds * share,
            p50_ms=own["p50_ms"],
            p99_ms=own["p99_ms"],
            non_2xx=int(own["non_2xx"]),
            socket_errors=int(own["socket_errors"]),
            sut_cpu=self.sut_cpu * share,
            loadgen_cpu=self.loadgen_cpu * share,
            core_busy={core: busy * share for core, busy in self.core_busy.items()},
            generator=self.generator,
            wall=self.wall * share,
        )

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    @property
    def cpu_us(self) -> float:
        """CPU time of the system under test per request, in µs."""
        return self.sut_cpu / self.requests * 1e6 if self.requests else 0.0

    @property
    def loadgen_share(self) -> float:
        """The load generator's CPU as a share of one core over the round."""
        return self.loadgen_cpu / self.wall if self.wall else 0.0

    def other_on(self, core: int) -> float:
        """Busy time of ``core`` not spent by the system under test, as a share of the round
        (with the system under test pinned alone there: other work on the machine)."""
        if not self.wall or core not in self.core_busy:
            return 0.0
        return max(0.0, self.core_busy[core] - self.sut_cpu) / self.wall

    @property
    def busy(self) -> float:
        """How busy the machine's cores were over the round, as a share of all of them."""
        return (
            sum(self.core_busy.values()) / (len(self.core_busy) * self.wall) if self.wall else 0.0
        )


def _cpu(sut: Sequence[int]) -> tuple[float, dict[int, float]]:
    """The system under test's CPU seconds and each core's busy seconds (reads /proc)."""
    return cpu_seconds(sut), core_busy_seconds()


class Driver:
    """Runs rounds; keeps its Lua scripts and request bodies in ``directory``."""

    def __init__(self, directory: Path, *, use_wrk: bool = True) -> None:
        self.directory = directory
        self.wrk = WRK if use_wrk else None
        self._files: dict[Load, tuple[Path, Path | None]] = {}

    def _files_for(self, load: Load) -> tuple[Path, Path | None]:
        if load not in self._files:
            index = len(self._files)
            script = self.directory / f"load-{index}.lua"
            headers = ", ".join(f"[ {_lua_string(k)} ] = {_lua_string(v)}" for k, v in load.headers)
            body = "nil" if load.body is None else _lua_string(load.body.decode())
            script.write_text(
                WRK_SCRIPT.format(
                    paths=", ".join(_lua_string(path) for path in load.paths),
                    method=load.method,
                    body=body,
                    headers=headers,
                )
            )
            body_file = None
            if load.body is not None:
                body_file = self.directory / f"body-{index}.json"
                body_file.write_bytes(load.body)
            self._files[load] = (script, body_file)
        return self._files[load]

    def _command(
        self, load: Load, connections: int, seconds: int | None, total: int | None
    ) -> tuple[list[str], str]:
        script, body_file = self._files_for(load)
        if self.wrk is not None and total is None:
            assert seconds is not None
            return [
                self.wrk, "-t1", f"-c{connections}", f"-d{seconds}s", "--timeout", "10s",
                "-s", str(script), load.base + load.paths[0],
            ], "wrk"  # fmt: skip
        command = [sys.executable, "-m", "tests.bench.loadgen", "--method", load.method,
                   "--connections", str(connections)]  # fmt: skip
        command += ["--requests", str(total)] if total else ["--seconds", str(seconds)]
        if body_file is not None:
            command += ["--body-file", str(body_file)]
        for name, value in load.headers:
            command += ["--header", f"{name}: {value}"]
        return command + [load.base + path for path in load.paths], "python"

    async def shoot(
        self,
        load: Load,
        connections: int,
        *,
        seconds: int | None = None,
        total: int | None = None,
        core: int | None = None,
        sut: Sequence[int] = (),
    ) -> Shot:
        """One round: ``seconds`` long (or ``total`` requests), the generator on ``core``
        (any when None); ``sut``: the pids whose CPU is the system under test's."""
        command, generator = self._command(load, connections, seconds, total)
        if core is not None:
            command = ["taskset", "-c", str(core), *command]
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.monotonic()
        sut_before, busy_before = await asyncio.to_thread(_cpu, sut)
        process = await asyncio.create_subprocess_exec(
            *command, cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
        )
        out, err = await process.communicate()
        sut_after, busy_after = await asyncio.to_thread(_cpu, sut)
        wall = time.monotonic() - started
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        line = next((ln for ln in out.decode().splitlines() if ln.startswith("BENCH ")), None)
        if process.returncode != 0 or line is None:
            raise RuntimeError(
                f"{generator} failed ({process.returncode}): {err.decode()[-500:]}"
                f" {out.decode()[-500:]}"
            )
        figures = json.loads(line.removeprefix("BENCH "))
        return Shot(
            **figures,
            sut_cpu=sut_after - sut_before,
            loadgen_cpu=(after.ru_utime + after.ru_stime) - (children.ru_utime + children.ru_stime),
            core_busy={c: busy_after[c] - busy_before.get(c, 0.0) for c in busy_after},
            generator=generator,
            wall=wall,
        )
