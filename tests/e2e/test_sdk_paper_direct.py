"""The real client libraries against the paper broker directly (no gatekeeper in between)."""

from __future__ import annotations

from decimal import Decimal

import pytest
import tastytrade.session

from tests.e2e.sdk_drivers import (
    RESTING_SYMBOL,
    TASTYWARE_WARNING_FILTER,
    DriverError,
    SdkRun,
    run_tastytrade_sdk_async,
    run_tastyware,
)
from tests.fixtures.paper import PaperBroker

SEED_POSITIONS = {
    "TQQQ": Decimal(100),
    "SPY   261218C00600000": Decimal(2),
    "BIL": Decimal(410),
}


def check_run(run: SdkRun, broker: PaperBroker) -> None:
    assert run.account_numbers == [broker.account_number, broker.cash_account_number]
    assert run.net_liquidating_value == Decimal("100000.00")
    assert run.cash_balance == Decimal("60000.00")
    assert run.positions == SEED_POSITIONS
    assert run.placed_status == "Live"
    assert run.live_order_ids == [run.order_id]
    assert run.cancelled_status == "Cancelled"
    assert run.final_status == "Cancelled"
    # A buy of 1 share at 100.00 uses 100.00 of buying power (a debit, negative when signed).
    assert run.dry_run_change_in_buying_power == Decimal("-100.00")
    # What reached the broker: exactly one placed order (dry runs are not logged), now cancelled.
    (entry,) = broker.book.received_orders()
    assert (entry.kind, entry.outcome, entry.order_ids) == ("order", "accepted", [run.order_id])
    order = broker.book.accounts[broker.account_number].orders[run.order_id]
    assert order.status == "Cancelled"
    assert [(leg.symbol, leg.quantity) for leg in order.legs] == [(RESTING_SYMBOL, Decimal(1))]
    assert broker.book.accounts[broker.account_number].cash == Decimal("60000.00")


@pytest.mark.filterwarnings(TASTYWARE_WARNING_FILTER)
@pytest.mark.parametrize("pointing", ["client-attribute", "module-global"])
async def test_tastyware_against_paper_broker(
    paper_broker: PaperBroker, monkeypatch: pytest.MonkeyPatch, pointing: str
) -> None:
    if pointing == "module-global":
        monkeypatch.setattr(tastytrade.session, "API_URL", paper_broker.url)
    run = await run_tastyware(
        paper_broker.url,
        client_secret=paper_broker.client_secret,
        refresh_token=paper_broker.refresh_token,
        account_number=paper_broker.account_number,
        point_client=pointing == "client-attribute",
    )
    check_run(run, paper_broker)
    assert run.quotes == {"AAPL": Decimal("150.00")}
    assert str(paper_broker.book.received_orders()[0].body["source"]).startswith(
        "tastyware/tastytrade"
    )


async def test_tastytrade_sdk_against_paper_broker(paper_broker: PaperBroker) -> None:
    run = await run_tastytrade_sdk_async(
        paper_broker.url,
        login=paper_broker.login,
        password=paper_broker.password,
        account_number=paper_broker.account_number,
    )
    check_run(run, paper_broker)
    # The SDK logged out: its session token no longer works.
    assert all(token.kind == "oauth" for token in paper_broker.book.tokens.values())


@pytest.mark.filterwarnings(TASTYWARE_WARNING_FILTER)
async def test_drivers_report_client_errors(paper_broker: PaperBroker) -> None:
    with pytest.raises(DriverError) as caught:
        await run_tastyware(
            paper_broker.url,
            client_secret="wrong-secret-000",
            refresh_token=paper_broker.refresh_token,
            account_number=paper_broker.account_number,
        )
    assert caught.value.step == "accounts"
    assert "invalid_credentials" in caught.value.message
    with pytest.raises(DriverError) as sdk_caught:
        await run_tastytrade_sdk_async(
            paper_broker.url,
            login=paper_broker.login,
            password="wrong-password",
            account_number=paper_broker.account_number,
        )
    assert (sdk_caught.value.status, sdk_caught.value.code) == (401, "invalid_credentials")
    # An injected 503 on order POSTs surfaces at the first of them, the dry run.
    paper_broker.book.add_fault(
        f"/accounts/{paper_broker.account_number}/orders", status=503, method="POST"
    )
    with pytest.raises(DriverError) as fault_caught:
        await run_tastytrade_sdk_async(
            paper_broker.url,
            login=paper_broker.login,
            password=paper_broker.password,
            account_number=paper_broker.account_number,
        )
    assert (fault_caught.value.step, fault_caught.value.status) == ("dry run", 503)
