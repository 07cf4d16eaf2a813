"""What the comparison measures: each setup's requests, its system under test, and the check
that it answers as it should before it is timed.

Orders are one share of AAPL, limit 100.00 (a rejected one asks for 100,000 shares: above
``max_order_quantity`` and every sizing limit). Through the gatekeeper, each round's orders go
to accounts of their own, taken in turn (``ORDER_ACCOUNTS`` of them), each warmed by one
allowed order just before the round: state, start of day, quotes and the credential's
confirmation are cached, as for a bot that trades all day.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import aiohttp

from tests.bench.drive import Load

ORDER_ACCOUNTS = 4
STATIC_ACCOUNT = "5WB00000"  # for setups without the risk engine (any account is served)
HEADERS = (("Authorization", "Bearer bench-token"), ("User-Agent", "bench/1.0"))
JSON = (*HEADERS, ("Content-Type", "application/json"))


def order_body(quantity: int) -> bytes:
    leg = {"instrument-type": "Equity", "symbol": "AAPL", "action": "Buy to Open",
           "quantity": quantity}  # fmt: skip
    order = {"order-type": "Limit", "time-in-force": "Day", "price": "100.00",
             "price-effect": "Debit", "legs": [leg]}  # fmt: skip
    return json.dumps(order).encode()


ORDER, REJECTED = order_body(1), order_body(100_000)


@dataclass(frozen=True)
class Setup:
    key: str
    label: str
    service: str  # whose URL is hit
    sut: tuple[str, ...]  # whose CPU counts, and who has core 0 to itself when pinned
    method: str = "GET"
    route: str = "/balances"
    body: bytes | None = None
    expect: int = 200
    accounts: int = 0  # fresh accounts per round (0: the static one)
    error_code: str | None = None

    @property
    def uses_postgres(self) -> bool:
        """Gatekeeper's orders and the prototype (a pass-through GET asks nothing of it)."""
        return self.accounts > 0 or self.key == "prototype"

    def load(self, base: str, accounts: tuple[str, ...]) -> Load:
        paths = tuple(f"/accounts/{a}{self.route}" for a in accounts or (STATIC_ACCOUNT,))
        headers = JSON if self.body is not None else HEADERS
        return Load(base, self.method, paths, self.body, headers)


def _post(key: str, label: str, service: str, sut: tuple[str, ...], **kw: object) -> Setup:
    kw = {"method": "POST", "route": "/orders", "body": ORDER, "expect": 201, **kw}
    return Setup(key, label, service, sut, **kw)  # type: ignore[arg-type]


GK = ("gatekeeper",)
REPLICAS = ("nginx-replicas", "gatekeeper", "gatekeeper-2")
SETUPS = (
    Setup("direct_get", "direct to the static upstream, GET balances", "upstream", ("upstream",)),
    _post("direct_post", "direct to the static upstream, POST order", "upstream", ("upstream",)),
    Setup("nginx_get", "nginx reverse proxy, GET", "nginx", ("nginx",)),
    _post("nginx_post", "nginx reverse proxy, POST order", "nginx", ("nginx",)),
    Setup("minimal_get", "minimal aiohttp proxy, GET", "minimal", ("minimal",)),
    _post("minimal_post", "minimal aiohttp proxy, POST order", "minimal", ("minimal",)),
    _post("prototype", "prototype (+1 Redis, +1 INSERT), POST", "prototype", ("prototype",)),
    Setup("gk_get", "Gatekeeper pass-through GET", "gatekeeper", GK),
    _post("gk_allowed", "Gatekeeper allowed order", "gatekeeper", GK, accounts=ORDER_ACCOUNTS),
    _post("gk_rejected", "Gatekeeper rejected order", "gatekeeper", GK, body=REJECTED,
          expect=422, accounts=ORDER_ACCOUNTS, error_code="risk_check_failed"),
    _post("gk_dry_run", "Gatekeeper dry-run", "gatekeeper", GK, route="/orders/dry-run",
          accounts=ORDER_ACCOUNTS),
    _post("gk_replicas", "2 Gatekeeper replicas behind nginx, allowed", "nginx-replicas",
          REPLICAS, accounts=ORDER_ACCOUNTS),
)  # fmt: skip
BY_KEY = {setup.key: setup for setup in SETUPS}
GROWTH = _post("gk_growth", "Gatekeeper allowed order (growth)", "gatekeeper", GK, accounts=1)


async def _send(
    session: aiohttp.ClientSession, method: str, url: str, body: bytes | None
) -> tuple[int, dict[str, str], bytes]:
    headers = dict(JSON if body is not None else HEADERS)
    async with session.request(method, url, data=body, headers=headers) as answer:
        return answer.status, dict(answer.headers), await answer.read()


async def warm_and_check(base: str, setup: Setup, accounts: tuple[str, ...]) -> None:
    """Each account: one allowed order (warms its state), then one request of the setup,
    which must answer as the setup expects (the gatekeeper's ones with a decision id)."""
    async with aiohttp.ClientSession() as session:
        for account in accounts or (STATIC_ACCOUNT,):
            if setup.accounts:
                url = f"{base}/accounts/{account}/orders"
                status, _, body = await _send(session, "POST", url, ORDER)
                if status != 201:
                    raise AssertionError(f"warm-up order on {account}: {status} {body[:300]!r}")
            url = f"{base}/accounts/{account}{setup.route}"
            status, headers, body = await _send(session, setup.method, url, setup.body)
            if status != setup.expect:
                raise AssertionError(f"{setup.key} on {account}: {status} {body[:300]!r}")
            decided = setup.sut[-1].startswith("gatekeeper") and setup.method == "POST"
            if decided and "X-Gatekeeper-Decision-Id" not in headers:
                raise AssertionError(f"{setup.key}: no decision id in {headers}")
            if setup.error_code is not None:
                assert json.loads(body)["error"]["code"] == setup.error_code, body[:300]
