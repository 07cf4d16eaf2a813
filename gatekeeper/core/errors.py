"""The parser's one error type: a stable code plus a message naming the field and the problem."""

from __future__ import annotations

from typing import ClassVar

from gatekeeper.core.codes import ParseCode
from gatekeeper.errors import BadRequest, GatekeeperError

# Messages go back to the bot and into the audit row: never echo large input.
_MAX_MESSAGE = 300


class OrderParseError(BadRequest):
    """The body is not an order we understand; the order is rejected, never forwarded.

    ``code`` is one of :class:`ParseCode`; subclasses fix it so the web layer can render the
    right status without string matching.
    """

    code: ClassVar[str] = ParseCode.INVALID_ORDER.value

    def __init__(self, message: str) -> None:
        if len(message) > _MAX_MESSAGE:
            message = message[: _MAX_MESSAGE - 3] + "..."
        super().__init__(message)


class InvalidJson(OrderParseError):
    """Not strict JSON: syntax, NaN/Infinity, duplicate keys, depth, encoding, top level."""

    code: ClassVar[str] = ParseCode.INVALID_JSON.value


class InvalidOrder(OrderParseError):
    """Valid JSON that is not a valid order (missing field, bad value, unknown action...)."""

    code: ClassVar[str] = ParseCode.INVALID_ORDER.value


class BodyTooLarge(OrderParseError):
    """The body exceeds the configured size limit."""

    status: ClassVar[int] = 413
    code: ClassVar[str] = ParseCode.PAYLOAD_TOO_LARGE.value


class UnsupportedMediaType(OrderParseError):
    """The body is declared as something other than plain UTF-8 JSON (another charset, another
    media type, a content coding): a broker could read other bytes than the ones checked."""

    status: ClassVar[int] = 415
    code: ClassVar[str] = ParseCode.UNSUPPORTED_MEDIA_TYPE.value


class AccountStateInvalid(GatekeeperError):
    """A broker payload for the account snapshot could not be understood: fail closed."""

    status: ClassVar[int] = 503
    code: ClassVar[str] = "account_state_unavailable"
