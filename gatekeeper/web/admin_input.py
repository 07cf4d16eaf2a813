"""Reading admin API requests: strict JSON bodies and query strings, errors in words.

Shape problems (malformed JSON, wrong types, unknown or missing fields) are 400; values out
of their allowed range are 422 and name the field, the range and the CHECK constraint.
"""

from __future__ import annotations

from typing import Any, TypeVar

from aiohttp import web
from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from gatekeeper.adapters.protection_errors import ConstraintViolation, range_error_item
from gatekeeper.core.jsonstrict import loads_strict
from gatekeeper.errors import BadRequest, Unprocessable
from gatekeeper.limits import LIMITS_BY_FIELD

M = TypeVar("M", bound=BaseModel)

MAX_BODY_BYTES = 16 * 1024
_RANGE_ERRORS = {"greater_than", "greater_than_equal", "less_than", "less_than_equal"}
_VALUE_ERRORS = _RANGE_ERRORS | {
    "decimal_max_places",
    "decimal_max_digits",
    "string_too_short",
    "string_too_long",
    "string_pattern_mismatch",
    "literal_error",
    "too_short",
    "too_long",
}


class InvalidRequest(BadRequest):
    code = "invalid_request"


class InvalidValue(Unprocessable):
    code = "invalid_value"


def _path(error: ErrorDetails) -> str:
    return ".".join(str(part) for part in error["loc"] if not str(part).startswith("function-"))


def _item(error: ErrorDetails) -> dict[str, str]:
    field = _path(error)
    leaf = str(error["loc"][-1]) if error["loc"] else ""
    limit = LIMITS_BY_FIELD.get(leaf)
    if limit is not None and error["type"] in _RANGE_ERRORS:
        return range_error_item(limit, error["input"]) | {"field": field}
    message = "unknown field" if error["type"] == "extra_forbidden" else error["msg"]
    return {"field": field, "code": error["type"], "message": f"{field or 'body'}: {message}"}


def validation_error(error: ValidationError) -> BadRequest | Unprocessable:
    """The error response for a request that did not validate (never echoes the input,
    except the number an out-of-range message names)."""
    items = [_item(detail) for detail in error.errors(include_url=False)]
    message = "; ".join(item["message"] for item in items)
    if all(detail["type"] in _VALUE_ERRORS for detail in error.errors(include_url=False)):
        if all(item.get("code") == "out_of_range" for item in items):
            return ConstraintViolation(items)
        return InvalidValue(message, details={"errors": items})
    return InvalidRequest(message, details={"errors": items})


def parse(model: type[M], data: Any) -> M:
    try:
        return model.model_validate(data)
    except ValidationError as error:
        raise validation_error(error) from None


async def read_body(request: web.Request, model: type[M]) -> M:
    """The request's JSON body as ``model``: strict JSON, unknown fields rejected."""
    raw = await request.read()  # bounded by the app's client_max_size (413 beyond it)
    if not raw.strip():
        raise InvalidRequest("the request body must be a JSON object")
    return parse(model, loads_strict(raw, max_bytes=MAX_BODY_BYTES))


def query_param(request: web.Request, name: str) -> str:
    values = request.query.getall(name, [])
    if len(values) != 1 or not values[0]:
        raise InvalidRequest(f"query parameter {name} is required (exactly once)")
    return values[0]
