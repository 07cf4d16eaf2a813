"""Paper broker authentication: OAuth refresh, legacy sessions, token checks, account access."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from gatekeeper.paper.book import ACCESS_TOKEN_LIFETIME
from tests.fixtures.paper import PaperBroker

RECORDED = Path("/work/shared/fixtures/tastytrade-recorded")


def recorded(name: str) -> Any:
    return json.loads((RECORDED / name).read_text())


async def test_oauth_token_accepts_json_and_form(
    paper_broker: PaperBroker, paper_http: aiohttp.ClientSession
) -> None:
    fields = {
        "grant_type": "refresh_token",
        "refresh_token": paper_broker.refresh_token,
        "client_secret": paper_broker.client_secret,
    }
    async with paper_http.post("/oauth/token", json=fields) as response:
        assert response.status == 200
        by_json = await response.json()
    async with paper_http.post(
        "/oauth/token", data={**fields, "client_id": paper_broker.client_id}
    ) as response:
        assert response.status == 200
        by_form = await response.json()
    for body in (by_json, by_form):
        assert set(body) == {"access_token", "token_type", "expires_in"}
        assert body["token_type"] == "Bearer"
        assert body["expires_in"] == 900
    assert by_json["access_token"] != by_form["access_token"]
    for body in (by_json, by_form):
        headers = {"Authorization": f"Bearer {body['access_token']}"}
        async with paper_http.get("/customers/me/accounts", headers=headers) as response:
            assert response.status == 200


@pytest.mark.parametrize(
    "change",
    [
        {"client_secret": "wrong-secret-000"},
        {"refresh_token": "wrong-refresh-000"},
        {"client_id": "someone-else"},
    ],
)
async def test_oauth_token_rejects_wrong_credentials(
    paper_broker: PaperBroker, paper_http: aiohttp.ClientSession, change: dict[str, str]
) -> None:
    fields = {
        "grant_type": "refresh_token",
        "refresh_token": paper_broker.refresh_token,
        "client_secret": paper_broker.client_secret,
        **change,
    }
    async with paper_http.post("/oauth/token", json=fields) as response:
        assert response.status == 401
        body = await response.json()
    assert body["error"]["code"] == "invalid_credentials"
    assert body["error"]["message"]


async def test_session_login_matches_recorded_shape(
    paper_broker: PaperBroker, paper_http: aiohttp.ClientSession
) -> None:
    body = {"login": paper_broker.login, "password": paper_broker.password, "remember-me": True}
    async with paper_http.post("/sessions", json=body) as response:
        assert response.status == 201
        created = await response.json()
    expected = recorded("Create_Session_Response.json")
    assert set(created) == set(expected)
    assert set(created["data"]) == set(expected["data"])
    assert set(created["data"]["user"]) == set(expected["data"]["user"])
    assert created["context"] == "/sessions"
    assert created["data"]["session-expiration"].endswith("Z")
    token = created["data"]["session-token"]

    # Session tokens are sent bare, without "Bearer".
    async with paper_http.get(
        "/customers/me/accounts", headers={"Authorization": token}
    ) as response:
        assert response.status == 200
    async with paper_http.post("/sessions/validate", headers={"Authorization": token}) as response:
        assert response.status == 201

    # The remember token logs in once.
    again = {"login": paper_broker.login, "remember-token": created["data"]["remember-token"]}
    async with paper_http.post("/sessions", json=again) as response:
        assert response.status == 201
    async with paper_http.post("/sessions", json=again) as response:
        assert response.status == 401

    async with paper_http.delete("/sessions", headers={"Authorization": token}) as response:
        assert response.status == 204
    async with paper_http.get(
        "/customers/me/accounts", headers={"Authorization": token}
    ) as response:
        assert response.status == 401


async def test_wrong_password_matches_recorded_error(
    paper_broker: PaperBroker, paper_http: aiohttp.ClientSession
) -> None:
    body = {"login": paper_broker.login, "password": "not-the-password"}
    async with paper_http.post("/sessions", json=body) as response:
        assert response.status == 401
        error = await response.json()
    expected = recorded("Create_Session_Error_Response.json")
    assert set(error) == set(expected)
    assert set(error["error"]) == set(expected["error"])
    assert error["error"]["code"] == expected["error"]["code"]


@pytest.mark.parametrize("authorization", [None, "", "Bearer nope", "nope", "Bearer "])
async def test_requests_without_a_valid_token_are_refused(
    paper_broker: PaperBroker, paper_http: aiohttp.ClientSession, authorization: str | None
) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    path = f"/accounts/{paper_broker.account_number}/balances"
    async with paper_http.get(path, headers=headers) as response:
        assert response.status == 401
        body = await response.json()
    assert body["error"]["code"] == "token_invalid"
    assert paper_broker.book.received_orders() == []


async def test_expired_access_token_is_refused(
    paper_broker: PaperBroker, paper_http: aiohttp.ClientSession, paper_auth: dict[str, str]
) -> None:
    book = paper_broker.book
    real_clock = book.clock
    book.clock = lambda: real_clock() + ACCESS_TOKEN_LIFETIME
    async with paper_http.get("/customers/me/accounts", headers=paper_auth) as response:
        assert response.status == 401


async def test_another_users_account_is_not_permitted(
    paper_broker: PaperBroker, paper_http: aiohttp.ClientSession, paper_auth: dict[str, str]
) -> None:
    foreign = paper_broker.foreign_account_number
    for method, path in [
        ("GET", f"/accounts/{foreign}/balances"),
        ("GET", f"/accounts/{foreign}/positions"),
        ("GET", f"/customers/me/accounts/{foreign}"),
        ("POST", f"/accounts/{foreign}/orders"),
    ]:
        async with paper_http.request(method, path, headers=paper_auth, json={}) as response:
            assert response.status == 403, path
            body = await response.json()
        assert body == {"error": {"code": "not_permitted", "message": "User not permitted access"}}
    async with paper_http.get("/accounts/5WZ99999/balances", headers=paper_auth) as response:
        assert response.status == 404
        assert (await response.json())["error"]["code"] == "record_not_found"
    assert paper_broker.book.received_orders() == []


async def test_unknown_route_is_a_404_envelope(
    paper_http: aiohttp.ClientSession, paper_auth: dict[str, str]
) -> None:
    async with paper_http.get("/no/such/route", headers=paper_auth) as response:
        assert response.status == 404
        body = await response.json()
    assert body["error"]["code"] == "not_found"
    async with paper_http.put("/customers/me/accounts", headers=paper_auth) as response:
        assert response.status == 405
        assert "error" in await response.json()
