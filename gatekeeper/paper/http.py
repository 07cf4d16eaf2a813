"""HTTP plumbing shared by the paper broker's routes: the app key, middlewares, helpers.

Three middlewares: the log of requests received (method and raw path, as sent; never
``/__paper/``), injected faults (delay and/or error status, never on ``/__paper/``) and the
rendering of every refusal as TastyTrade's error envelope.

JSON bodies are read as a lenient server reads them: a ``Content-Encoding`` (gzip, deflate)
is undone by aiohttp's server, and the text is decoded with the declared ``charset`` (UTF-8
when none; ``utf-16``, ``utf-7``… when declared; 415 when unknown). So a body declared one way
and checked another by the gatekeeper would be placed here as the broker reads it.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any
from zoneinfo import ZoneInfo

from aiohttp import web

from gatekeeper.errors import GatekeeperError, error_envelope
from gatekeeper.paper import payloads as p
from gatekeeper.paper.book import PaperBook
from gatekeeper.paper.errors import InvalidRequest, PaperError
from gatekeeper.paper.model import Account, User

BOOK = web.AppKey("paper_book", PaperBook)
NEW_YORK = ZoneInfo("America/New_York")
CONTROL_PREFIX = "/__paper/"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class UnsupportedCharset(PaperError):
    status = 415
    code = "unsupported_media_type"


def error_response(
    status: int, code: str, message: str, errors: list[dict[str, str]] | None = None
) -> web.Response:
    return web.json_response(error_envelope(code, message, errors), status=status)


@web.middleware
async def record_requests(request: web.Request, handler: Handler) -> web.StreamResponse:
    if not request.path.startswith(CONTROL_PREFIX):
        request.app[BOOK].record_request(request.method, request.raw_path)
    return await handler(request)


@web.middleware
async def render_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except GatekeeperError as error:
        return error_response(
            error.status, error.code, error.message, getattr(error, "errors", None)
        )
    except web.HTTPNotFound:
        return error_response(404, "not_found", f"No route for {request.method} {request.path}")
    except web.HTTPMethodNotAllowed:
        return error_response(
            405, "method_not_allowed", f"{request.method} is not allowed on {request.path}"
        )


@web.middleware
async def inject_faults(request: web.Request, handler: Handler) -> web.StreamResponse:
    fault = None
    if not request.path.startswith(CONTROL_PREFIX):
        fault = request.app[BOOK].take_fault(request.method, request.path)
    if fault is None:
        return await handler(request)
    response: web.StreamResponse | None = None
    refusal: GatekeeperError | None = None
    if fault.after:
        try:
            response = await handler(request)
        except GatekeeperError as error:
            refusal = error
    if fault.delay_seconds > 0:
        await asyncio.sleep(fault.delay_seconds)
    if fault.status is not None:
        message = f"Injected fault on {fault.path_prefix}"
        return error_response(fault.status, "paper_fault_injected", message)
    if refusal is not None:
        raise refusal
    return response if response is not None else await handler(request)


async def read_json(request: web.Request) -> Any:
    if not request.can_read_body:
        return {}
    raw = await request.read()  # already decompressed by aiohttp's server
    charset = request.charset or "utf-8"
    try:
        text = raw.decode(charset)
    except LookupError:  # unknown, or not a text encoding (rot13, base64…)
        raise UnsupportedCharset(f"Unsupported charset {charset[:40]!r}") from None
    except (UnicodeError, ValueError):
        raise InvalidRequest(f"Request body is not valid {charset[:40]}") from None
    if not text.strip():
        return {}
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        raise InvalidRequest("Request body is not valid JSON") from None


def ok(request: web.Request, data: Any, *, status: int = 200, **extra: Any) -> web.Response:
    return web.json_response({**p.envelope(data, request.path), **extra}, status=status)


def current_user(request: web.Request) -> User:
    return request.app[BOOK].authenticate(request.headers.get("Authorization"))


def current_account(request: web.Request) -> Account:
    book = request.app[BOOK]
    return book.account_for(current_user(request), request.match_info["account"])


def path_int(request: web.Request, name: str) -> int:
    return int(request.match_info[name])
