"""Rendering console pages: Jinja2 templates shipped in the package, escaped by default.

Jinja2 rather than ``string.Template`` or a renderer of our own: the pages loop over cards,
rows and history, and every value that reaches them (account numbers, reasons typed by an
operator, order symbols, error messages) must be HTML-escaped. Jinja2's autoescaping does
that for every ``{{ }}`` unless a template says otherwise (ours never do).

Every answer carries a Content-Security-Policy that allows only this listener's own
stylesheet and script: no inline script, no external host, no framing.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

import jinja2
from aiohttp import web

from gatekeeper.core.tradingday import NEW_YORK

TEMPLATES = web.AppKey("console_templates", jinja2.Environment)
NOTHING = "\u2013"  # an en dash: a figure not known (yet)

SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self';"
        " connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


def _decimal(value: object) -> Decimal | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        return Decimal(str(value))
    except InvalidOperation:
        return None


def pct(value: object, places: int = 2) -> str:
    """``12.3456`` -> ``12.35 %``; nothing known -> an en dash."""
    number = _decimal(value)
    return NOTHING if number is None else f"{number:,.{places}f} %"


def money(value: object) -> str:
    number = _decimal(value)
    return NOTHING if number is None else f"{number:,.2f}"


def share(value: float | None) -> str:
    """A utilisation (1.0 = at the limit) as a percentage of the limit."""
    return NOTHING if value is None else f"{value * 100:.1f} %"


def ny_time(value: datetime | str | None, with_date: bool = False) -> str:
    """A timestamp in New York time (the trading day's clock)."""
    if value is None:
        return NOTHING
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            return value
    else:
        moment = value
    local = moment.astimezone(NEW_YORK)
    return local.strftime("%Y-%m-%d %H:%M:%S %Z" if with_date else "%H:%M:%S")


def create_environment() -> jinja2.Environment:
    environment = jinja2.Environment(
        loader=jinja2.PackageLoader("gatekeeper.console", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        auto_reload=False,  # shipped in the package: never changes under a running process
    )
    environment.filters.update(pct=pct, money=money, share=share, ny_time=ny_time)
    return environment


def page(request: web.Request, template: str, status: int = 200, **context: Any) -> web.Response:
    """``template`` rendered with ``context`` as an HTML answer with the security headers."""
    text = request.app[TEMPLATES].get_template(template).render(**context)
    return web.Response(
        text=text, status=status, content_type="text/html", headers=SECURITY_HEADERS
    )


def redirect(location: str) -> web.Response:
    """303 See Other: after a form, the browser GETs the page (a reload never re-posts)."""
    return web.Response(status=303, headers={**SECURITY_HEADERS, "Location": location})


async def compile_templates(app: web.Application) -> None:
    """Compile every template once at start-up, in a thread: compiling takes tens of
    milliseconds each, which no request (and no event loop) should wait for."""
    environment = app[TEMPLATES]

    def compile_all() -> None:
        for name in environment.list_templates(extensions=["html"]):
            environment.get_template(name)

    await asyncio.to_thread(compile_all)
