"""The paper broker's refusals, each with TastyTrade's status and code.

They derive from Gatekeeper's error root so one middleware can render them; the nested
``errors`` list carries the per-check reasons the way TastyTrade's preflight failures do.
"""

from __future__ import annotations

from gatekeeper.errors import GatekeeperError


class PaperError(GatekeeperError):
    """A refusal by the paper broker, rendered as TastyTrade's error envelope."""

    def __init__(self, message: str, *, errors: list[dict[str, str]] | None = None) -> None:
        super().__init__(message)
        self.errors = errors or []


class InvalidCredentials(PaperError):
    status = 401
    code = "invalid_credentials"


class TokenInvalid(PaperError):
    status = 401
    code = "token_invalid"


class NotPermitted(PaperError):
    status = 403
    code = "not_permitted"


class RecordNotFound(PaperError):
    status = 404
    code = "record_not_found"


class InvalidRequest(PaperError):
    """The body is malformed: a field is missing, has the wrong type or an impossible value."""

    status = 400
    code = "validation_error"


class PreflightCheckFailure(PaperError):
    """The order is well formed but the broker will not take it (nested errors say why)."""

    status = 422
    code = "preflight_check_failure"

    def __init__(self, errors: list[dict[str, str]]) -> None:
        super().__init__("One or more preflight checks failed", errors=errors)


class CannotUpdateOrder(PaperError):
    status = 422
    code = "cannot_update_order"


def reason(code: str, message: str) -> dict[str, str]:
    """One nested error item."""
    return {"code": code, "message": message}
