"""``GET /api/v1/decisions``: the decision log over the admin API, filtered, paged, scoped."""

from __future__ import annotations

from uuid import uuid4

from gatekeeper.adapters import decisions as db
from gatekeeper.adapters import protections as store
from gatekeeper.web.openapi import build_openapi
from tests.fixtures.admin import AdminApi
from tests.fixtures.decision_rows import SUMMARY, record

PATH = "/api/v1/decisions"


async def test_an_admin_lists_every_accounts_decisions_with_filters(admin_api: AdminApi) -> None:
    admin = await admin_api.issue("admin@example.com", "admin")
    async with admin_api.pool.acquire() as conn:
        allowed = await record(conn)
        rejected = await record(conn, verdict="reject", codes=("max_single_trade",))
        other = await record(conn, "5WT00002", verdict="reject", codes=("cash_reserve",))

    everything = await admin_api.call("GET", PATH, admin)
    filtered = await admin_api.call(
        "GET", f"{PATH}?account_id=5WT00001&verdict=reject&code=max_single_trade&since=today",
        admin,
    )  # fmt: skip

    assert everything.status == 200, everything.body
    ids = [d["decision_id"] for d in everything.body["decisions"]]
    assert ids == [str(other), str(rejected), str(allowed)]
    assert everything.body["next_cursor"] is None
    first = everything.body["decisions"][2]
    assert first["summary"] == SUMMARY
    assert first["outcome"] == "pending"
    assert first["figures"] == {"net_liquidating_value": "100000"}
    assert [d["decision_id"] for d in filtered.body["decisions"]] == [str(rejected)]
    assert filtered.body["decisions"][0]["codes"] == ["max_single_trade"]


async def test_pages_are_walked_with_the_cursor(admin_api: AdminApi) -> None:
    admin = await admin_api.issue("admin@example.com", "admin")
    async with admin_api.pool.acquire() as conn:
        recorded = [str(await record(conn)) for _ in range(5)]

    seen: list[str] = []
    url = f"{PATH}?limit=2"
    pages = 0
    while True:
        reply = await admin_api.call("GET", url, admin)
        assert reply.status == 200, reply.body
        seen += [d["decision_id"] for d in reply.body["decisions"]]
        pages += 1
        cursor = reply.body["next_cursor"]
        if cursor is None:
            break
        url = f"{PATH}?limit=2&cursor={cursor}"

    assert seen == recorded[::-1]
    assert pages == 3


async def test_a_viewer_sees_only_the_accounts_of_their_protections(admin_api: AdminApi) -> None:
    viewer = await admin_api.issue("viewer@example.com", "viewer")
    async with admin_api.pool.acquire() as conn:
        await store.create_protection(
            conn, viewer.user_id, "5WT00001", {}, store.Actor("test", "cli")
        )
        mine = await record(conn, "5WT00001")
        theirs = await record(conn, "5WT00002")

    listing = await admin_api.call("GET", PATH, viewer)
    foreign = await admin_api.call("GET", f"{PATH}?account_id=5WT00002", viewer)
    detail_mine = await admin_api.call("GET", f"{PATH}/{mine}", viewer)
    detail_theirs = await admin_api.call("GET", f"{PATH}/{theirs}", viewer)

    assert [d["decision_id"] for d in listing.body["decisions"]] == [str(mine)]
    assert foreign.status == 404
    assert detail_mine.status == 200
    assert detail_theirs.status == 404
    assert detail_theirs.error["code"] == "decision_not_found"


async def test_one_decision_in_full_with_its_outcomes(admin_api: AdminApi) -> None:
    admin = await admin_api.issue("admin@example.com", "admin")
    async with admin_api.pool.acquire() as conn:
        decision_id = await record(conn)
        await db.insert_outcome(
            conn, decision_id, "5WT00001", "accepted", http_status=201, broker_order_id="777"
        )

    reply = await admin_api.call("GET", f"{PATH}/{decision_id}", admin)
    missing = await admin_api.call("GET", f"{PATH}/{uuid4()}", admin)

    assert reply.status == 200, reply.body
    decision = reply.body["decision"]
    assert decision["outcome"] == "accepted"
    assert decision["broker_order_id"] == "777"
    assert [o["http_status"] for o in decision["outcomes"]] == [201]
    assert decision["detail"]["summary"] == SUMMARY
    assert decision["trade_count"] == 1
    assert missing.status == 404


async def test_bad_queries_are_400_naming_the_parameter(admin_api: AdminApi) -> None:
    admin = await admin_api.issue("admin@example.com", "admin")
    for query, named in (
        ("verdict=maybe", "verdict"),
        ("since=yesterday", "since"),
        ("until=2026-12-04T10:00:00", "until"),
        ("limit=0", "limit"),
        ("limit=501", "limit"),
        ("cursor=abc", "cursor"),
        ("code=DROP%20TABLE", "code"),
        ("account_id=%2F..", "account_id"),
        ("verdict=allow&verdict=reject", "verdict"),
    ):
        reply = await admin_api.call("GET", f"{PATH}?{query}", admin)
        assert reply.status == 400, query
        assert named in reply.error["message"], (query, reply.error)


async def test_tokens_are_required_and_any_role_may_read(admin_api: AdminApi) -> None:
    assert (await admin_api.call("GET", PATH)).status == 401
    operator = await admin_api.issue("op@example.com", "operator")
    assert (await admin_api.call("GET", PATH, operator)).status == 200


def test_the_route_is_in_the_openapi_document() -> None:
    paths = build_openapi()["paths"]
    listing = paths[PATH]["get"]
    names = {p["name"] for p in listing["parameters"]}
    assert {"account_id", "since", "verdict", "code", "limit", "cursor"} <= names
    detail = paths[PATH + "/{decision_id}"]["get"]
    assert detail["parameters"][0]["schema"] == {"type": "string", "format": "uuid"}
