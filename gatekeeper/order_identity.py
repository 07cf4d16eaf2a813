"""Which submission an order is: its ``external-identifier``s and its fingerprint, and the body
as forwarded (docs/order-path.md, "Retries and duplicates").

Every forwarded placement (``POST …/orders``, ``POST …/complex-orders``; not dry-runs) carries an
``external-identifier`` on each order TastyTrade places: the bot's own when it sent one, else
``gk-<decision id>`` (a complex order's contained orders: ``gk-<decision id>-<n>``, the trigger
first). The broker echoes it on the order, so the reconciler can find an order whose answer
was lost, and a retry carrying the bot's identifier is recognised.

The fingerprint is a SHA-256 of the route and the body without its identifiers: a retry that
resends the same body has the same one. Pure: no I/O.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from uuid import UUID

import orjson

EXTERNAL_IDENTIFIER = "external-identifier"


@dataclass(frozen=True)
class OrderIdentity:
    """The identifiers an order is forwarded with, those the bot chose, and its fingerprint."""

    external_identifiers: tuple[str, ...]
    client_identifiers: tuple[str, ...]
    fingerprint: str


def _contained(data: dict[str, Any]) -> list[dict[str, Any]]:
    """The orders TastyTrade places for ``data``: itself, or a complex order's trigger and
    members."""
    if "orders" in data or "trigger-order" in data:
        members = [data.get("trigger-order"), *(data.get("orders") or [])]
        return [m for m in members if isinstance(m, dict)]
    return [data]


def identify(
    raw: bytes, route_kind: str, decision_id: UUID, *, complex_order: bool
) -> tuple[dict[str, Any], OrderIdentity]:
    """The body (parsed, numbers kept as written) with an ``external-identifier`` on every
    order that lacks one, and its identity. ``raw`` was already parsed strictly."""
    data: dict[str, Any] = json.loads(raw, parse_float=Decimal)
    orders = _contained(data)
    client = tuple(
        o[EXTERNAL_IDENTIFIER]
        for o in orders
        if isinstance(o.get(EXTERNAL_IDENTIFIER), str) and o[EXTERNAL_IDENTIFIER]
    )
    bare = _bare_dump(data, orders, plain=plain_text(raw))  # without their identifiers
    digest = hashlib.sha256(f"{route_kind}\n{bare}".encode()).hexdigest()
    assigned: list[str] = []
    for n, order in enumerate(orders):
        value = order.get(EXTERNAL_IDENTIFIER)
        if not (isinstance(value, str) and value):
            value = f"gk-{decision_id}-{n}" if complex_order else f"gk-{decision_id}"
            order[EXTERNAL_IDENTIFIER] = value
        assigned.append(value)
    return data, OrderIdentity(tuple(assigned), client, digest)


_ENCODE = json.JSONEncoder().encode  # what json.dumps(value) gives, without its set-up


def dump(value: Any, *, sort_keys: bool = False, plain: bool = False) -> str:
    """Compact JSON of ``value``; Decimals as written (``150.10`` stays ``150.10``, never a
    float's rounding). ``plain``: ``value`` was parsed from a text that :func:`plain_text`
    accepts (the same characters then, faster)."""
    if plain:
        fast = _fast_dump(value, sort_keys)
        if fast is not None:
            return fast
    return _dump(value, sort_keys, frozenset())


def plain_text(raw: bytes) -> bool:
    """Whether every string of the JSON text ``raw`` is written the same by orjson as by
    Python's ``json`` (which escapes every character outside space to tilde): ASCII without a
    backslash (no escape to write back) or a DEL, and no ``NaN``/``Infinity`` constant (orjson
    writes ``null`` for them; the strict parser refuses them anyway)."""
    return (
        raw.isascii()
        and b"\\" not in raw
        and b"\x7f" not in raw
        and b"NaN" not in raw
        and b"Infinity" not in raw
    )


_SORTED = orjson.OPT_SORT_KEYS


def _as_written(value: Any) -> orjson.Fragment:
    if isinstance(value, Decimal):
        return orjson.Fragment(str(value))
    raise TypeError(type(value).__name__)


def _fast_dump(value: Any, sort_keys: bool) -> str | None:
    """:func:`_dump` by orjson (its keys sorted by code point, as ``sorted`` does for ASCII);
    None where orjson cannot write it (an integer beyond 64 bits)."""
    try:
        return orjson.dumps(value, default=_as_written, option=_SORTED if sort_keys else 0).decode()
    except orjson.JSONEncodeError:
        return None


def _bare_dump(data: dict[str, Any], orders: list[dict[str, Any]], *, plain: bool) -> str:
    """The sorted dump of ``data`` without the ``external-identifier`` of its ``orders``."""
    if plain:
        bare = {id(o): {k: v for k, v in o.items() if k != EXTERNAL_IDENTIFIER} for o in orders}
        copy = bare.get(id(data))
        if copy is None:
            copy = dict(data)
            trigger = copy.get("trigger-order")
            if isinstance(trigger, dict):
                copy["trigger-order"] = bare.get(id(trigger), trigger)
            members = copy.get("orders")
            if isinstance(members, list):
                copy["orders"] = [bare.get(id(m), m) for m in members]
        fast = _fast_dump(copy, True)
        if fast is not None:
            return fast
    return _dump(data, True, frozenset(id(o) for o in orders))


def _dump(value: Any, sort_keys: bool, bare: frozenset[int]) -> str:
    """:func:`dump`, leaving out the ``external-identifier`` of the dicts whose id is in
    ``bare``."""
    if isinstance(value, dict):
        items = sorted(value.items()) if sort_keys else value.items()
        if id(value) in bare:
            items = [(k, v) for k, v in items if k != EXTERNAL_IDENTIFIER]
        return "{" + ",".join(f"{_ENCODE(k)}:{_dump(v, sort_keys, bare)}" for k, v in items) + "}"
    if isinstance(value, list):
        return "[" + ",".join(_dump(v, sort_keys, bare) for v in value) + "]"
    if isinstance(value, Decimal):
        return str(value)
    return _ENCODE(value)
