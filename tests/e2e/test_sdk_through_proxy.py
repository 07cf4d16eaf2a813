"""The real client libraries, unchanged, through the gatekeeper proxy to the paper broker."""

from __future__ import annotations

import pytest
import tastytrade.session

from tests.e2e.sdk_drivers import TASTYWARE_WARNING_FILTER, run_tastytrade_sdk_async, run_tastyware
from tests.e2e.test_sdk_paper_direct import check_run
from tests.e2e.tls_gate import TlsGate
from tests.fixtures.gate import Gate
from tests.fixtures.paper import PaperBroker


def proxied_requests(gate: Gate) -> float:
    """Requests the proxy answered (any route kind, any status)."""
    total = 0.0
    for metric in gate.metrics.proxy_requests.collect():
        total += sum(sample.value for sample in metric.samples if sample.name.endswith("_total"))
    return total


@pytest.mark.filterwarnings(TASTYWARE_WARNING_FILTER)
@pytest.mark.parametrize("pointing", ["client-attribute", "module-global"])
async def test_tastyware_through_the_gatekeeper(
    gatekeeper: Gate,
    paper_broker: PaperBroker,
    monkeypatch: pytest.MonkeyPatch,
    pointing: str,
) -> None:
    if pointing == "module-global":
        monkeypatch.setattr(tastytrade.session, "API_URL", gatekeeper.proxy_url)
    run = await run_tastyware(
        gatekeeper.proxy_url,
        client_secret=paper_broker.client_secret,
        refresh_token=paper_broker.refresh_token,
        account_number=paper_broker.account_number,
        point_client=pointing == "client-attribute",
    )
    check_run(run, paper_broker)
    # OAuth, accounts, balances, positions, quotes, dry run, place, live, cancel, get: all
    # went through the proxy.
    assert proxied_requests(gatekeeper) >= 9


async def test_tastytrade_sdk_through_the_gatekeeper_over_https(
    tls_gatekeeper: TlsGate, paper_broker: PaperBroker, monkeypatch: pytest.MonkeyPatch
) -> None:
    # As a user would: a plain api_base_url (host:port; the SDK prepends https://), the
    # gatekeeper's certificate authority trusted through the variable requests reads.
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(tls_gatekeeper.authority))
    gate = tls_gatekeeper.gate
    assert gate.proxy_url.startswith("https://127.0.0.1:")
    run = await run_tastytrade_sdk_async(
        gate.proxy_url,
        login=paper_broker.login,
        password=paper_broker.password,
        account_number=paper_broker.account_number,
    )
    check_run(run, paper_broker)
    assert proxied_requests(gate) >= 8


@pytest.mark.filterwarnings(TASTYWARE_WARNING_FILTER)
async def test_tastyware_through_the_gatekeeper_over_https(
    tls_gatekeeper: TlsGate, paper_broker: PaperBroker, monkeypatch: pytest.MonkeyPatch
) -> None:
    # tastyware's HTTP client (httpx) trusts the authority named by SSL_CERT_FILE.
    monkeypatch.setenv("SSL_CERT_FILE", str(tls_gatekeeper.authority))
    gate = tls_gatekeeper.gate
    monkeypatch.setattr(tastytrade.session, "API_URL", gate.proxy_url)
    run = await run_tastyware(
        gate.proxy_url,
        client_secret=paper_broker.client_secret,
        refresh_token=paper_broker.refresh_token,
        account_number=paper_broker.account_number,
        point_client=False,
    )
    check_run(run, paper_broker)
    assert proxied_requests(gate) >= 9
