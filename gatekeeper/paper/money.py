"""Money into and out of a paper account that is not a trade, as TastyTrade's transaction
history shows it (``transaction-type: Money Movement``), and the history's filters.

Only money movements are recorded as transactions: the paper broker's fills change positions
and cash but do not appear in ``/transactions``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date
from decimal import Decimal
from typing import Any

from gatekeeper.paper import payloads as p
from gatekeeper.paper.book import PaperBook
from gatekeeper.paper.errors import InvalidRequest, RecordNotFound
from gatekeeper.paper.model import CREDIT, DEBIT, MoneyMovement

MONEY_MOVEMENT = "Money Movement"
# Sub-type -> the sign its amount must have (0: either). Besides deposits, withdrawals and
# transfers, TastyTrade books interest, fees, dividends, a future's daily mark to market and
# balance adjustments as Money Movements too (those are gains and losses, not deposits).
SUB_TYPES = {
    "Deposit": 1,
    "Withdrawal": -1,
    "Transfer": 0,
    "Credit Interest": 1,
    "Debit Interest": -1,
    "Fee": -1,
    "Dividend": 0,
    "Mark to Market": 0,
    "Balance Adjustment": 0,
}
MAX_PER_PAGE = 2000


def move_money(
    book: PaperBook,
    account_number: str,
    amount: Decimal,
    *,
    sub_type: str | None = None,
    description: str | None = None,
) -> MoneyMovement:
    """Record a deposit (``amount`` > 0) or withdrawal (< 0) of today and move the cash.

    ``sub_type`` defaults to ``Deposit`` or ``Withdrawal`` by the sign; see SUB_TYPES for the
    others and the sign each takes."""
    account = book.accounts.get(account_number)
    if account is None:
        raise RecordNotFound(f"Account {account_number} not found")
    if amount == 0:
        raise InvalidRequest("amount must not be zero")
    kind = sub_type or ("Deposit" if amount > 0 else "Withdrawal")
    sign = SUB_TYPES.get(kind)
    if sign is None:
        raise InvalidRequest(f"sub-type must be one of {', '.join(SUB_TYPES)}")
    if sign * amount < 0:
        raise InvalidRequest(f"a {kind} amount must be {'positive' if sign > 0 else 'negative'}")
    now = book.now()
    movement = MoneyMovement(
        id=next(book.transaction_ids),
        account_number=account_number,
        sub_type=kind,
        amount=amount,
        executed_at=now,
        transaction_date=book.trading_date(),
        description=description or f"{kind} (paper)",
    )
    account.money_movements.append(movement)
    account.cash += amount
    return movement


def transaction_payload(movement: MoneyMovement) -> dict[str, Any]:
    """A money movement in the shape of TastyTrade's transactions (unsigned values with
    their effect; every field tastyware 13's ``Transaction`` requires)."""
    effect = CREDIT if movement.amount > 0 else DEBIT
    value = p.dec(abs(movement.amount))
    return {
        "id": movement.id,
        "account-number": movement.account_number,
        "transaction-type": MONEY_MOVEMENT,
        "transaction-sub-type": movement.sub_type,
        "description": movement.description,
        "executed-at": p.iso(movement.executed_at),
        "transaction-date": movement.transaction_date.isoformat(),
        "value": value,
        "value-effect": effect,
        "net-value": value,
        "net-value-effect": effect,
        "currency": "USD",
        "is-estimated-fee": False,
    }


def _dates(query: dict[str, str], key: str) -> date | None:
    value = query.get(key)
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise InvalidRequest(f"{key} must be a date (YYYY-MM-DD)") from None


def select(
    movements: Iterable[MoneyMovement],
    *,
    types: Sequence[str],
    sub_types: Sequence[str],
    start: date | None,
    end: date | None,
    ascending: bool,
) -> list[MoneyMovement]:
    """The history's filters: ``type``/``types[]``, ``sub-type[]``, ``start-date``/
    ``end-date`` (transaction dates, inclusive), ``sort`` by execution time."""
    found = [
        m
        for m in movements
        if (not types or MONEY_MOVEMENT in types)
        and (not sub_types or m.sub_type in sub_types)
        and (start is None or m.transaction_date >= start)
        and (end is None or m.transaction_date <= end)
    ]
    return sorted(found, key=lambda m: (m.executed_at, m.id), reverse=not ascending)


def page_of(
    items: list[dict[str, Any]], query: dict[str, str]
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """One page of ``items`` (``per-page`` default 250, ``page-offset`` 0-based) and the
    ``pagination`` block."""
    try:
        per_page = int(query.get("per-page", "250"))
        offset = int(query.get("page-offset", "0"))
    except ValueError:
        raise InvalidRequest("per-page and page-offset must be integers") from None
    if not 1 <= per_page <= MAX_PER_PAGE or offset < 0:
        raise InvalidRequest(f"per-page must be 1-{MAX_PER_PAGE}, page-offset 0 or more")
    page = items[offset * per_page : (offset + 1) * per_page]
    return page, p.pagination(len(items), per_page, offset, len(page))


def query_dates(query: dict[str, str]) -> tuple[date | None, date | None]:
    """``start-date`` and ``end-date`` of a history query."""
    return _dates(query, "start-date"), _dates(query, "end-date")
