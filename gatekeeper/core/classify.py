"""Which requests are order submissions: ``classify(method, path)``.

Guarded routes (under ``/accounts/{account_number}``)::

    POST      /orders                    PLACE
    POST      /orders/dry-run            PLACE_DRY_RUN
    POST      /complex-orders            COMPLEX
    POST      /complex-orders/dry-run    COMPLEX_DRY_RUN
    PUT|PATCH /orders/{id}               REPLACE
    POST      /orders/{id}/dry-run       REPLACE_DRY_RUN
    DELETE    /orders/{id}               CANCEL
    DELETE    /complex-orders/{id}       CANCEL

Anything else that *mentions* an order collection (a segment ``orders`` or
``complex-orders`` in any letter case, percent-encoded or not, anywhere in the path) with a
method other than GET/HEAD/OPTIONS/DELETE is UNSUPPORTED: it could place or change an order
and we do not understand it, so it is rejected, never forwarded. That includes trailing
slashes (``/orders/``), other letter cases (``/Orders``), empty segments, extra segments
(``/orders/1/reconfirm``), malformed account numbers or ids, ``PATCH /complex-orders/{id}``
and unknown methods. Reads and all other paths pass through untouched.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from urllib.parse import unquote


class RouteKind(StrEnum):
    """What the gate does with a request."""

    PLACE = "place"
    PLACE_DRY_RUN = "place_dry_run"
    COMPLEX = "complex"
    COMPLEX_DRY_RUN = "complex_dry_run"
    REPLACE = "replace"
    REPLACE_DRY_RUN = "replace_dry_run"
    CANCEL = "cancel"
    UNSUPPORTED = "unsupported_order_route"
    PASS_THROUGH = "pass_through"  # noqa: S105 - not a secret

    @property
    def is_checked(self) -> bool:
        """Whether the body must pass the risk rules before forwarding."""
        return self in _CHECKED

    @property
    def is_dry_run(self) -> bool:
        """Dry-runs are checked like the real thing but never count as trades."""
        return self in (
            RouteKind.PLACE_DRY_RUN,
            RouteKind.COMPLEX_DRY_RUN,
            RouteKind.REPLACE_DRY_RUN,
        )


_CHECKED = frozenset(
    {
        RouteKind.PLACE,
        RouteKind.PLACE_DRY_RUN,
        RouteKind.COMPLEX,
        RouteKind.COMPLEX_DRY_RUN,
        RouteKind.REPLACE,
        RouteKind.REPLACE_DRY_RUN,
    }
)


@dataclass(frozen=True, slots=True)
class Route:
    """A classified request: its kind, and the account number and order id it names."""

    kind: RouteKind
    account_number: str | None = None
    order_id: str | None = None


_ACCOUNT = re.compile(r"[0-9A-Z]{5,12}")
_ORDER_ID = re.compile(r"[1-9][0-9]{0,18}")
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_ORDER_COLLECTIONS = frozenset({"orders", "complex-orders"})
_PASS = Route(RouteKind.PASS_THROUGH)


def _mentions_orders(path: str) -> bool:
    """Whether any segment names an order collection, however it is spelled or encoded."""
    decoded = path
    for _ in range(3):  # double-encoded %252F too
        decoded = unquote(decoded)
    segments = re.split(r"[/\\]", decoded.lower())
    return any(segment.split(";", 1)[0].strip() in _ORDER_COLLECTIONS for segment in segments)


def _match(method: str, rest: list[str]) -> tuple[RouteKind, str | None] | None:
    """Match the segments after ``/accounts/{account}`` exactly; ``None`` if not understood."""
    match rest:
        case ["orders"] if method == "POST":
            return RouteKind.PLACE, None
        case ["orders", "dry-run"] if method == "POST":
            return RouteKind.PLACE_DRY_RUN, None
        case ["complex-orders"] if method == "POST":
            return RouteKind.COMPLEX, None
        case ["complex-orders", "dry-run"] if method == "POST":
            return RouteKind.COMPLEX_DRY_RUN, None
        case ["orders", order_id] if method in ("PUT", "PATCH") and _ORDER_ID.fullmatch(order_id):
            return RouteKind.REPLACE, order_id
        case ["orders", order_id, "dry-run"] if method == "POST" and _ORDER_ID.fullmatch(order_id):
            return RouteKind.REPLACE_DRY_RUN, order_id
        case ["orders" | "complex-orders", order_id] if method == "DELETE" and _ORDER_ID.fullmatch(
            order_id
        ):
            return RouteKind.CANCEL, order_id
    return None


def classify(method: str, path: str) -> Route:
    """Classify a request by its method and path (query and fragment are ignored).

    ``method`` is compared case-sensitively, as HTTP defines it. Never raises.
    """
    path = path.split("?", 1)[0].split("#", 1)[0]
    segments = path.split("/")[1:] if path.startswith("/") else path.split("/")
    order_like = _mentions_orders(path)
    if method in _SAFE_METHODS or not order_like:
        return _PASS
    account = segments[1] if len(segments) > 1 else None
    if (
        len(segments) >= 3
        and segments[0] == "accounts"
        and account is not None
        and _ACCOUNT.fullmatch(account)
    ):
        matched = _match(method, segments[2:])
        if matched is not None:
            kind, order_id = matched
            return Route(kind, account, order_id)
    if method == "DELETE":
        # a cancel we do not understand: it cannot create or enlarge an order
        return _PASS
    known_account = account if account is not None and _ACCOUNT.fullmatch(account) else None
    return Route(RouteKind.UNSUPPORTED, known_account)
