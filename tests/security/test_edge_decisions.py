"""Issue 8, item 9: every answer on a checked route has a decision row and carries
``X-Gatekeeper-Decision-Id`` (413 is in ``test_edge_media.py``; 400/415/422 with their attacks).

Here the answers that come after an allowed decision without a broker answer to relay: the
broker too slow (504, the order maybe placed) used to be rendered without the decision's id,
so a bot could not tie the 504 to the audit row that counts it. Both HTTP parsers.
"""

from __future__ import annotations

import json

import asyncpg
import pytest

from tests.fixtures.orders import order
from tests.fixtures.paper import PaperBroker
from tests.security.edge import PARSERS, raw_request, served_gatekeeper


@pytest.mark.parametrize("parser", PARSERS)
async def test_a_broker_timeout_after_the_decision_names_the_decision(
    parser: str,
    paper_broker: PaperBroker,
    paper_auth: dict[str, str],
    database_url: str,
    redis_url: str,
    pg_pool: asyncpg.Pool,
) -> None:
    target = f"/accounts/{paper_broker.account_number}/orders"
    paper_broker.book.add_fault(target, delay_seconds=3, method="POST", times=1, after=True)
    settings = {"GATEKEEPER_PROXY__READ_TIMEOUT_SECONDS": "1"}
    headers = [("Authorization", paper_auth["Authorization"]), ("Content-Type", "application/json")]
    body = json.dumps(order("AAPL", 1, "150.00")).encode()
    async with served_gatekeeper(
        parser, paper_broker.url, database_url, redis_url, settings
    ) as proxy:
        reply = await raw_request(proxy, "POST", target, headers, body)
    assert (reply.status, reply.code) == (504, "broker_timeout"), reply
    row = await pg_pool.fetchrow(
        "SELECT d.verdict, o.outcome FROM risk_decisions d"
        " JOIN order_outcomes o USING (decision_id) WHERE d.decision_id = $1::uuid"
        " ORDER BY o.id LIMIT 1",  # the forward's own; the reconciler may append another
        reply.headers.get("X-Gatekeeper-Decision-Id"),
    )
    assert row is not None
    assert tuple(row) == ("allow", "unknown")
