"""The paper broker's HTTP API: TastyTrade's routes plus ``/__paper/`` test controls (behind
a control token of their own).

Handlers only translate HTTP to book calls and book results to payloads; the book holds the
logic.
"""

from __future__ import annotations

from aiohttp import web

from gatekeeper.paper.book import PaperBook
from gatekeeper.paper.control import add_control_routes
from gatekeeper.paper.http import BOOK, inject_faults, record_requests, render_errors
from gatekeeper.paper.routes_accounts import add_account_routes
from gatekeeper.paper.routes_instruments import add_instrument_routes
from gatekeeper.paper.routes_orders import add_order_routes
from gatekeeper.paper.streamer import add_streamer_routes


def create_paper_app(book: PaperBook, *, control_token: str) -> web.Application:
    """The paper broker as an aiohttp application serving ``book``; its ``/__paper/`` routes
    need ``control_token`` in ``X-Paper-Control-Token``."""
    app = web.Application(middlewares=[record_requests, render_errors, inject_faults])
    app[BOOK] = book
    add_account_routes(app)
    add_instrument_routes(app)
    add_order_routes(app)
    add_control_routes(app, control_token)
    add_streamer_routes(app)  # after the control routes: its own need their token
    return app
