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

Under ``/accounts/`` only GET and HEAD pass unmatched: any other method on any other path is
UNSUPPORTED (rejected, never forwarded), because a broker's router may read a path we do not
know as an order route: ``orders.json`` (a Rails format suffix), ``orders+``, ``orders~``,
``Orders``, ``orders/``, ``%6Frders``, full-width or long-s (U+017F) look-alikes,
``/orders/1/reconfirm``, ``PATCH /complex-orders/{id}``, malformed account numbers or ids,
unknown methods (OPTIONS included). No other mutating route under ``/accounts`` exists in
TastyTrade's API as its clients use it (tastyware 13, tastytrade-sdk, the JS SDK), so the
allow-list of harmless ones is empty.

Elsewhere, reads (GET/HEAD/OPTIONS) and everything else pass, except a request that could be
read as an order route after a lenient router's normalisation: a first segment that looks like
``accounts`` but is not exactly it (``Accounts``, ``%61ccounts``, a full-width ``a``), or any
segment that looks like an order collection (``/customers/me/orders``, ``/orders.json``). Those
are UNSUPPORTED too.
"""

from __future__ import annotations

import re
import unicodedata
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
_READ_METHODS = frozenset({"GET", "HEAD"})
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_ORDER_WORDS = frozenset({"orders", "order", "complexorders", "complexorder"})
_PASS = Route(RouteKind.PASS_THROUGH)


def _skeleton(segment: str) -> str:
    """A decoded segment as a lenient router might match it: compatibility-folded (full-width
    letters, the long s U+017F), without accents, case-folded, cut at ``.`` or ``;`` (a format
    suffix, matrix parameters), letters and digits only."""
    folded = unicodedata.normalize("NFKD", segment)
    folded = "".join(c for c in folded if not unicodedata.combining(c)).casefold()
    return re.sub(r"[^0-9a-z]", "", re.split(r"[.;]", folded, maxsplit=1)[0])


def _looks_order_like(path: str) -> bool:
    """Whether a path outside ``/accounts`` could be read as an order route: its first segment
    looks like ``accounts``, or any segment like an order collection, however spelled."""
    decoded = path
    for _ in range(3):  # double-encoded %252F too
        decoded = unquote(decoded)
    skeletons = [_skeleton(segment) for segment in re.split(r"[/\\]", decoded)]
    first = next((s for s in skeletons if s), "")
    return first.startswith("account") or any(s in _ORDER_WORDS for s in skeletons)


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
    if segments[0] == "accounts":
        return _account_route(method, segments[1:])
    if method in _SAFE_METHODS or not _looks_order_like(path):
        return _PASS
    return Route(RouteKind.UNSUPPORTED)


def _account_route(method: str, rest: list[str]) -> Route:
    """A request under ``/accounts/``: reads pass, known routes are classified, the rest is
    UNSUPPORTED (naming the account when it is well formed)."""
    if method in _READ_METHODS:
        return _PASS
    account = rest[0] if rest and _ACCOUNT.fullmatch(rest[0]) else None
    if account is not None:
        matched = _match(method, rest[1:])
        if matched is not None:
            kind, order_id = matched
            return Route(kind, account, order_id)
    return Route(RouteKind.UNSUPPORTED, account)
