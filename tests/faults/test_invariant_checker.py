"""The checker itself: each invariant counts the violation planted for it, so a scenario whose
invariants are all 0 proves something. Orders are sent to the paper broker directly (around
the gatekeeper), which no real deployment allows."""

from __future__ import annotations

import json
import logging

import aiohttp

from gatekeeper.adapters.protection_stops import trigger_emergency_stop
from tests.faults.invariants import Seen
from tests.faults.stack import FaultStack
from tests.fixtures.orders import ACTOR, order


async def _place_directly(faults: FaultStack, body: dict[str, object]) -> None:
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            f"{faults.paper.url}/accounts/{faults.account}/orders",
            data=json.dumps(body),
            headers={**faults.auth, "Content-Type": "application/json"},
        ) as response,
    ):
        assert response.status == 201, await response.text()


async def test_each_invariant_counts_its_planted_violation(faults: FaultStack) -> None:
    protection = await faults.protect(max_daily_trades=1)
    async with faults.gatekeeper() as gate:
        bot = faults.bot(gate.proxy_url)
        assert (await bot.place(order(), "honest")).status == 201
        clean = await faults.check()
        assert clean.counts == {f"I{n}": 0 for n in range(1, 7)}, clean.explain()

        # I1 (no decision), I3 (a second trade over max_daily_trades: 1, and one too big),
        # I6 (one identifier placed twice).
        rogue = order(**{"external-identifier": "rogue-1"})
        await _place_directly(faults, rogue)
        await _place_directly(faults, rogue)
        await _place_directly(faults, order(quantity=1000))
        # I2: an answer without a decision; I5: the bot's token in a log line.
        faults.evidence.answers.append(Seen("forged", 201, None, None, "{}"))
        logging.getLogger("tests.faults").warning("leaked %s", faults.evidence.secrets[0])
        # I4: an order placed after a committed stop.
        async with faults.pool.acquire() as conn:
            await trigger_emergency_stop(
                conn, protection.id, None, reason="test", triggered_by="test", mode="halt",
                actor=ACTOR,
            )  # fmt: skip
        await _place_directly(faults, order(symbol="MSFT"))
    report = await faults.check()
    assert report.count("I1") == 4  # rogue x2, the big one, MSFT
    assert report.count("I2") == 1
    assert report.count("I3") == 5  # 5 trades for a limit of 1 (4 over), 1000 x 150.00 > 10 %
    assert report.count("I4") == 1
    assert report.count("I5") >= 1
    assert report.count("I6") == 1
