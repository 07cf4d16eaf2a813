"""One exception root. Each error knows its HTTP status and its TastyTrade-style code.

The distinction that matters on the order path is kept in the types: the broker refused
(its own answer is relayed), we could not reach the broker (nothing was sent), and we do not
know whether the broker got the request (a timeout after sending: never retried).
"""

from __future__ import annotations

from typing import Any, ClassVar
from uuid import UUID

from aiohttp import web


class GatekeeperError(Exception):
    """Root of every error Gatekeeper raises on purpose.

    ``message`` is shown to the client: it must never contain secrets.
    """

    status: ClassVar[int] = 500
    code: ClassVar[str] = "internal_error"

    def __init__(self, message: str, *, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or {}


class BadRequest(GatekeeperError):
    status = 400
    code = "bad_request"


class InvalidPath(BadRequest):
    """A request target that could be read as another host or another path."""

    code = "invalid_path"


class PayloadTooLarge(GatekeeperError):
    status = 413
    code = "payload_too_large"


class RequestTimeout(GatekeeperError, TimeoutError):
    """The request's body did not arrive within ``proxy.request_body_timeout_seconds``.

    Also a TimeoutError: aiohttp's server, draining a body after its handler answered, takes
    it for the end of that wait rather than an unexpected failure."""

    status = 408
    code = "request_timeout"


class Unauthorized(GatekeeperError):
    status = 401
    code = "unauthorized"


class Forbidden(GatekeeperError):
    status = 403
    code = "forbidden"


class NotFound(GatekeeperError):
    status = 404
    code = "not_found"


class Conflict(GatekeeperError):
    """The request is valid but clashes with the current state (exists already, not active)."""

    status = 409
    code = "conflict"


class Unprocessable(GatekeeperError):
    status = 422
    code = "unprocessable"


class NotImplementedYet(GatekeeperError):
    """A route whose shape is settled but whose answer needs a part not built yet."""

    status = 501
    code = "not_implemented"


class ServiceUnavailable(GatekeeperError):
    status = 503
    code = "service_unavailable"


class UpstreamUnavailable(GatekeeperError):
    """The broker could not be reached; the request was never sent."""

    status = 502
    code = "broker_unavailable"


class BrokerAuthFailed(GatekeeperError):
    """The broker refused the request's own credentials (401) while the gatekeeper read the
    account state, an instrument or a quote with them: relayed to the bot with the broker's
    status, recorded as a decision, never forwarded. ``for_status`` picks the class."""

    status = 401
    code = "broker_auth_failed"

    @staticmethod
    def for_status(status: int, message: str) -> BrokerAuthFailed:
        """The error for the broker's 401 or 403."""
        return BrokerAccessDenied(message) if status == 403 else BrokerAuthFailed(message)


class BrokerAccessDenied(BrokerAuthFailed):
    """The broker knows the credentials but does not let them read this (403)."""

    status = 403


class UpstreamTimeout(GatekeeperError):
    """The broker did not answer in time; it may or may not have received the request."""

    status = 504
    code = "broker_timeout"


class UpstreamDisconnected(GatekeeperError):
    """The connection to the broker failed once the request was (maybe partly) sent: it may
    or may not have received it."""

    status = 502
    code = "broker_unavailable"


def error_envelope(
    code: str, message: str, errors: list[dict[str, str]] | None = None
) -> dict[str, Any]:
    """TastyTrade's error body: ``{"error": {"code", "message", "errors"?}}``."""
    body: dict[str, Any] = {"code": code, "message": message}
    if errors:
        body["errors"] = errors
    return {"error": body}


class RiskPathUnavailable(GatekeeperError):
    """The order path cannot reach a verdict (a backend or the account state is missing):
    the order is rejected, never forwarded. Subclasses name the missing part."""

    status = 503
    code = "risk_check_unavailable"


class DatabaseUnavailable(RiskPathUnavailable):
    code = "database_unavailable"


class CacheUnavailable(RiskPathUnavailable):
    code = "cache_unavailable"


class StateUnavailable(RiskPathUnavailable):
    """The broker's account state could not be fetched and the cached copy is too old."""

    code = "state_unavailable"


class DeadlineExceeded(RiskPathUnavailable):
    """The order waited in the gatekeeper past ``risk.order_deadline_seconds``: refused, never
    forwarded late (the bot may have given up on it already)."""

    code = "deadline_exceeded"


class Overloaded(RiskPathUnavailable):
    """More order requests in progress than ``risk.order_max_in_flight``: refused at once."""

    code = "overloaded"


class TooManyConnections(RiskPathUnavailable):
    """A request on a connection opened beyond ``proxy.max_client_connections``: answered 503
    and the connection closed (gatekeeper.web.connections); an order gets its decision row."""

    code = "too_many_connections"


class TooManyConnectionsFromAddress(GatekeeperError):
    """A request on a connection opened beyond ``proxy.max_client_connections_per_address``
    from one address: the client's doing, so an order's row says reject."""

    status = 503
    code = "too_many_connections_per_address"


class DuplicateOrder(GatekeeperError):
    """A retried submission of an order that is unresolved or accepted: its own decision row
    is recorded, it is never forwarded again (gatekeeper.order_identity). ``first`` is the
    earlier submission (an ``outcomes.FirstSubmission``)."""

    status = 409
    code = "duplicate_order"

    def __init__(self, decision_id: UUID, first: Any) -> None:
        super().__init__(
            f"duplicate_order: this order repeats decision {first.decision_id}, whose broker"
            " answer is not known yet; it is not forwarded again",
        )
        self.decision_id = decision_id
        self.first = first


def error_response(error: GatekeeperError, headers: dict[str, str] | None = None) -> web.Response:
    """A JSON error in TastyTrade's envelope with the error's own status.

    ``details["errors"]`` (a list of ``{"field", "code", "message", ...}``), when an error has
    it, becomes the envelope's ``errors``; a 401 says which scheme to use.
    """
    items = error.details.get("errors")
    if error.status == 401 and headers is None:
        headers = {"WWW-Authenticate": 'Bearer realm="gatekeeper-admin"'}
    return web.json_response(
        error_envelope(error.code, error.message, items if isinstance(items, list) else None),
        status=error.status,
        headers=headers,
    )
