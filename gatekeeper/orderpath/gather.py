"""Stage 2a, gathering: what the decision needs from outside Postgres, before any lock — the
account state (balances, positions, live orders: cached, else from the broker), the order a
replace changes, the instruments of every leg (group, multiplier, underlying) and their
quotes. After the ledger is read under the lock, :func:`with_in_flight` adds the instruments
and quotes of orders in flight that this gathering did not know of (usually all cached)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any

from gatekeeper.adapters.account_payloads import AccountPayloads
from gatekeeper.adapters.account_state import StateSource
from gatekeeper.adapters.decisions import DecisionInputs
from gatekeeper.adapters.instruments import InstrumentSource
from gatekeeper.core import AccountSnapshot, ComplexOrder, InvalidOrder, Order, OrderPatch
from gatekeeper.core.holdings import contained_orders
from gatekeeper.core.instruments import Instrument
from gatekeeper.core.payloads import PayloadMemo, quote_from_payload, snapshot_from_payloads
from gatekeeper.core.snapshot import StartOfDaySource
from gatekeeper.core.symbols import InstrumentType
from gatekeeper.orderpath.inputs import instrument_pairs, quote_pairs, replaced_order

_PLAIN = (InstrumentType.EQUITY, InstrumentType.CRYPTOCURRENCY)


@dataclass(frozen=True)
class Gathered:
    """The order (a replace already applied to the order it changes) and its inputs."""

    orders: Order | ComplexOrder
    payloads: AccountPayloads
    instruments: Mapping[str, Instrument]
    quotes: Sequence[Mapping[str, Any]]

    def snapshot(
        self, account: str, inputs: DecisionInputs, memo: PayloadMemo | None = None
    ) -> AccountSnapshot:
        """The account as the core sees it: what was gathered, with the start of the day and
        the clock the locked read gave (``memo``: payloads parsed before)."""
        payloads = self.payloads
        source = inputs.start_of_day_source
        return snapshot_from_payloads(
            account_number=account,
            balances=payloads.balances,
            positions=payloads.positions,
            live_orders=payloads.live_orders,
            quotes=self.quotes,
            start_of_day_nlv=inputs.start_of_day_nlv,
            fetched_at=inputs.now - timedelta(seconds=payloads.age_seconds),
            trading_status=payloads.trading_status,
            instruments=self.instruments,
            memo=memo,
            start_of_day_source=StartOfDaySource(source) if source else None,
            day_net_deposits=inputs.net_deposits,
        )


async def gather(
    state: StateSource,
    instruments: InstrumentSource,
    *,
    account: str,
    client_headers: Mapping[str, str],
    orders: Order | ComplexOrder | OrderPatch,
    replaces_order_id: str | None,
    operator_check: bool,
) -> Gathered:
    """The account state, then the instruments of the order's legs, the positions and the
    working orders, then the quotes of those instruments and of their underlyings."""
    payloads = await state.account(account, client_headers, operator_check=operator_check)
    resolved: Order | ComplexOrder
    if isinstance(orders, OrderPatch):
        if replaces_order_id is None:
            raise InvalidOrder("invalid_order: a replace needs the id of the order it replaces")
        resolved = replaced_order(payloads, replaces_order_id, orders)
    else:
        resolved = orders
    pairs = instrument_pairs(contained_orders(resolved), payloads)
    found = await instruments.resolve(pairs, client_headers, payloads.positions)
    quotes = await state.quotes(quote_pairs(pairs, found), client_headers, payloads, account)
    return Gathered(resolved, payloads, found, quotes)


async def with_in_flight(
    state: StateSource,
    instruments: InstrumentSource,
    client_headers: Mapping[str, str],
    snapshot: AccountSnapshot,
    in_flight: Sequence[Order],
    payloads: AccountPayloads,
) -> AccountSnapshot:
    """The snapshot with the instruments and quotes of in-flight orders it lacks."""
    pairs = list(
        dict.fromkeys(
            (leg.instrument_type.value, leg.symbol)
            for order in in_flight
            for leg in order.legs
            if leg.symbol not in snapshot.quotes
            or (leg.instrument_type not in _PLAIN and leg.symbol not in snapshot.instruments)
        )
    )
    if not pairs:
        return snapshot
    found = await instruments.resolve(pairs, client_headers, payloads.positions)
    merged = {**found, **snapshot.instruments}
    wanted = [p for p in quote_pairs(pairs, found) if p[1] not in snapshot.quotes]
    quotes = await state.quotes(wanted, client_headers)
    extra = {q.symbol: q for q in (quote_from_payload(item) for item in quotes)}
    return replace(snapshot, instruments=merged, quotes={**extra, **snapshot.quotes})
