"""How the broker's answers behind the start of the trading day are read
(:mod:`gatekeeper.adapters.day_start` asks for them and caches what they give): the items of a
list answer, a number in an item, and what one transaction moved into or out of the account.

A deposit, withdrawal or transfer (the Money Movement sub-types in EXTERNAL_SUB_TYPES) of the
day counts, money in +, out -; every other transaction counts 0: interest, fees, dividends, a
future's daily mark to market and balance adjustments are the account's own gains and losses.
An answer not understood is AccountStateInvalid: the order path fails closed.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from decimal import Decimal
from typing import Any

from gatekeeper.core.errors import AccountStateInvalid
from gatekeeper.core.order import to_decimal

# Money Movement sub-types that move money into or out of the account without a gain or loss.
EXTERNAL_SUB_TYPES = frozenset({"Deposit", "Withdrawal", "Transfer"})


def answer_items(data: Any, what: str) -> list[Mapping[str, Any]]:
    """The ``items`` of the broker's list answer ``what`` (AccountStateInvalid without)."""
    items = data.get("items") if isinstance(data, Mapping) else None
    if not isinstance(items, list):
        raise AccountStateInvalid(f"the broker's {what} answer has no items")
    return [item for item in items if isinstance(item, Mapping)]


def answer_decimal(item: Mapping[str, Any], key: str, what: str) -> Decimal:
    """``item[key]`` as a Decimal (AccountStateInvalid when it is not a number)."""
    try:
        return to_decimal(item.get(key))
    except ValueError:
        raise AccountStateInvalid(f"a {what} from the broker has no usable {key}") from None


def money_moved(item: Mapping[str, Any], day: date) -> Decimal:
    """A transaction's money in (+) or out (-) of the account, when it is a deposit,
    withdrawal or transfer of ``day``; 0 for anything else."""
    if (
        item.get("transaction-type") != "Money Movement"
        or item.get("transaction-sub-type") not in EXTERNAL_SUB_TYPES
        or item.get("transaction-date", day.isoformat()) != day.isoformat()
    ):
        return Decimal(0)
    value = abs(answer_decimal(item, "value", "money movement"))
    effect = item.get("value-effect")
    if effect == "Credit":
        return value
    if effect == "Debit":
        return -value
    if value == 0:
        return Decimal(0)
    raise AccountStateInvalid("a money movement from the broker has no Credit/Debit value-effect")
