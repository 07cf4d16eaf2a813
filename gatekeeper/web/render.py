"""Rendering errors as TastyTrade-shaped JSON, and the middleware that does it for every route."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

from gatekeeper.errors import GatekeeperError, error_envelope, error_response

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def errors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Turn GatekeeperError and aiohttp's HTTP errors into JSON; hide internal errors' details."""
    try:
        return await handler(request)
    except GatekeeperError as error:
        return error_response(error)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = exc.reason.lower().replace(" ", "_")
        return web.json_response(
            error_envelope(code, exc.reason), status=exc.status, headers=_allow_header(exc)
        )
    except Exception:
        # The exception may carry request data (headers with tokens): log its type and
        # traceback frames, never the request.
        log.exception("unhandled error on %s %s", request.method, request.rel_url.path)
        return web.json_response(
            error_envelope("internal_error", "Internal error in the gatekeeper."), status=500
        )


def _allow_header(exc: web.HTTPException) -> dict[str, str] | None:
    allow = exc.headers.get("Allow")
    return {"Allow": allow} if allow else None
