"""Rendering the book as TastyTrade's JSON: dasherized keys, decimals as strings.

Shapes follow the recorded payloads in /work/shared/fixtures/tastytrade-recorded and the
fields tastyware 13 requires to parse them.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from gatekeeper.paper.model import (
    CREDIT,
    DEBIT,
    NONE_EFFECT,
    Account,
    Position,
    Token,
    User,
)
from gatekeeper.paper.valuation import Valuation

ZERO = Decimal(0)
DXLINK_URL = "wss://tasty-demo-ws.dxfeed.com/delayed"


def dec(value: Decimal) -> str:
    """``Decimal("5")`` → ``"5.0"``: plain notation, always with a decimal point."""
    text = format(value, "f")
    return text if "." in text else text + ".0"


def qty(value: Decimal) -> int | str:
    """Quantities are JSON integers when whole (as recorded), else decimal strings."""
    return int(value) if value == value.to_integral_value() else dec(value)


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds")


def epoch_ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def envelope(data: Any, context: str) -> dict[str, Any]:
    return {"data": data, "context": context}


def effect_of(signed: Decimal) -> str:
    """Positive is a debit (money out), negative a credit."""
    if signed > 0:
        return DEBIT
    return CREDIT if signed < 0 else NONE_EFFECT


def user_payload(user: User) -> dict[str, Any]:
    return {
        "email": user.email,
        "username": user.username,
        "external-id": user.external_id,
        "is-confirmed": True,
    }


def session_payload(user: User, token: Token, remember_token: str | None) -> dict[str, Any]:
    data: dict[str, Any] = {
        "user": user_payload(user),
        "session-token": token.value,
        "session-expiration": token.expires_at.astimezone(UTC)
        .isoformat(timespec="milliseconds")
        .replace("+00:00", "Z"),
    }
    if remember_token is not None:
        data["remember-token"] = remember_token
    return data


def customer_payload(user: User, now: datetime) -> dict[str, Any]:
    address = {
        "street-one": "1 Paper Street",
        "city": "Chicago",
        "state-region": "IL",
        "postal-code": "60604",
        "country": "USA",
        "is-foreign": False,
        "is-domestic": True,
    }
    return {
        "id": "me",
        "external-id": user.external_id,
        "first-name": user.first_name,
        "last-name": user.last_name,
        "email": user.email,
        "address": address,
        "mailing-address": address,
        "is-foreign": False,
        "usa-citizenship-type": "Citizen",
        "mobile-phone-number": "+1 312 555 0100",
        "birth-date": "1980-01-01",
        "tax-number-type": "SSN",
        "subject-to-tax-withholding": False,
        "has-industry-affiliation": False,
        "has-listed-affiliation": False,
        "has-political-affiliation": False,
        "has-delayed-quotes": True,
        "has-pending-or-approved-application": False,
        "is-professional": False,
        "permitted-account-types": [],
        "created-at": iso(now.replace(month=1, day=2)),
        "agreed-to-margining": True,
        "agreed-to-terms": True,
    }


def account_payload(account: Account) -> dict[str, Any]:
    return {
        "account-number": account.account_number,
        "nickname": account.nickname,
        "account-type-name": account.account_type_name,
        "margin-or-cash": account.margin_or_cash,
        "is-closed": False,
        "day-trader-status": False,
        "is-firm-error": False,
        "is-firm-proprietary": False,
        "is-futures-approved": account.margin_or_cash == "Margin",
        "is-test-drive": False,
        "is-foreign": False,
        "opened-at": iso(account.opened_at),
        "created-at": iso(account.opened_at),
        "investment-objective": "SPECULATION",
        "suitable-options-level": "No Restrictions",
    }


def account_item(account: Account) -> dict[str, Any]:
    return {"account": account_payload(account), "authority-level": "owner"}


# The recorded balance fields that are 0 in every account the paper broker keeps (the static
# upstream of the benchmarks serves them too).
ZERO_BALANCE_FIELDS = (
    "bond-margin-requirement",
    "cryptocurrency-margin-requirement",
    "day-equity-call-value",
    "day-trading-call-value",
    "equity-offering-margin-requirement",
    "fixed-income-security-margin-requirement",
    "long-bond-value",
    "long-cryptocurrency-value",
    "long-fixed-income-security-value",
    "long-futures-derivative-value",
    "maintenance-call-value",
    "pending-cash",
    "reg-t-call-value",
    "short-cryptocurrency-value",
    "short-futures-derivative-value",
    "special-memorandum-account-apex-adjustment",
    "unsettled-cryptocurrency-fiat-amount",
    "futures-overnight-margin-requirement",
    "futures-intraday-margin-requirement",
    "pending-margin-interest",
    "buying-power-adjustment",
    "effective-cryptocurrency-buying-power",
    "total-pending-liquidity-pool-rebate",
    "closed-loop-available-balance",
)


def balances_payload(account: Account, value: Valuation, now: datetime) -> dict[str, Any]:
    """The full recorded balance field set; the money fields are computed from the book."""
    nlv = value.net_liquidating_value
    funds = value.derivative_buying_power
    margin = account.margin_or_cash == "Margin"
    # Simple paper margin: 25 % on long stock, 30 % on short stock, shorts' full value for
    # options, and the futures margin (gatekeeper.paper.valuation).
    requirement = (
        value.long_equity * Decimal("0.25")
        + value.short_equity * Decimal("0.30")
        + value.short_derivative
        + value.futures_margin
        if margin
        else ZERO
    )
    data: dict[str, Any] = {name: "0.0" for name in ZERO_BALANCE_FIELDS}
    data.update(
        {
            "account-number": account.account_number,
            "currency": "USD",
            "cash-balance": dec(value.cash),
            "cash-settle-balance": dec(value.cash),
            "total-settle-balance": dec(value.cash),
            "margin-settle-balance": dec(value.cash) if margin else "0.0",
            "net-liquidating-value": dec(nlv),
            "margin-equity": dec(nlv),
            "long-equity-value": dec(value.long_equity),
            "short-equity-value": dec(value.short_equity),
            "long-derivative-value": dec(value.long_derivative),
            "short-derivative-value": dec(value.short_derivative),
            "long-futures-value": dec(value.long_futures),
            "short-futures-value": dec(value.short_futures),
            "futures-margin-requirement": dec(value.futures_margin),
            "long-margineable-value": dec(value.long_equity),
            "short-margineable-value": dec(value.short_equity),
            "equity-buying-power": dec(funds * 2 if margin else funds),
            "derivative-buying-power": dec(funds),
            "day-trading-buying-power": dec(funds * 4 if margin else ZERO),
            "available-trading-funds": dec(funds),
            "cash-available-to-withdraw": dec(max(value.cash, ZERO)),
            "sma-equity-option-buying-power": dec(funds),
            "special-memorandum-account-value": dec(funds),
            "day-trade-excess": dec(funds),
            "used-derivative-buying-power": dec(value.reserved),
            "maintenance-requirement": dec(requirement),
            "reg-t-margin-requirement": dec(requirement),
            "maintenance-excess": dec(nlv - requirement),
            "pending-cash-effect": NONE_EFFECT,
            "buying-power-adjustment-effect": NONE_EFFECT,
            "unsettled-cryptocurrency-fiat-effect": NONE_EFFECT,
            "snapshot-date": now.date().isoformat(),
            "updated-at": iso(now),
        }
    )
    return data


def snapshot_payload(
    account: Account, value: Valuation, day: date, time_of_day: str
) -> dict[str, Any]:
    data = balances_payload(account, value, datetime.combine(day, datetime.min.time(), UTC))
    data["time-of-day"] = time_of_day
    return data


def position_payload(position: Position, mark: Decimal, today: date) -> dict[str, Any]:
    realized = position.realized_today
    return {
        "account-number": position.account_number,
        "symbol": position.symbol,
        "instrument-type": position.instrument_type,
        "underlying-symbol": position.underlying_symbol,
        "quantity": qty(abs(position.quantity)),
        "quantity-direction": "Long" if position.quantity > 0 else "Short",
        "close-price": dec(position.close_price),
        "average-open-price": dec(position.average_open_price),
        "average-daily-market-close-price": dec(position.close_price),
        "average-yearly-market-close-price": dec(position.average_open_price),
        "multiplier": qty(position.multiplier),
        # As recorded: long positions carry "Credit" (both samples in Get_Positions.json).
        "cost-effect": "Credit" if position.quantity > 0 else "Debit",
        "is-suppressed": False,
        "is-frozen": False,
        "restricted-quantity": 0,
        "realized-day-gain": dec(abs(realized)),
        "realized-day-gain-effect": effect_of(-realized),
        "realized-day-gain-date": today.isoformat(),
        "realized-today": dec(abs(realized)),
        "realized-today-effect": effect_of(-realized),
        "realized-today-date": today.isoformat(),
        "mark": dec(mark),
        "mark-price": dec(mark),
        "created-at": iso(position.created_at),
        "updated-at": iso(position.updated_at),
    }


def trading_status_payload(account: Account, now: datetime) -> dict[str, Any]:
    payload = {
        "account-number": account.account_number,
        "id": int(account.account_number[-5:], 36) % 1_000_000,
        "equities-margin-calculation-type": "Reg T",
        "fee-schedule-name": "default",
        "futures-margin-rate-multiplier": "0.0",
        "has-intraday-equities-margin": False,
        "is-aggregated-at-clearing": False,
        "is-closed": False,
        "is-closing-only": False,
        "is-cryptocurrency-enabled": False,
        "is-frozen": False,
        "is-full-equity-margin-required": False,
        "is-futures-closing-only": False,
        "is-futures-intra-day-enabled": False,
        "is-futures-enabled": account.margin_or_cash == "Margin",
        "is-in-day-trade-equity-maintenance-call": False,
        "is-in-margin-call": False,
        "is-pattern-day-trader": False,
        "is-small-notional-futures-intra-day-enabled": False,
        "is-roll-the-day-forward-enabled": False,
        "are-far-otm-net-options-restricted": False,
        "options-level": "No Restrictions"
        if account.margin_or_cash == "Margin"
        else "Defined Risk",
        "short-calls-enabled": account.margin_or_cash == "Margin",
        "small-notional-futures-margin-rate-multiplier": "0.0",
        "is-equity-offering-enabled": False,
        "is-equity-offering-closing-only": False,
        "is-portfolio-margin-enabled": False,
        "is-risk-reducing-only": False,
        "day-trade-count": 0,
        "updated-at": iso(now),
    }
    return {**payload, **account.restrictions}


def pagination(total: int, per_page: int, page_offset: int, count: int) -> dict[str, Any]:
    pages = max(1, -(-total // per_page))
    return {
        "per-page": per_page,
        "page-offset": page_offset,
        "item-offset": page_offset * per_page,
        "total-items": total,
        "total-pages": pages,
        "current-item-count": count,
        "previous-link": None,
        "next-link": None,
        "paging-link-template": None,
    }
