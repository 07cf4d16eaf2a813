"""Stage 1, the request: the body of an order route as received (plain UTF-8 JSON, bounded)
parsed into typed orders, and the exact bytes forwarded once they are allowed."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from aiohttp import web

from gatekeeper.core import (
    BodyTooLarge,
    ComplexOrder,
    Order,
    OrderPatch,
    RouteKind,
    parse_complex_order,
    parse_order,
    parse_replace,
)
from gatekeeper.core.jsonstrict import loads_strict
from gatekeeper.core.media import check_json_media
from gatekeeper.order_identity import dump, plain_text

_READ_CHUNK = 64 * 1024


def parse_request(kind: RouteKind, raw: bytes, max_bytes: int) -> Order | ComplexOrder | OrderPatch:
    """The typed request for a checked route (strict JSON; limits on size and depth)."""
    data = loads_strict(raw, max_bytes=max_bytes)
    if kind in (RouteKind.COMPLEX, RouteKind.COMPLEX_DRY_RUN):
        return parse_complex_order(data)
    if kind in (RouteKind.REPLACE, RouteKind.REPLACE_DRY_RUN):
        return parse_replace(data)
    return parse_order(data)


async def read_body(request: web.Request, max_bytes: int) -> bytes:
    """The body of a checked request, exactly as received (the proxy's server does not
    decompress). Refused before reading when it is not declared as plain UTF-8 JSON (415,
    see gatekeeper.core.media) or its declared length is above ``max_bytes`` (413); a chunked
    body is refused as soon as it grows past ``max_bytes``."""
    headers = request.headers
    check_json_media(headers.getall("Content-Type", []), headers.getall("Content-Encoding", []))
    declared = request.content_length
    if declared is not None and declared > max_bytes:
        raise BodyTooLarge(f"body of {declared} bytes exceeds the {max_bytes}-byte limit")
    body = bytearray()
    async for chunk in request.content.iter_chunked(_READ_CHUNK):
        body += chunk
        if len(body) > max_bytes:
            raise BodyTooLarge(f"body exceeds the {max_bytes}-byte limit")
    return bytes(body)


def _strict(data: dict[str, Any]) -> dict[str, Any]:
    targets = [data]
    if "orders" in data or "trigger-order" in data:
        targets = [o for o in (data.get("trigger-order"), *data.get("orders", [])) if o]
    for order in targets:
        instructions = order.get("advanced-instructions")
        instructions = dict(instructions) if isinstance(instructions, dict) else {}
        instructions["strict-position-effect-validation"] = True
        order["advanced-instructions"] = instructions
    return data


def forwarded_body(raw: bytes, data: dict[str, Any] | None, *, strict: bool) -> bytes:
    """The bytes forwarded: ``raw`` itself unless the gate added an ``external-identifier``
    (``data``, see gatekeeper.order_identity) or the strict flag; numbers stay as written."""
    if data is None and not strict:
        return raw
    if data is None:
        data = json.loads(raw, parse_float=Decimal)
    return dump(_strict(data) if strict else data, plain=plain_text(raw)).encode()
