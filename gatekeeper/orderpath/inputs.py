"""What the engine gathers before it decides, as the core wants it: protection rows as
:class:`~gatekeeper.core.Limits` (the configured defaults, a global stop over them), the risk
parameters from settings, and from the broker's payloads the instruments and quotes to look up,
the broker ids the state shows, and the order a replace leads to.

Pure functions of their arguments (no I/O): the engine, the stop actions and
``gatekeeper check`` share them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from gatekeeper.adapters import protections as store
from gatekeeper.adapters.account_payloads import AccountPayloads
from gatekeeper.core import (
    AccountStateInvalid,
    InvalidOrder,
    Limits,
    Order,
    OrderPatch,
    RiskParameters,
    StopMode,
    apply_replace,
)
from gatekeeper.core.instruments import Instrument
from gatekeeper.core.order import to_decimal
from gatekeeper.core.payloads import working_order_from_payload
from gatekeeper.core.symbols import InstrumentType
from gatekeeper.settings import RiskSettings


def default_limits(risk: RiskSettings) -> Limits:
    """The configured defaults that guard an account with no protection."""
    return Limits(
        cash_reserve_percentage=risk.default_cash_reserve_percentage,
        max_daily_loss_percentage=risk.default_max_daily_loss_percentage,
        max_single_trade_percentage=risk.default_max_single_trade_percentage,
        max_portfolio_exposure_percentage=risk.default_max_portfolio_exposure_percentage,
        max_position_concentration_percentage=risk.default_max_position_concentration_percentage,
        max_daily_trades=risk.default_max_daily_trades,
        protection_id="default",
        is_default=True,
    )


def risk_parameters(risk: RiskSettings) -> RiskParameters:
    """How the core trusts quotes and stresses shorts, from the ``[risk]`` settings."""
    return RiskParameters(
        stress_up_percentage=risk.stress_up_percentage,
        max_quote_age_seconds=risk.max_quote_age_seconds,
        max_spread_percentage=risk.max_spread_percentage,
    )


def limits_of(protection: store.Protection) -> Limits:
    """A protection row as the core sees it. The core's ``emergency_stop_mode`` is the mode of
    the active stop (fixed when it was triggered), not the protection's setting; with no
    active stop the core ignores it."""
    active_mode = protection.emergency_stop_active_mode
    return Limits(
        cash_reserve_percentage=protection.cash_reserve_percentage,
        max_daily_loss_percentage=protection.max_daily_loss_percentage,
        max_single_trade_percentage=protection.max_single_trade_percentage,
        max_portfolio_exposure_percentage=protection.max_portfolio_exposure_percentage,
        max_position_concentration_percentage=protection.max_position_concentration_percentage,
        max_daily_trades=protection.max_daily_trades,
        active=protection.active,
        emergency_stop_active=protection.emergency_stop_active,
        emergency_stop_mode=StopMode(active_mode) if active_mode else StopMode.HALT,
        protection_id=str(protection.id),
        price_collar_equity_percentage=protection.price_collar_equity_percentage,
        price_collar_option_percentage=protection.price_collar_option_percentage,
        price_collar_option_width_multiple=protection.price_collar_option_width_multiple,
        price_collar_future_percentage=protection.price_collar_future_percentage,
        max_order_quantity=_quantity_caps(protection),
    )


def under_global_stop(limits: tuple[Limits, ...], mode: str | None) -> tuple[Limits, ...]:
    """Every protection (the configured defaults too) as stopped while the global stop is
    active (``mode`` not None); a protection's own halt stays stricter than a global
    reduce_only."""
    if mode is None:
        return limits
    return tuple(
        replace(
            lim,
            emergency_stop_active=True,
            emergency_stop_mode=StopMode.HALT
            if lim.emergency_stop_active and lim.emergency_stop_mode is StopMode.HALT
            else StopMode(mode),
        )
        for lim in limits
    )


def _quantity_caps(protection: store.Protection) -> dict[InstrumentType, Decimal]:
    caps = {
        InstrumentType.EQUITY: protection.max_order_quantity_equity,
        InstrumentType.EQUITY_OPTION: protection.max_order_quantity_equity_option,
        InstrumentType.FUTURE: protection.max_order_quantity_future,
        InstrumentType.FUTURE_OPTION: protection.max_order_quantity_future_option,
    }
    return {kind: Decimal(cap) for kind, cap in caps.items() if cap is not None}


def instrument_pairs(orders: Iterable[Order], payloads: AccountPayloads) -> list[tuple[str, str]]:
    """``(instrument_type, symbol)`` of every leg of ``orders``, position and live-order leg."""
    pairs: list[tuple[str, str]] = []
    for order in orders:
        pairs.extend((leg.instrument_type.value, leg.symbol) for leg in order.legs)
    for item in (*payloads.positions, *live_legs(payloads.live_orders)):
        kind, symbol = item.get("instrument-type"), item.get("symbol")
        if isinstance(kind, str) and isinstance(symbol, str):
            pairs.append((kind, symbol))
    return list(dict.fromkeys(pairs))


def quote_pairs(
    pairs: Iterable[tuple[str, str]], instruments: Mapping[str, Instrument]
) -> list[tuple[str, str]]:
    """Every quote the evaluation may need: each instrument's own and its underlying's, as
    the instrument names it (``/ESZ6`` for a future option, ``SPX`` for an SPXW option).

    An equity option's underlying is asked as an equity and as an index (``"Index"``, see
    quote_cache.QUERY_KEYS): SPX is quoted only as the latter, SPY only as the former.
    """
    quotes = list(pairs)  # unresolved ones too: their quote costs nothing extra to ask
    for instrument in instruments.values():
        quotes.append((instrument.instrument_type.value, instrument.symbol))
        if instrument.underlying != instrument.symbol:
            quotes.append((instrument.underlying_type.value, instrument.underlying))
            if instrument.underlying_type is InstrumentType.EQUITY:
                quotes.append(("Index", instrument.underlying))
    return list(dict.fromkeys(quotes))


def live_legs(live_orders: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    return [
        leg
        for order in live_orders
        for leg in (order.get("legs") or [])
        if isinstance(leg, Mapping)
    ]


def order_ids(payloads: AccountPayloads) -> set[str]:
    """Broker ids of the orders the state shows (complex orders by their own id too)."""
    ids: set[str] = set()
    for item in payloads.live_orders:
        for key in ("id", "complex-order-id"):
            if item.get(key) is not None:
                ids.add(str(item[key]))
    return ids


def replaced_order(payloads: AccountPayloads, order_id: str, patch: OrderPatch) -> Order:
    for item in payloads.live_orders:
        if str(item.get("id")) == order_id:
            working = working_order_from_payload(item)
            if working is None:
                break
            return apply_replace(working.order, patch)
    raise InvalidOrder(f"invalid_order: order {order_id} is not a working order of the account")


def nlv_of(balances: Mapping[str, Any]) -> Decimal:
    """The account's net liquidating value in the broker's balances."""
    try:
        return to_decimal(balances.get("net-liquidating-value"))
    except ValueError:
        raise AccountStateInvalid("broker balances lack a net-liquidating-value") from None


def state_fetched_at(payloads: AccountPayloads) -> datetime:
    """When the broker's state was fetched (this host's clock): orders answered before it are
    in it (sql/0030 looks only the later ones up among its order ids)."""
    return datetime.now(UTC) - timedelta(seconds=payloads.age_seconds)
