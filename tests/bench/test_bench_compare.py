"""Issue 12's comparison: Gatekeeper beside a bare proxy, nginx and a prototype of its design,
in one run, interleaved, with one met / not met line per target.

Run: .venv/bin/pytest tests/bench/test_bench_compare.py -m bench -s
     (5 to 10 minutes on 2 cores; the issue's 5-second rounds: BENCH_SECONDS=5, about 20)

Setups (``setups.py``): direct to a static upstream (``static_upstream.py``), nginx as a
reverse proxy, a minimal aiohttp proxy and the prototype (``minimal_proxy.py``), Gatekeeper
pass-through GET, allowed order (1 share, warm account), rejected order, dry-run, and two
Gatekeeper replicas behind nginx; then the growth series: an allowed order's p50 with 0,
1,000 and 5,000 decisions already recorded today for the account (copies of its first one,
then settled: see ``settle``).

Each round runs every setup at 1 and 16 connections, pinned (the system under test alone on
core 0; wrk, the upstream, Postgres and Redis on core 1) and unpinned; rounds repeat, so
setups interleave and a burst of other work on the machine hits them all alike. Medians of
the rounds are printed: requests/s, p50, p99, CPU µs per request of the system under test
(``/proc/<pid>/stat``), the load generator's CPU and how busy both cores were; the ratios;
the verdicts; and a table for the README. Asserts only correctness: every answer as expected
(201, 422 risk_check_failed, 200), no socket error, nothing asked of the upstream it lacks.

Knobs (environment): BENCH_SECONDS (1; whole seconds per round), BENCH_ROUNDS (3),
BENCH_CONNECTIONS ("1,16"), BENCH_MODES ("pinned,unpinned"), BENCH_GROWTH ("0,1000,5000"),
BENCH_GROWTH_ORDERS (150 orders per level per growth round, sent by the Python load
generator so the count is exact, the levels' accounts in turn), BENCH_ONLY (setup keys,
comma-separated: direct_get, gk_allowed, …; "none" for the growth series alone),
BENCH_LOADGEN ("wrk", or "python" to force the fallback),
BENCH_DURABLE (0: Postgres without fsync and synchronous commit, as the test suite's private
servers, so commits cost CPU and a round trip but not the shared disk's flush, which other
work on the machine makes noisy; 1: with them, as deployed),
BENCH_CORE ("pure"; "compiled": both Gatekeeper replicas run the risk core compiled with mypyc,
built for the run as ``GATEKEEPER_COMPILE=1 pip install .`` builds it, about 40 s),
BENCH_REPORT (a file to write the report to as well), BENCH_PROFILE (a directory: py-spy, when
installed, samples the gatekeeper during each of its rounds into one collapsed-stack file
per round), BENCH_PG_STATS (1: after each round that uses Postgres, the statements it spent
the most time on, per request: ``pg_stats.py``), BENCH_STAGES (1: the gatekeeper runs under
``stage_times.py``'s counters and each of its rounds prints the CPU per request of the order
path's stages; they cost about a microsecond per stage call).

Needs: Linux, 2+ cores, ``wrk`` (Debian package; else the Python load generator, which may
be the bottleneck, with a printed note), ``nginx`` at /usr/sbin/nginx (else its setups are
skipped with the reason). Postgres and Redis are private to the run (embedded servers).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
from collections import defaultdict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import pytest

from gatekeeper.embedded import EmbeddedRedis
from tests.bench import pg_stats, stage_times
from tests.bench.accounts import (
    AccountNames,
    decisions_today,
    protect,
    record_history,
    vacuum_ledger,
)
from tests.bench.drive import WRK, Driver, Shot
from tests.bench.procs import ALL_CORES, Service, process_table, set_affinity
from tests.bench.report import Cell, Report
from tests.bench.setups import GROWTH, SETUPS, Setup, warm_and_check
from tests.bench.stack import Stack, build_compiled_core, describe_machine, running_stack
from tests.fixtures.infra import PostgresFactory


def _env(name: str, default: str) -> str:
    return os.environ.get(name, "").strip() or default


SECONDS = int(_env("BENCH_SECONDS", "1"))
ROUNDS = int(_env("BENCH_ROUNDS", "3"))
CONNECTIONS = tuple(int(c) for c in _env("BENCH_CONNECTIONS", "1,16").split(","))
MODES = tuple(_env("BENCH_MODES", "pinned,unpinned").split(","))
GROWTH_LEVELS = tuple(int(n) for n in _env("BENCH_GROWTH", "0,1000,5000").split(",") if n)
GROWTH_ORDERS = int(_env("BENCH_GROWTH_ORDERS", "150"))
ONLY = {key for key in _env("BENCH_ONLY", "").split(",") if key}
USE_WRK = _env("BENCH_LOADGEN", "wrk") != "python"
DURABLE = _env("BENCH_DURABLE", "0") == "1"
PG_STATS = _env("BENCH_PG_STATS", "0") == "1"
PROFILE = _env("BENCH_PROFILE", "")
STAGES = _env("BENCH_STAGES", "0") == "1"
CORE = _env("BENCH_CORE", "pure")
SUT_CORE, OTHER_CORE = 0, 1


class Pinning:
    """Moves every process of the run between the pinned and unpinned layouts."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack

    async def apply(self, mode: str, sut: tuple[str, ...]) -> int | None:
        """Lay the processes out for ``mode``; the load generator's core (None: any).
        Reading /proc takes a while on a busy machine: off the event loop."""
        await asyncio.to_thread(self._apply, mode == "pinned", sut)
        return OTHER_CORE if mode == "pinned" else None

    def _apply(self, pinned: bool, sut: tuple[str, ...]) -> None:
        _self_affinity({OTHER_CORE} if pinned else ALL_CORES)
        table = process_table()
        for service in self.stack.all_services():
            if pinned:
                cores = {SUT_CORE} if service.name in sut else {OTHER_CORE}
                set_affinity(service.pids, cores, table)
            else:
                set_affinity(service.pids, ALL_CORES, table)


def _self_affinity(cores: set[int]) -> None:
    """This process's threads only (not its children: they are laid out one by one)."""
    for tid in os.listdir("/proc/self/task"):
        os.sched_setaffinity(int(tid), cores)


def _header(driver: Driver, stack: Stack, wrk: str) -> list[str]:
    generator = (f"{wrk}, -t1" if driver.wrk
                 else "the Python load generator (tests/bench/loadgen.py)")  # fmt: skip
    durability = "durable: fsync on" if DURABLE else "fsync and synchronous commit off"
    lines = [
        "",
        f"== Gatekeeper comparison, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC,"
        f" {describe_machine()} ==",
        f"medians of {ROUNDS} interleaved rounds of {SECONDS} s; connections {CONNECTIONS};"
        f" modes {', '.join(MODES)}; load: {generator}",
        "pinned: system under test alone on core 0; load generator, static upstream, Postgres"
        " and Redis on core 1. unpinned: every process may use every core.",
        f"Postgres (private, {durability}) and Redis (private), shared by the gatekeeper"
        " and the prototype.",
        f"Gatekeeper's risk core: {CORE} (BENCH_CORE=compiled: built with mypyc, as"
        " GATEKEEPER_COMPILE=1 pip install . builds it).",
        "CPU µs/req: the system under test's CPU time (all its processes) per request; gen CPU:"
        " the load generator's share of one core; busy: both cores' busy share (other work"
        " on the machine included); c0 other (pinned): core 0's busy share not spent by the"
        " system under test, i.e. other work on its core; bad: answers not as expected +"
        " socket errors.",
    ]
    if not driver.wrk:
        lines.append(
            "NOTE: wrk is absent (or BENCH_LOADGEN=python): the Python load generator runs in"
            " one process and may be what limits the fastest setups (see gen CPU)."
        )
    if stack.nginx_skipped:
        lines.append(f"NOTE: nginx setups skipped: {stack.nginx_skipped}")
    return lines


def _log_tails(directory: Path, size: int = 3000) -> str:
    """The end of each process's log (the run's directory is removed after it)."""
    parts = []
    for log in sorted(directory.rglob("*.log")):
        text = log.read_text(errors="replace")[-size:]
        if text.strip():
            parts.append(f"--- {log.relative_to(directory)} ---\n{text}")
    return "\n".join(parts)


async def _unknown_upstream_paths(stack: Stack) -> dict[str, int]:
    async with (
        aiohttp.ClientSession() as session,
        session.get(stack.urls["upstream"] + "/__static/unknown") as answer,
    ):
        unknown: dict[str, int] = await answer.json()
        return unknown


@pytest.mark.bench
@pytest.mark.timeout(4 * 3600)
async def test_bench_compare(
    private_postgres_factory: PostgresFactory, private_redis: EmbeddedRedis, server_tmp_path: Path
) -> None:
    if len(ALL_CORES) < 2 and "pinned" in MODES:
        pytest.skip("pinning needs 2 cores")
    options = pg_stats.OPTIONS if PG_STATS else None
    postgres = await asyncio.to_thread(private_postgres_factory, durable=DURABLE, options=options)
    assert postgres.pid is not None
    assert private_redis.pid is not None
    backends = [Service("postgres", [postgres.pid]), Service("redis", [private_redis.pid])]
    directory = server_tmp_path / "bench"
    directory.mkdir()
    if CORE not in ("pure", "compiled"):
        pytest.fail(f"BENCH_CORE is {CORE!r}: pure or compiled")
    compiled = None
    if CORE == "compiled":
        compiled = await asyncio.to_thread(build_compiled_core, directory)
    async with running_stack(
        directory, postgres.url, private_redis.url, backends, stages=STAGES, compiled_core=compiled
    ) as stack:
        try:
            report = await _run(stack, Driver(directory, use_wrk=USE_WRK))
        except Exception:
            print(await asyncio.to_thread(_log_tails, directory))
            raise
        finally:
            _self_affinity(ALL_CORES)
        unknown = await _unknown_upstream_paths(stack)
        bad = {cell: m.bad for cell, m in report.cells.items() if m.bad}
        bad |= {("growth", md, level): m.bad for (level, md), m in report.growth.items() if m.bad}
        if bad or unknown:
            print(await asyncio.to_thread(_log_tails, directory))
    assert not bad, f"answers not as expected: {bad}"
    assert not unknown, f"the gatekeeper asked the static upstream for what it lacks: {unknown}"


async def settle(base: str, account: str, database_url: str) -> None:
    """What a real day's decisions are by the time the next order comes, for the copies
    ``record_history`` wrote at once: answered so long ago that the account's state, fetched
    since, shows them (the copies are all "just answered" for a moment: the locked read would
    list them all as orders that may be in flight), and vacuumed and analyzed, as autovacuum
    does after every thousand rows (sql/0030). Done for every level alike, 0 included."""
    for _ in range(2):
        await asyncio.sleep(1.0)  # > refresh_after_forward_seconds: the next order refreshes
        await warm_and_check(base, GROWTH, (account,))
    await vacuum_ledger(database_url)


async def _run(stack: Stack, driver: Driver) -> Report:
    skipped = {}
    setups: list[Setup] = []
    for setup in SETUPS:
        if ONLY and setup.key not in ONLY:
            continue
        if setup.service not in stack.urls:
            skipped[setup.key] = stack.nginx_skipped or f"{setup.service} not running"
            continue
        setups.append(setup)
    header = _header(driver, stack, await asyncio.to_thread(wrk_version))
    print("\n".join(header), flush=True)
    names = AccountNames()
    plan: dict[tuple[str, int, str, int], tuple[str, ...]] = {}
    for setup in setups:
        for index in range(ROUNDS + 1):  # round 0: the unrecorded warm-up
            for mode in MODES:
                for connections in CONNECTIONS:
                    plan[setup.key, index, mode, connections] = names.take(setup.accounts)
    growth_levels = GROWTH_LEVELS if not ONLY or "none" in ONLY or "gk_growth" in ONLY else ()
    growth_plan = {
        (level, index, mode): names.take(1)
        for level in growth_levels
        for index in range(1, ROUNDS + 1)
        for mode in MODES
    }
    await protect(stack.database_url, tuple(a for accounts in plan.values() for a in accounts)
                  + tuple(a for accounts in growth_plan.values() for a in accounts))  # fmt: skip
    pinning = Pinning(stack)

    async def cell(setup: Setup, index: int, mode: str, connections: int) -> Shot:
        base = stack.urls[setup.service]
        accounts = plan[setup.key, index, mode, connections]
        await warm_and_check(base, setup, accounts)
        core = await pinning.apply(mode, setup.sut)
        counted = PG_STATS and setup.uses_postgres
        if counted:
            await pg_stats.reset(stack.database_url)
        staged = stack.stage_figures if setup.sut == ("gatekeeper",) else None
        if staged is not None:
            gatekeeper = stack.services["gatekeeper"].pids[0]
            before = await stage_times.snapshot(gatekeeper, staged)
        async with profiled(stack, setup, f"{index}-{mode}-{connections}c"):
            shot = await driver.shoot(
                setup.load(base, accounts), connections, seconds=SECONDS, core=core,
                sut=stack.pids(*setup.sut),
            )  # fmt: skip
        if staged is not None:
            after = await stage_times.snapshot(gatekeeper, staged)
            where = f"round {index} {mode} {connections}c {setup.key}"
            table = stage_times.report(before, after, shot.requests)
            print(f"Stages, {where} ({shot.requests:,} requests):\n{table}", flush=True)
        if counted:
            where = f"round {index} {mode} {connections}c {setup.key}"
            statements = await pg_stats.report(stack.database_url, shot.requests)
            print(f"Postgres, {where} ({shot.requests:,} requests):\n{statements}", flush=True)
        return shot

    for setup in setups:  # warm-up: connection pools, caches, Postgres's buffers
        await cell(setup, 0, MODES[-1], max(CONNECTIONS))
    results: dict[Cell, list[Shot]] = defaultdict(list)
    growth: dict[tuple[int, str], list[Shot]] = defaultdict(list)
    counts: dict[tuple[int, str], list[int]] = defaultdict(list)
    for index in range(1, ROUNDS + 1):
        for mode in MODES:
            for connections in CONNECTIONS:
                for setup in setups:
                    shot = await cell(setup, index, mode, connections)
                    results[setup.key, mode, connections].append(shot)
                    print(
                        f"round {index} {mode:8} {connections:2}c {setup.key:13}"
                        f" {shot.rate:8,.0f}/s p50 {shot.p50_ms:6.2f} ms"
                        f" p99 {shot.p99_ms:7.2f} ms cpu {shot.cpu_us:7,.0f} µs",
                        flush=True,
                    )
            if growth_levels:
                await _growth_round(stack, driver, pinning, growth_plan, index, mode,
                                    growth, counts)  # fmt: skip
    report = Report(results, growth, counts, skipped)
    text = report.text(header)
    print(text, flush=True)
    if os.environ.get("BENCH_REPORT"):
        await asyncio.to_thread(Path(os.environ["BENCH_REPORT"]).write_text, text + "\n")
    return report


async def _growth_round(
    stack: Stack,
    driver: Driver,
    pinning: Pinning,
    plan: dict[tuple[int, int, str], tuple[str, ...]],
    index: int,
    mode: str,
    growth: dict[tuple[int, str], list[Shot]],
    counts: dict[tuple[int, str], list[int]],
) -> None:
    """One growth round: an account per level, each with that many decisions recorded today,
    then GROWTH_ORDERS orders per level on one connection, the levels' accounts in turn, so
    every level meets the machine as it is at the same moments (separate rounds per level
    moved by 0.65-1.4x on this shared machine with no trend by level). Every other round the
    levels go in reverse."""
    levels = GROWTH_LEVELS if index % 2 else GROWTH_LEVELS[::-1]
    base = stack.urls["gatekeeper"]
    accounts = tuple(plan[level, index, mode][0] for level in levels)
    for level, account in zip(levels, accounts, strict=True):
        await warm_and_check(base, GROWTH, (account,))
        if level:
            await record_history(stack.database_url, account, level)
        await settle(base, account, stack.database_url)
        counts[level, mode].append(await decisions_today(stack.database_url, account))
    core = await pinning.apply(mode, GROWTH.sut)
    load = GROWTH.load(base, accounts)
    shot = await driver.shoot(
        load, 1, total=GROWTH_ORDERS * len(levels), core=core, sut=stack.pids(*GROWTH.sut),
    )  # fmt: skip
    for level, path in zip(levels, load.paths, strict=True):
        part = shot.part(load.base + path)
        growth[level, mode].append(part)
        print(f"round {index} {mode:8} growth {level:5,}: p50 {part.p50_ms:.2f} ms",
              flush=True)  # fmt: skip


@asynccontextmanager
async def profiled(stack: Stack, setup: Setup, name: str) -> AsyncIterator[None]:
    """With BENCH_PROFILE=<directory> (and py-spy installed): py-spy samples the gatekeeper
    while the round runs, one collapsed-stack file per round (its overhead inflates the
    round's figures: profile, then measure without it)."""
    spy = shutil.which("py-spy")
    if not PROFILE or spy is None or "gatekeeper" not in setup.sut:
        yield
        return
    await asyncio.to_thread(Path(PROFILE).mkdir, parents=True, exist_ok=True)
    out = Path(PROFILE) / f"{setup.key}-{name}.txt"
    command = [spy, "record", "--nonblocking", "-r", "500", "-f", "raw", "-o", str(out),
               "-p", str(stack.services["gatekeeper"].pids[0])]  # fmt: skip
    spying = await asyncio.create_subprocess_exec(
        *command, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL
    )
    try:
        yield
    finally:
        spying.send_signal(signal.SIGINT)
        await spying.wait()


def wrk_version() -> str:
    if WRK is None:
        return "absent"
    done = subprocess.run([WRK, "-v"], capture_output=True, text=True, check=False)
    words = (done.stdout or done.stderr).split()  # "wrk debian/4.1.0-3+b2 [epoll] …"
    return " ".join(words[:2]) if words else "wrk"
