"""Who may do what on the admin API: every way a token can be wrong, every role, and another
user's protection (404, nothing changes). Tokens never leak into bodies, logs or metrics."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

import aiohttp
import pytest
from prometheus_client import generate_latest

from gatekeeper.auth import digests_match, token_digest
from tests.fixtures.admin import UNUSED_UPSTREAM, AdminApi, Issued
from tests.fixtures.gate import make_settings, start_gatekeeper

BASE = "/api/v1/portfolio_protections"
PROTECTION = {"portfolio_protection": {"account_id": "TEST123", "cash_reserve_percentage": 25}}
STOP = {"reason": "drill", "triggered_by": "ops"}
CLEAR = {"confirm": "true", "cleared_by": "ops"}


async def make_protection(api: AdminApi, owner: Issued) -> int:
    reply = await api.call("POST", BASE, owner, PROTECTION)
    assert reply.status == 201, reply.body
    protection_id: int = reply.body["portfolio_protection"]["id"]
    return protection_id


async def snapshot(api: AdminApi) -> list[tuple[Any, ...]]:
    rows = await api.fetch(
        "SELECT p.*, (SELECT count(*) FROM protection_changes) AS changes,"
        " (SELECT count(*) FROM emergency_events) AS events FROM portfolio_protections p"
        " ORDER BY id"
    )
    return [tuple(row.values()) for row in rows]


def requests(protection_id: int) -> list[tuple[str, str, Any]]:
    return [
        ("GET", BASE, None),
        ("GET", f"{BASE}/{protection_id}", None),
        ("GET", f"{BASE}/status?account_id=TEST123", None),
        ("POST", BASE, PROTECTION),
        ("PATCH", f"{BASE}/{protection_id}", {"portfolio_protection": {"active": False}}),
        ("POST", f"{BASE}/{protection_id}/emergency_stop", STOP),
        ("DELETE", f"{BASE}/{protection_id}/clear_emergency_stop", CLEAR),
        ("POST", f"{BASE}/validate_trade", {"account_id": "TEST123", "order": {}}),
        ("GET", f"{BASE}/{protection_id}/changes", None),
    ]


@pytest.mark.parametrize(
    ("header", "code"),
    [
        (None, "token_missing"),
        ("Bearer", "token_malformed"),
        ("Basic dXNlcjpwYXNz", "token_malformed"),
        ("Bearer not-a-gatekeeper-token", "token_malformed"),
        # A TastyTrade session token (what bots hold) grants nothing here.
        ("Bearer Xc3Ytbo7Jzvz2sdE0IHV4VJrkXYxjlasWMy3N4PA5pa7k+C", "token_malformed"),
        ("Bearer gk_" + "0" * 64, "token_unknown"),
        ("Bearer gk_" + "A" * 64, "token_malformed"),
    ],
)
async def test_bad_credentials_are_401_on_every_route(
    admin_api: AdminApi, header: str | None, code: str
) -> None:
    owner = await admin_api.issue("owner@example.com", "admin")
    protection_id = await make_protection(admin_api, owner)
    before = await snapshot(admin_api)
    for method, path, body in requests(protection_id):
        headers = {"Authorization": header} if header else None
        reply = await admin_api.call(method, path, body=body, headers=headers)
        assert reply.status == 401, (method, path, reply.body)
        assert reply.error["code"] == code
        assert reply.headers["WWW-Authenticate"].startswith("Bearer")
    assert await snapshot(admin_api) == before


async def test_expired_token_is_401(admin_api: AdminApi) -> None:
    owner = await admin_api.issue("owner@example.com", "admin")
    await admin_api.fetch(
        "UPDATE api_tokens SET created_at = now() - interval '2 days',"
        " expires_at = now() - interval '1 second' WHERE id = $1",
        owner.token_id,
    )
    reply = await admin_api.call("GET", BASE, owner)
    assert reply.status == 401
    assert reply.error["code"] == "token_expired"
    assert owner.token not in str(reply.body)


async def test_short_ttl_expires(admin_api: AdminApi) -> None:
    # 3 s: the first call is answered well within it, even on a machine three times slower
    # than usual.
    short = await admin_api.issue("owner@example.com", "viewer", ttl=timedelta(seconds=3))
    (row,) = await admin_api.fetch(
        "SELECT expires_at - created_at AS ttl FROM api_tokens WHERE id = $1", short.token_id
    )
    assert row["ttl"] == timedelta(seconds=3)
    assert (await admin_api.call("GET", BASE, short)).status == 200
    # Until the database's clock (which decides) is just past the expiry.
    await admin_api.fetch(
        "SELECT pg_sleep(greatest(0, extract(epoch FROM expires_at - clock_timestamp())) + 0.1)"
        " FROM api_tokens WHERE id = $1",
        short.token_id,
    )
    assert (await admin_api.call("GET", BASE, short)).error["code"] == "token_expired"


async def test_revoked_token_is_401_and_other_tokens_still_work(admin_api: AdminApi) -> None:
    owner = await admin_api.issue("owner@example.com", "admin")
    other = await admin_api.issue("owner@example.com", "admin")
    await admin_api.fetch("UPDATE api_tokens SET revoked_at = now() WHERE id = $1", owner.token_id)
    reply = await admin_api.call("GET", BASE, owner)
    assert reply.status == 401
    assert reply.error["code"] == "token_revoked"
    assert (await admin_api.call("GET", BASE, other)).status == 200


async def test_tokens_are_stored_only_as_digests_and_use_is_recorded(admin_api: AdminApi) -> None:
    owner = await admin_api.issue("owner@example.com", "viewer")
    (row,) = await admin_api.fetch("SELECT * FROM api_tokens WHERE id = $1", owner.token_id)
    assert row["last_used_at"] is None
    stored = bytes(row["token_sha256"])
    assert digests_match(stored, token_digest(owner.token))
    assert owner.token.encode() not in stored
    assert owner.token[3:] not in stored.hex()
    assert (await admin_api.call("GET", BASE, owner)).status == 200
    (used,) = await admin_api.fetch(
        "SELECT last_used_at FROM api_tokens WHERE id = $1", owner.token_id
    )
    assert used["last_used_at"] is not None


# role -> the kinds of request it may make
ALLOWED = {
    "viewer": {"GET"},
    "operator": {"GET", "emergency_stop"},
    "admin": {"GET", "POST", "PATCH", "emergency_stop", "clear", "validate"},
}


def _kind(method: str, path: str) -> str:
    if path.endswith("clear_emergency_stop"):
        return "clear"
    if path.endswith("emergency_stop"):
        return "emergency_stop"
    if path.endswith("validate_trade"):
        return "validate"
    return method


@pytest.mark.parametrize("role", ["viewer", "operator"])
async def test_roles_limit_what_a_token_may_do(admin_api: AdminApi, role: str) -> None:
    token = await admin_api.issue("owner@example.com", role)
    admin = await admin_api.issue("owner@example.com", "admin")
    protection_id = await make_protection(admin_api, admin)
    before = await snapshot(admin_api)
    for method, path, body in requests(protection_id):
        if method == "POST" and path == BASE:
            continue  # checked below (needs a fresh account)
        kind = _kind(method, path)
        reply = await admin_api.call(method, path, token, body)
        if kind in ALLOWED[role] or kind == "validate":
            assert reply.status not in (401, 403), (role, method, path, reply.body)
        else:
            assert reply.status == 403, (role, method, path, reply.body)
            assert reply.error["code"] == "insufficient_role"
            assert role in reply.error["message"]
    create = await admin_api.call(
        "POST", BASE, token, {"portfolio_protection": {"account_id": "OTHER1"}}
    )
    assert create.status == 403
    if role == "viewer":
        assert await snapshot(admin_api) == before
    metrics = admin_api.gate.metrics.registry
    assert metrics.get_sample_value(
        "gatekeeper_admin_auth_failures_total", {"reason": "insufficient_role"}
    )


async def test_operator_stops_but_cannot_clear(admin_api: AdminApi) -> None:
    admin = await admin_api.issue("owner@example.com", "admin")
    operator = await admin_api.issue("owner@example.com", "operator")
    protection_id = await make_protection(admin_api, admin)
    stop = await admin_api.call("POST", f"{BASE}/{protection_id}/emergency_stop", operator, STOP)
    assert stop.status == 200
    clear_path = f"{BASE}/{protection_id}/clear_emergency_stop"
    assert (await admin_api.call("DELETE", clear_path, operator, CLEAR)).status == 403
    assert (await admin_api.call("DELETE", clear_path, admin, CLEAR)).status == 200


async def test_another_users_protection_is_404_and_unchanged(admin_api: AdminApi) -> None:
    alice = await admin_api.issue("alice@example.com", "admin")
    protection_id = await make_protection(admin_api, alice)
    await admin_api.call("POST", f"{BASE}/{protection_id}/emergency_stop", alice, STOP)
    bob_operator = await admin_api.issue("bob@example.com", "operator")
    bob_viewer = await admin_api.issue("bob@example.com", "viewer")
    before = await snapshot(admin_api)
    for token in (bob_operator, bob_viewer):
        for path in (f"{BASE}/{protection_id}", f"{BASE}/{protection_id}/changes",
                     f"{BASE}/{protection_id}/emergency_events",
                     f"{BASE}/status?account_id=TEST123"):  # fmt: skip
            reply = await admin_api.call("GET", path, token)
            assert reply.status == 404, path
        assert (await admin_api.call("GET", BASE, token)).body["portfolio_protections"] == []
    # Alice's stop is active; Bob's operator tries to stop it again: still 404, nothing recorded.
    again = await admin_api.call(
        "POST", f"{BASE}/{protection_id}/emergency_stop", bob_operator, STOP
    )
    assert again.status == 404
    trade = {"account_id": "TEST123", "order": {"symbol": "AAPL", "quantity": 1,
             "order_type": "market", "action": "buy-to-open"}}  # fmt: skip
    assert (await admin_api.call("POST", f"{BASE}/validate_trade", bob_viewer, trade)).status == 404
    assert await snapshot(admin_api) == before


async def test_another_users_protection_is_404_for_a_fresh_stop(admin_api: AdminApi) -> None:
    alice = await admin_api.issue("alice@example.com", "admin")
    protection_id = await make_protection(admin_api, alice)
    bob = await admin_api.issue("bob@example.com", "operator")
    before = await snapshot(admin_api)
    reply = await admin_api.call("POST", f"{BASE}/{protection_id}/emergency_stop", bob, STOP)
    assert reply.status == 404
    assert await snapshot(admin_api) == before


async def test_admins_see_every_users_protection(admin_api: AdminApi) -> None:
    alice = await admin_api.issue("alice@example.com", "admin")
    protection_id = await make_protection(admin_api, alice)
    root = await admin_api.issue("root@example.com", "admin")
    own = await admin_api.call("GET", BASE, root)
    assert own.body["portfolio_protections"] == []  # the list is the caller's own...
    every = await admin_api.call("GET", f"{BASE}?all=true&account_id=TEST123", root)
    assert [p["id"] for p in every.body["portfolio_protections"]] == [protection_id]
    viewer = await admin_api.issue("alice@example.com", "viewer")
    assert (await admin_api.call("GET", f"{BASE}?all=true", viewer)).status == 403
    assert (await admin_api.call("GET", f"{BASE}?all=yes", root)).status == 400
    assert (await admin_api.call("GET", f"{BASE}/{protection_id}", root)).status == 200
    patch = {"portfolio_protection": {"max_daily_trades": 10}}
    assert (await admin_api.call("PATCH", f"{BASE}/{protection_id}", root, patch)).status == 200


async def test_tokens_never_appear_in_logs_metrics_or_bodies(
    admin_api: AdminApi, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    admin = await admin_api.issue("owner@example.com", "admin")
    viewer = await admin_api.issue("owner@example.com", "viewer")
    protection_id = await make_protection(admin_api, admin)
    bodies = []
    for method, path, body in requests(protection_id):
        for token in (admin, viewer):
            bodies.append(str((await admin_api.call(method, path, token, body)).body))
    bodies.append(str((await admin_api.call("GET", BASE, "gk_" + "1" * 64)).body))
    exposition = generate_latest(admin_api.gate.metrics.registry).decode()
    audit = str(await admin_api.fetch("SELECT * FROM protection_changes"))
    audit += str(await admin_api.fetch("SELECT * FROM emergency_events"))
    for secret in (admin.token, viewer.token, "1" * 64):
        for text in (*bodies, exposition, caplog.text, audit):
            assert secret not in text


async def test_database_down_is_503_not_a_pass(redis_url: str) -> None:
    settings = make_settings(UNUSED_UPSTREAM, "postgresql://postgres@127.0.0.1:1/none", redis_url)
    async with start_gatekeeper(settings) as gate, aiohttp.ClientSession() as session:
        headers = {"Authorization": "Bearer gk_" + "2" * 64}
        async with session.get(gate.admin_url + BASE, headers=headers) as response:
            assert response.status == 503
            body = await response.json()
    assert body["error"]["code"] == "database_unavailable"
