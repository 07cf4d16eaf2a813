"""Build an :class:`AccountSnapshot` from the broker's payloads.

Inputs are the ``data`` of ``/balances``, the ``data.items`` of ``/positions``,
``/orders/live`` and ``/market-data/by-type``. Anything not understood raises
:class:`AccountStateInvalid`: a snapshot that silently drops a position or a working order
would understate risk.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, TypeVar

from gatekeeper.core.errors import AccountStateInvalid, OrderParseError
from gatekeeper.core.instruments import Instrument
from gatekeeper.core.order import to_decimal
from gatekeeper.core.parse import parse_live_order
from gatekeeper.core.snapshot import (
    AccountSnapshot,
    Position,
    Quote,
    StartOfDaySource,
    TradingStatus,
    WorkingOrder,
)
from gatekeeper.core.symbols import InstrumentType, underlying_of

# Statuses after which an order can no longer fill.
TERMINAL_STATUSES = frozenset(
    {"Filled", "Cancelled", "Expired", "Rejected", "Removed", "Partially Removed"}
)


def _decimal(payload: Mapping[str, Any], key: str, *, required: bool = True) -> Decimal | None:
    value = payload.get(key)
    if value is None:
        if required:
            raise AccountStateInvalid(f"broker payload lacks {key!r}")
        return None
    try:
        return to_decimal(value)
    except ValueError:
        raise AccountStateInvalid(f"broker payload field {key!r} is not a number") from None


def _required(payload: Mapping[str, Any], key: str) -> Decimal:
    value = _decimal(payload, key)
    assert value is not None  # noqa: S101 - required=True never returns None
    return value


def position_from_payload(item: Mapping[str, Any]) -> Position | None:
    """One ``/positions`` item; ``None`` for a flat position (quantity 0)."""
    raw_type = item.get("instrument-type")
    try:
        instrument_type = InstrumentType(raw_type if isinstance(raw_type, str) else "")
    except ValueError:
        raise AccountStateInvalid("position with an unsupported instrument-type") from None
    symbol = item.get("symbol")
    if not isinstance(symbol, str) or not symbol:
        raise AccountStateInvalid("position without a symbol")
    quantity = _required(item, "quantity")
    direction = item.get("quantity-direction")
    if quantity == 0 or direction == "Zero":
        return None
    if direction not in ("Long", "Short"):
        raise AccountStateInvalid(f"position {symbol}: unknown quantity-direction")
    multiplier = _decimal(item, "multiplier", required=False)
    if multiplier is None:
        multiplier = Decimal(100) if instrument_type is InstrumentType.EQUITY_OPTION else Decimal(1)
    if multiplier <= 0:
        raise AccountStateInvalid(f"position {symbol}: multiplier must be positive")
    mark = _decimal(item, "mark", required=False) or _decimal(item, "mark-price", required=False)
    return Position(
        symbol=symbol,
        instrument_type=instrument_type,
        quantity=abs(quantity) if direction == "Long" else -abs(quantity),
        multiplier=multiplier,
        mark=mark,
        close_price=_decimal(item, "close-price", required=False),
        # The broker's own name for the underlying (SPX for an SPXW option); the symbol's
        # reading (the OCC root) only when the payload does not say.
        underlying=_underlying(item) or underlying_of(instrument_type, symbol),
    )


def _underlying(item: Mapping[str, Any]) -> str | None:
    value = item.get("underlying-symbol")
    return value if isinstance(value, str) and value.strip() else None


def quote_from_payload(item: Mapping[str, Any]) -> Quote:
    """One ``/market-data/by-type`` item."""
    symbol = item.get("symbol")
    if not isinstance(symbol, str) or not symbol:
        raise AccountStateInvalid("quote without a symbol")
    return Quote(
        symbol=symbol,
        bid=_decimal(item, "bid", required=False),
        ask=_decimal(item, "ask", required=False),
        mid=_decimal(item, "mid", required=False),
        mark=_decimal(item, "mark", required=False),
        updated_at=_timestamp(item.get("updated-at")),
    )


def _timestamp(value: object) -> datetime | None:
    """``updated-at`` as ISO 8601 or epoch milliseconds (both seen from TastyTrade)."""
    if value is None:
        return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        return datetime.fromtimestamp(value / 1000, tz=UTC)
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise AccountStateInvalid("quote with an unreadable updated-at") from None
        return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)
    raise AccountStateInvalid("quote with an unreadable updated-at")


def working_order_from_payload(item: Mapping[str, Any]) -> WorkingOrder | None:
    """One ``/orders/live`` item; ``None`` if terminal or nothing remains to fill."""
    if item.get("status") in TERMINAL_STATUSES:
        return None
    legs = item.get("legs")
    if isinstance(legs, list):
        remaining = [
            leg
            for leg in legs
            if not (isinstance(leg, Mapping) and leg.get("remaining-quantity") in (0, "0", "0.0"))
        ]
        if not remaining:
            return None
        item = {**item, "legs": remaining}
    try:
        order = parse_live_order(item)
    except OrderParseError as exc:
        raise AccountStateInvalid(f"working order not understood: {exc.message}") from None
    order_id = item.get("id")
    complex_id = item.get("complex-order-id")
    return WorkingOrder(
        order=order,
        order_id=None if order_id is None else str(order_id),
        complex_order_id=None if complex_id is None else str(complex_id),
        contingent=item.get("status") == "Contingent",
    )


_RESTRICTIONS = ("is-closing-only", "is-frozen", "is-closed", "is-in-margin-call")


def trading_status_from_payload(item: Mapping[str, Any]) -> TradingStatus:
    """``/accounts/{a}/trading-status``: the restrictions the rules read. A flag that is
    present but not a boolean is not understood (an unreadable restriction fails closed)."""
    flags: dict[str, bool] = {}
    for key in _RESTRICTIONS:
        value = item.get(key, False)
        if not isinstance(value, bool):
            raise AccountStateInvalid(f"trading-status field {key!r} is not a boolean")
        flags[key.replace("-", "_")] = value
    return TradingStatus(**flags)


_Parsed = TypeVar("_Parsed")


class PayloadMemo:
    """What each payload item parsed to, found again by the item's identity: for a caller
    whose payloads are never changed in place once read (the account state cache,
    gatekeeper.adapters.account_state: each order of a warm account meets the same position,
    order and quote objects). Bounded, oldest out first; an entry holds its item, so the
    item's id cannot be reused while the entry lives. One event loop's: not thread-safe."""

    def __init__(self, size: int = 4096) -> None:
        self._items: OrderedDict[int, tuple[object, object]] = OrderedDict()
        self._size = size

    def parsed(self, item: Mapping[str, Any], parse: Callable[[Any], _Parsed]) -> _Parsed:
        key = id(item)
        found = self._items.get(key)
        if found is not None and found[0] is item:
            return found[1]  # type: ignore[return-value]
        value = parse(item)  # a payload it cannot parse raises, and is not kept
        self._items[key] = (item, value)
        if len(self._items) > self._size:
            self._items.popitem(last=False)
        return value


def _direct(item: Mapping[str, Any], parse: Callable[[Any], _Parsed]) -> _Parsed:
    return parse(item)


def snapshot_from_payloads(
    *,
    account_number: str,
    balances: Mapping[str, Any],
    positions: Iterable[Mapping[str, Any]],
    live_orders: Iterable[Mapping[str, Any]],
    quotes: Iterable[Mapping[str, Any]],
    start_of_day_nlv: Decimal | None,
    fetched_at: datetime,
    trading_status: Mapping[str, Any] | None = None,
    instruments: Mapping[str, Instrument] | None = None,
    memo: PayloadMemo | None = None,
    start_of_day_source: StartOfDaySource | None = None,
    day_net_deposits: Decimal = Decimal(0),
) -> AccountSnapshot:
    """Assemble a snapshot from the broker's payloads (see the module docstring).

    ``instruments``: by symbol, every instrument the adapters could establish (see
    :mod:`gatekeeper.core.instruments`); one missing is one whose price is unavailable.
    ``memo``: items parsed before, found by identity (see :class:`PayloadMemo`).
    """
    parsed = _direct if memo is None else memo.parsed
    held = tuple(
        p for p in (parsed(item, position_from_payload) for item in positions) if p is not None
    )
    working = tuple(
        w
        for w in (parsed(item, working_order_from_payload) for item in live_orders)
        if w is not None
    )
    quote_map = {q.symbol: q for q in (parsed(item, quote_from_payload) for item in quotes)}
    return AccountSnapshot(
        account_number=account_number,
        nlv=_required(balances, "net-liquidating-value"),
        cash_balance=_required(balances, "cash-balance"),
        start_of_day_nlv=start_of_day_nlv,
        fetched_at=fetched_at,
        trading_status=trading_status_from_payload(trading_status or {}),
        positions=held,
        working_orders=working,
        quotes=quote_map,
        instruments=dict(instruments or {}),
        start_of_day_source=start_of_day_source,
        day_net_deposits=day_net_deposits,
    )
