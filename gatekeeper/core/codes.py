"""Stable reason codes: the metric label, the API field and the audit column.

Never rename a value: dashboards, alerts and audit queries depend on them.
"""

from __future__ import annotations

from enum import StrEnum


class Code(StrEnum):
    """Why an order was rejected (violations) or how a decision was reached (notes)."""

    # violations: any one rejects the order
    EMERGENCY_STOP = "emergency_stop"
    MAX_SINGLE_TRADE = "max_single_trade"
    CASH_RESERVE = "cash_reserve"
    MAX_PORTFOLIO_EXPOSURE = "max_portfolio_exposure"
    MAX_POSITION_CONCENTRATION = "max_position_concentration"
    MAX_DAILY_LOSS = "max_daily_loss"
    MAX_DAILY_TRADES = "max_daily_trades"
    PRICE_UNAVAILABLE = "price_unavailable"
    QUOTE_INVALID = "quote_invalid"
    PRICE_COLLAR = "price_collar"
    MAX_ORDER_QUANTITY = "max_order_quantity"
    ACCOUNT_RESTRICTED = "account_restricted"
    ACCOUNT_CLOSING_ONLY = "account_closing_only"
    ACCOUNT_MARGIN_CALL = "account_margin_call"
    NO_PROTECTION = "no_protection"
    ACCOUNT_STATE_UNAVAILABLE = "account_state_unavailable"
    STALE_ACCOUNT_STATE = "stale_account_state"
    UNSUPPORTED_ORDER_ROUTE = "unsupported_order_route"
    # notes: recorded with the decision, never a rejection on their own
    PROTECTION_INACTIVE = "protection_inactive"
    DEFAULT_PROTECTION = "default_protection"
    RISK_REDUCING = "risk_reducing"
    START_OF_DAY_FIRST_SIGHT = "start_of_day_first_sight"


class ParseCode(StrEnum):
    """Why a request body could not be turned into an order."""

    INVALID_JSON = "invalid_json"
    INVALID_ORDER = "invalid_order"
    PAYLOAD_TOO_LARGE = "payload_too_large"
    UNSUPPORTED_MEDIA_TYPE = "unsupported_media_type"
