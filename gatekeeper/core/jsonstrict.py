"""A strict JSON loader for order bodies.

Python's ``json`` accepts ``NaN``, ``Infinity`` and duplicate keys (the last one wins), and
recurses without bound. Each of these lets a body mean one thing to us and another to the
broker, so each is an error here. Floats become ``Decimal`` (no binary rounding of prices).
"""

from __future__ import annotations

import json
import re
from decimal import Decimal
from typing import Any

from gatekeeper.core.errors import BodyTooLarge, InvalidJson

DEFAULT_MAX_BYTES = 64 * 1024
DEFAULT_MAX_DEPTH = 8
# Longer numbers are either absurd or an attempt to burn CPU in int()/Decimal().
_MAX_NUMBER_CHARS = 40


def _reject_constant(name: str) -> Any:
    raise InvalidJson(f"invalid JSON: {name} is not allowed")


def _parse_float(text: str) -> Decimal:
    if len(text) > _MAX_NUMBER_CHARS:
        raise InvalidJson("invalid JSON: number literal too long")
    return Decimal(text)


def _parse_int(text: str) -> int:
    if len(text) > _MAX_NUMBER_CHARS:
        raise InvalidJson("invalid JSON: number literal too long")
    return int(text)


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise InvalidJson(f"invalid JSON: duplicate key {key[:40]!r}")
        result[key] = value
    return result


# A string literal as the JSON grammar reads it: from a quote to the next quote not escaped.
_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_BRACKET = re.compile(r"[\[\]{}]")


def _check_depth(text: str, max_depth: int) -> None:
    """Reject nesting deeper than ``max_depth`` before the recursive parser sees it.

    Brackets inside strings do not count: string literals are dropped first (in C, not a
    loop over every character). An unterminated string is not dropped, so its brackets count:
    such a body is refused anyway, and a bracket is never left uncounted that the parser
    would nest on."""
    depth = 0
    for bracket in _BRACKET.findall(_STRING.sub("", text)):
        if bracket in "[{":
            depth += 1
            if depth > max_depth:
                raise InvalidJson(f"invalid JSON: nested deeper than {max_depth} levels")
        else:
            depth -= 1


def loads_strict(
    raw: bytes,
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_depth: int = DEFAULT_MAX_DEPTH,
) -> dict[str, Any]:
    """Parse ``raw`` as one strict UTF-8 JSON object.

    Raises :class:`BodyTooLarge` above ``max_bytes`` and :class:`InvalidJson` for anything
    else that is not a plain JSON object (bad UTF-8, syntax, NaN/Infinity, duplicate keys,
    nesting deeper than ``max_depth``, a non-object top level).
    """
    if len(raw) > max_bytes:
        raise BodyTooLarge(f"body of {len(raw)} bytes exceeds the {max_bytes}-byte limit")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidJson("invalid JSON: body is not UTF-8") from None
    if text.startswith("\ufeff"):
        raise InvalidJson("invalid JSON: byte-order mark not allowed")
    _check_depth(text, max_depth)
    try:
        value = json.loads(
            text,
            parse_constant=_reject_constant,
            parse_float=_parse_float,
            parse_int=_parse_int,
            object_pairs_hook=_no_duplicates,
        )
    except InvalidJson:
        raise
    except (ValueError, RecursionError) as exc:
        # JSONDecodeError is a ValueError; its message holds a position, never the input.
        detail = exc.msg if isinstance(exc, json.JSONDecodeError) else type(exc).__name__
        raise InvalidJson(f"invalid JSON: {detail}") from None
    if not isinstance(value, dict):
        raise InvalidJson("invalid JSON: top level must be an object")
    return value
