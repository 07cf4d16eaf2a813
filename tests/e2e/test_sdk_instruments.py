"""tastyware's instrument look-ups, unchanged, through the gatekeeper to the paper broker.

tastyware puts symbols with a ``/`` into the path percent-encoded (``BTC%2FUSD``,
``.%2FESZ6%20E3AZ6%20261218P6000``): the proxy must forward those reads byte for byte.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from decimal import Decimal

import pytest
from tastytrade import Session
from tastytrade.instruments import Cryptocurrency, Future, FutureOption, Option
from tastytrade.market_data import get_market_data_by_type

from tests.fixtures.gate import Gate
from tests.fixtures.paper import PaperBroker


@pytest.fixture
async def session(gatekeeper: Gate, paper_broker: PaperBroker) -> AsyncIterator[Session]:
    """A tastyware session signed in through the gatekeeper with the seed's OAuth client."""
    # Building the client loads the CA bundle: off the event loop.
    client = await asyncio.to_thread(
        Session, paper_broker.client_secret, paper_broker.refresh_token
    )
    async with client as opened:
        opened._client.base_url = gatekeeper.proxy_url
        yield opened


def seen_paths(paper_broker: PaperBroker) -> list[str]:
    return [request.raw_path for request in paper_broker.book.seen_requests()]


async def test_instrument_look_ups_reach_the_broker_byte_for_byte(
    session: Session, paper_broker: PaperBroker
) -> None:
    future = await Future.get(session, "/ESZ6")
    assert (future.symbol, future.product_code, future.notional_multiplier) == (
        "/ESZ6",
        "ES",
        Decimal(50),
    )
    assert future.future_product is not None
    assert future.future_product.root_symbol == "/ES"

    future_option = await FutureOption.get(session, "./ESZ6 E3AZ6 261218P6000")
    assert future_option.symbol == "./ESZ6 E3AZ6 261218P6000"
    assert (future_option.underlying_symbol, future_option.multiplier) == ("/ESZ6", Decimal(1))

    crypto = await Cryptocurrency.get(session, "BTC/USD")
    assert crypto.symbol == "BTC/USD"

    option = await Option.get(session, "SPXW  261218P01000000")
    assert (option.root_symbol, option.underlying_symbol) == ("SPXW", "SPX")
    assert option.shares_per_contract == 100

    paths = seen_paths(paper_broker)
    for expected in (
        "/instruments/futures/ESZ6",
        "/instruments/future-options/.%2FESZ6%20E3AZ6%20261218P6000",
        "/instruments/cryptocurrencies/BTC%2FUSD",
        "/instruments/equity-options/SPXW%20%20261218P01000000",
    ):
        assert expected in paths, paths


async def test_futures_and_index_quotes_through_the_gatekeeper(session: Session) -> None:
    quotes = await get_market_data_by_type(
        session,
        indices=["SPX", "NDX", "RUT"],
        futures=["/ESZ6"],
        future_options=["./ESZ6 E3AZ6 261218P4900"],
    )
    marks = {quote.symbol: quote.mark for quote in quotes}
    assert marks == {
        "SPX": Decimal("5000.00"),
        "NDX": Decimal("17500.00"),
        "RUT": Decimal("2000.00"),
        "/ESZ6": Decimal("5005.125"),
        "./ESZ6 E3AZ6 261218P4900": Decimal("12.50"),
    }
