"""The account streamer's notifications as changes to a cached account state (the pure part
of :mod:`gatekeeper.adapters.account_streamer`): which messages count, which account they
belong to, and how a batch is applied to a state entry without setting anything back.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

Entry = dict[str, Any]  # a cached account state (gatekeeper.adapters.account_state)

APPLIED = frozenset({"AccountBalance", "CurrentPosition", "Order", "ComplexOrder", "TradingStatus"})

Change = tuple[str, Mapping[str, Any]]  # (notification type, data)


def messages_of(frame: Any) -> list[Mapping[str, Any]]:
    if isinstance(frame, Mapping) and isinstance(frame.get("results"), list):
        return [m for m in frame["results"] if isinstance(m, Mapping)]
    return [frame] if isinstance(frame, Mapping) else []


def changes_of(messages: Iterable[Mapping[str, Any]]) -> list[Change]:
    return [
        (m["type"], m["data"])
        for m in messages
        if m.get("type") in APPLIED and isinstance(m.get("data"), Mapping)
    ]


def of_account(change: Change, account: str) -> bool:
    number = change[1].get("account-number")
    return number is None or number == account


def _fill_symbols(order: Mapping[str, Any]) -> set[str]:
    """The legs' symbols of an order reporting fills (Filled, or any leg with fills)."""
    legs = [leg for leg in order.get("legs") or [] if isinstance(leg, Mapping)]
    filled = order.get("status") == "Filled" or any(leg.get("fills") for leg in legs)
    return {str(leg.get("symbol")) for leg in legs} if filled else set()


def split_unpaired_fills(changes: list[Change]) -> tuple[list[Change], list[Change]]:
    """(changes to apply, orders reporting fills whose positions' changes did not come)."""
    positions = {str(d.get("symbol")) for kind, d in changes if kind == "CurrentPosition"}
    kept: list[Change] = []
    held: list[Change] = []
    for kind, data in changes:
        orders = _orders_of(kind, data)
        if orders and any(not _fill_symbols(o) <= positions for o in orders):
            held.append((kind, data))
        else:
            kept.append((kind, data))
    return kept, held


# An order the broker has just accepted and not yet filled, cancelled or rejected.
_WORKING = frozenset({"Received", "Routed", "In Flight", "Live", "Contingent"})


def answered_changes(data: Mapping[str, Any]) -> list[Change]:
    """The order(s) the broker's answer to a placement or replace names, as the streamer's
    notification of them would be; none when an order already reports fills or is not
    working (a fill without its position's change would leave the state counting neither,
    so such an order is left to the next snapshot, its reservation counting it until then)
    or when the answer cannot be read. ``data``: the answer's parsed ``data`` object."""
    change: Change
    if isinstance(data.get("complex-order"), Mapping):
        change = ("ComplexOrder", data["complex-order"])
    elif isinstance(data.get("order"), Mapping):
        change = ("Order", data["order"])
    else:
        return []
    orders = _orders_of(*change)
    if not orders or any(
        o.get("id") is None or o.get("status") not in _WORKING or _fill_symbols(o) for o in orders
    ):
        return []
    return [change]


def _orders_of(kind: str, data: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    if kind == "Order":
        return [data]
    if kind == "ComplexOrder":
        members = [*(data.get("orders") or []), data.get("trigger-order")]
        return [m for m in members if isinstance(m, Mapping)]
    return []


def apply_changes(
    entry: Entry, account: str, changes: Iterable[Change], *, replay: bool = False
) -> Entry:
    """A new state entry: ``entry`` with the streamed ``changes`` applied in order (balances
    and trading status replaced, a position replaced or, at quantity zero, removed, an order
    replaced by id or added). ``entry`` itself is not modified.

    A change replaces what ``entry`` holds only when its ``updated-at`` is later: the entry
    may come from a snapshot read after the change was pushed, and what moved since without
    a notification (balances follow every quote) must not be set back. ``replay`` (changes
    applied again to a snapshot): a change whose time cannot be compared is left out, the
    snapshot's copy stands; otherwise it is applied."""
    balances = entry["balances"]
    status = entry.get("trading_status", {})
    positions: list[Mapping[str, Any]] = list(entry["positions"])
    orders: list[Mapping[str, Any]] = list(entry["live_orders"])
    for kind, data in changes:
        if not of_account((kind, data), account):
            continue
        if kind == "AccountBalance":
            balances = data if _newer(data, balances, replay) else balances
        elif kind == "TradingStatus":
            status = data if _newer(data, status, replay) else status
        elif kind == "CurrentPosition":
            held = _find(positions, "symbol", data)
            if held is None or _newer(data, held, replay):
                positions = _upsert(positions, "symbol", data, keep=not _closed(data))
        else:
            for order in _orders_of(kind, data):
                known = _find(orders, "id", order)
                if order.get("id") is not None and (known is None or _newer(order, known, replay)):
                    orders = _upsert(orders, "id", order, keep=True)
    return {
        **entry,
        "balances": balances,
        "positions": positions,
        "live_orders": orders,
        "trading_status": status,
    }


def _find(
    items: list[Mapping[str, Any]], key: str, item: Mapping[str, Any]
) -> Mapping[str, Any] | None:
    wanted = str(item.get(key))
    return next((i for i in items if str(i.get(key)) == wanted), None)


def _newer(change: Mapping[str, Any], held: Mapping[str, Any], replay: bool) -> bool:
    """Whether ``change`` is later than ``held`` by their ``updated-at`` (ISO 8601 or epoch
    milliseconds, both seen); when either has none: not on a replay, else yes."""
    changed_at, held_at = _moment(change.get("updated-at")), _moment(held.get("updated-at"))
    if changed_at is None or held_at is None:
        return not replay
    return changed_at > held_at


def _moment(value: Any) -> float | None:
    """Seconds since the epoch, or None."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        return float(value) / 1000
    text = str(value).strip()
    if text.isdigit():
        return int(text) / 1000
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment.timestamp() if moment.tzinfo is not None else None


def _closed(position: Mapping[str, Any]) -> bool:
    if position.get("quantity-direction") == "Zero":
        return True
    try:
        return float(position.get("quantity") or 0) == 0
    except (TypeError, ValueError):
        return False


def _upsert(
    items: list[Mapping[str, Any]], key: str, item: Mapping[str, Any], *, keep: bool
) -> list[Mapping[str, Any]]:
    """``items`` with the one sharing ``item``'s ``key`` replaced (in place) or removed
    (``keep`` False); ``item`` added at the end when none shares it."""
    wanted = str(item.get(key))
    out: list[Mapping[str, Any]] = []
    found = False
    for existing in items:
        if str(existing.get(key)) == wanted:
            found = True
            if keep:
                out.append(item)
        else:
            out.append(existing)
    if keep and not found:
        out.append(item)
    return out
