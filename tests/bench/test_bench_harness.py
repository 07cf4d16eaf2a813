"""The comparison's own parts, checked in CI (seconds, not minutes), so the benchmark keeps
measuring the real order path as the gatekeeper changes:

- the static upstream serves everything the gatekeeper asks the broker for on the order path
  (an order, a rejection, a dry-run, a pass-through), and accepted orders do not pile up as in
  flight (the state always shows their broker id), and its beginning-of-day snapshot is of
  New York's day, so the gatekeeper records it rather than asking again for each order;
- the growth series' bulk history goes through the tables, so the audit chain stays whole;
- BENCH_STAGES's stage timer still finds every stage it wraps, and counts what it should.
"""

from __future__ import annotations

import asyncio
import importlib
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import asyncpg
import pytest
from aiohttp import web

from tests.bench import stage_times
from tests.bench.accounts import decisions_today, protect, record_history
from tests.bench.drive import Shot
from tests.bench.loadgen import run_bounded
from tests.bench.report import Report
from tests.bench.setups import BY_KEY, JSON, ORDER, warm_and_check
from tests.bench.static_upstream import account_bodies, make_app
from tests.fixtures.audit import problems
from tests.fixtures.gate import Gate, make_settings, start_gatekeeper

ACCOUNT = "5WB90001"


@pytest.fixture
async def static_upstream() -> AsyncIterator[str]:
    runner = web.AppRunner(make_app(), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    host, port = runner.addresses[0][:2]
    yield f"http://{host}:{port}"
    await runner.cleanup()


@pytest.fixture
async def static_gatekeeper(
    static_upstream: str, database_url: str, redis_url: str
) -> AsyncIterator[Gate]:
    await protect(database_url, (ACCOUNT,))
    async with start_gatekeeper(make_settings(static_upstream, database_url, redis_url)) as gate:
        yield gate


async def _unknown(upstream: str) -> dict[str, int]:
    async with (
        aiohttp.ClientSession() as session,
        session.get(upstream + "/__static/unknown") as answer,
    ):
        unknown: dict[str, int] = await answer.json()
        return unknown


async def test_static_upstream_serves_all_the_order_path_asks_for(
    static_gatekeeper: Gate, static_upstream: str
) -> None:
    for key in ("gk_allowed", "gk_rejected", "gk_dry_run", "gk_get"):
        setup = BY_KEY[key]
        await warm_and_check(static_gatekeeper.proxy_url, setup, (ACCOUNT,) * setup.accounts)
    assert await _unknown(static_upstream) == {}


@pytest.mark.parametrize("hour", [3, 15])
def test_the_snapshot_is_of_new_yorks_day(hour: int) -> None:
    """At 03:00 UTC it is still yesterday in New York (TastyTrade's day)."""
    now = datetime(2026, 12, 6, hour, tzinfo=UTC)
    snapshots = json.loads(account_bodies(ACCOUNT, now)["GET", "/balance-snapshots"])
    (snapshot,) = snapshots["data"]["items"]
    assert snapshot["snapshot-date"] == ("2026-12-05" if hour == 3 else "2026-12-06")


async def test_the_gatekeeper_records_the_static_snapshot(
    static_gatekeeper: Gate, database_url: str
) -> None:
    await warm_and_check(static_gatekeeper.proxy_url, BY_KEY["gk_allowed"], (ACCOUNT,))
    conn = await asyncpg.connect(database_url)
    try:
        sources = await conn.fetch(
            "SELECT source FROM account_day_start WHERE account_id = $1", ACCOUNT
        )
    finally:
        await conn.close()
    assert [row["source"] for row in sources] == ["broker_bod"]


async def test_accepted_orders_are_not_left_in_flight(
    static_gatekeeper: Gate, database_url: str
) -> None:
    """Free cash after each order counts working and in-flight orders: it stays the same from
    order to order only if each accepted one leaves the reservations (its broker id is in the
    state's orders), so a long run measures a steady account."""
    url = f"{static_gatekeeper.proxy_url}/accounts/{ACCOUNT}/orders"
    async with aiohttp.ClientSession() as session:
        for _ in range(6):
            async with session.post(url, data=ORDER, headers=dict(JSON)) as answer:
                assert answer.status == 201, await answer.text()
    conn = await asyncpg.connect(database_url)
    try:
        details = await conn.fetch(
            "SELECT detail FROM risk_decisions WHERE account_id = $1 AND verdict = 'allow'"
            " ORDER BY id",
            ACCOUNT,
        )
    finally:
        await conn.close()
    cash_after = [json.loads(row["detail"])["figures"]["cash_after"] for row in details]
    assert len(cash_after) == 6
    assert set(cash_after) == {cash_after[0]}, cash_after


async def test_generated_history_keeps_the_audit_chain(
    static_gatekeeper: Gate, database_url: str
) -> None:
    await warm_and_check(static_gatekeeper.proxy_url, BY_KEY["gk_allowed"], (ACCOUNT,))
    before = await decisions_today(database_url, ACCOUNT)
    assert await record_history(database_url, ACCOUNT, 300) == before + 300
    conn = await asyncpg.connect(database_url)
    try:
        assert await problems(conn, ACCOUNT) == []
        outcomes = await conn.fetchval(
            "SELECT count(*) FROM order_outcomes WHERE account_id = $1", ACCOUNT
        )
    finally:
        await conn.close()
    assert outcomes >= 300
    await warm_and_check(static_gatekeeper.proxy_url, BY_KEY["gk_allowed"], (ACCOUNT,))


def test_a_growth_only_report_gives_the_growth_verdict() -> None:
    """BENCH_ONLY=none: no setup measured, the growth series alone, pinned."""

    def shot(p50: float) -> Shot:
        return Shot(requests=150, seconds=1.0, p50_ms=p50, p99_ms=2 * p50, non_2xx=0,
                    socket_errors=0, sut_cpu=0.3, core_busy={0: 0.4, 1: 0.5}, wall=1.0)  # fmt: skip

    growth = {(0, "pinned"): [shot(4.0)], (1000, "pinned"): [shot(4.2)],
              (5000, "pinned"): [shot(4.8)]}  # fmt: skip
    counts = {key: [key[0]] for key in growth}
    text = Report({}, growth, counts, {}).text(["header"])
    assert "pinned     5,000 recorded (5,000-5,000 at the rounds' start): p50 4.80 ms" in text
    assert (
        "not met growth within ±10 % (p50 vs 0 decisions today, 1 connection, pinned):"
        " 1,000: 1.05x, 5,000: 1.20x (4.00 ms at 0)" in text
    )


async def test_each_url_of_a_round_has_its_own_figures(static_upstream: str) -> None:
    """The growth series sends its levels' accounts in turn in one round and reads each
    level's latencies and failures from its own URL."""
    good, missing = static_upstream + "/accounts/5WB90001/balances", static_upstream + "/nowhere"
    figures = await run_bounded([good, missing], "GET", None, {}, 1, total=10)
    assert figures["requests"] == 10
    assert figures["by_url"][good]["requests"] == 5
    assert figures["by_url"][good]["non_2xx"] == 0
    assert figures["by_url"][missing]["non_2xx"] == 5
    shot = Shot(**figures, sut_cpu=0.02, core_busy={0: 0.5, 1: 0.3}, wall=1.0)
    part = shot.part(missing)
    assert (part.requests, part.non_2xx) == (5, 5)
    assert part.p50_ms == figures["by_url"][missing]["p50_ms"]
    # the round's rate and CPU per request: the levels share the round's moments
    assert part.rate == pytest.approx(shot.rate)
    assert part.cpu_us == pytest.approx(shot.cpu_us)


def test_every_stage_of_the_stage_timer_still_exists() -> None:
    """BENCH_STAGES wraps the order path's stages where their callers look them up: a stage
    renamed or moved must fail here, not vanish from the figures."""
    counters = stage_times.Counters()
    originals = [_looked_up(module, path) for _, module, path in stage_times.STAGES]
    restore = stage_times.install(counters)
    try:
        wrapped = [_looked_up(module, path) for _, module, path in stage_times.STAGES]
        assert all(w is not o for w, o in zip(wrapped, originals, strict=True))
    finally:
        restore()
    assert [_looked_up(m, p) for _, m, p in stage_times.STAGES] == originals


def _looked_up(module: str, path: str) -> object:
    owner: object = importlib.import_module(module)
    *parents, name = path.split(".")
    for parent in parents:
        owner = getattr(owner, parent)
    return owner.__dict__[name] if isinstance(owner, type) else getattr(owner, name)


async def test_the_stage_timer_counts_calls_and_cpu_and_reports_per_request(
    tmp_path: Path,
) -> None:
    counters = stage_times.Counters()

    def busy(n: int) -> int:
        return sum(i * i for i in range(n))

    async def waits(n: int) -> int:
        await asyncio.sleep(0)
        return busy(n)

    timed_busy = stage_times.timed(busy, "order request", counters)
    timed_waits = stage_times.timed(waits, "decide", counters)
    out = tmp_path / "stages.json"
    counters.dump(out)
    before = {k: (int(v[0]), float(v[1])) for k, v in json.loads(out.read_text())["stages"].items()}
    assert timed_busy(200_000) == busy(200_000)
    assert await timed_waits(10) == busy(10)
    with pytest.raises(TypeError):
        timed_busy()  # an error still counts the call
    counters.dump(out)
    written = json.loads(out.read_text())
    assert written["sequence"] == 2
    after = {k: (int(v[0]), float(v[1])) for k, v in written["stages"].items()}
    assert after["order request"][0] == 2
    assert after["decide"][0] == 1
    assert after["order request"][1] > 0
    table = stage_times.report(before, after, requests=2).splitlines()
    assert table[1].split()[1:] == ["1.00", "order", "request"]
    assert table[2].split()[1:] == ["0.50", "decide"]


def test_a_ratio_verdict_shows_each_round_s_ratio() -> None:
    """The median ratio decides; the rounds' own ratios, in the order they ran, show the
    noise under it."""

    def shot(rate: float) -> Shot:
        return Shot(requests=int(rate), seconds=1.0, p50_ms=1.0, p99_ms=2.0, non_2xx=0,
                    socket_errors=0, sut_cpu=0.3, core_busy={0: 0.9, 1: 0.5}, wall=1.0)  # fmt: skip

    results = {
        ("gk_get", "pinned", 16): [shot(1_900), shot(2_600), shot(2_900)],
        ("minimal_get", "pinned", 16): [shot(3_200), shot(3_200), shot(2_400)],
    }
    text = Report(results, {}, {}, {}).text(["header"])
    assert (
        "not met pass-through ≥ 0.9 x minimal proxy: 0.81 (2,600 vs 3,200 req/s;"
        " rounds 0.59, 0.81, 1.21)" in text
    )
    one_round = {cell: shots[:1] for cell, shots in results.items()}
    assert "req/s; rounds" not in Report(one_round, {}, {}, {}).text(["header"])
