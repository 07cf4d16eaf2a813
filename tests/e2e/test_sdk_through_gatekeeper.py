"""The real client libraries through the gatekeeper: a rejection surfaces in each with the
violated rule and its figures (that they work unchanged is test_sdk_through_proxy.py)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from tests.e2e.sdk_drivers import (
    TASTYWARE_WARNING_FILTER,
    DriverError,
    run_tastytrade_sdk_async,
    run_tastyware,
)
from tests.e2e.tls_gate import TlsGate
from tests.fixtures.gate import Gate
from tests.fixtures.paper import PaperBroker

# 1 AAPL at 20,000.00 is 20.00 % of NLV 100,000.00: above the default 10 % single-trade limit.
TOO_EXPENSIVE = Decimal("20000.00")


@pytest.mark.filterwarnings(TASTYWARE_WARNING_FILTER)
async def test_tastyware_error_names_the_rule_and_figures(
    paper_broker: PaperBroker, gatekeeper: Gate
) -> None:
    with pytest.raises(DriverError) as caught:
        await run_tastyware(
            gatekeeper.proxy_url,
            client_secret=paper_broker.client_secret,
            refresh_token=paper_broker.refresh_token,
            account_number=paper_broker.account_number,
            price=TOO_EXPENSIVE,
        )
    assert caught.value.step == "dry run"
    message = caught.value.message
    assert "max_single_trade" in message
    assert "20.00%" in message
    assert "10.00%" in message
    assert paper_broker.book.received_orders() == []


async def test_tastytrade_sdk_error_names_the_rule_and_figures(
    paper_broker: PaperBroker, tls_gatekeeper: TlsGate, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The SDK as a user runs it: HTTPS to a plain api_base_url, the authority trusted
    # through REQUESTS_CA_BUNDLE.
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(tls_gatekeeper.authority))
    with pytest.raises(DriverError) as caught:
        await run_tastytrade_sdk_async(
            tls_gatekeeper.gate.proxy_url,
            login=paper_broker.login,
            password=paper_broker.password,
            account_number=paper_broker.account_number,
            price=TOO_EXPENSIVE,
        )
    error = caught.value
    assert (error.step, error.status, error.code) == ("dry run", 422, "risk_check_failed")
    assert "max_single_trade" in error.message
    assert "20.00%" in error.message
    assert "10.00%" in error.message
    assert paper_broker.book.received_orders() == []
