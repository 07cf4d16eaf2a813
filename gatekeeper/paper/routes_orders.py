"""TastyTrade's order routes: place, dry-run, read, replace, cancel; complex orders."""

from __future__ import annotations

from aiohttp import web

from gatekeeper.paper import order_payloads as op
from gatekeeper.paper import payloads as p
from gatekeeper.paper.errors import InvalidRequest
from gatekeeper.paper.http import (
    BOOK,
    NEW_YORK,
    current_account,
    ok,
    path_int,
    read_json,
)

# --- orders ------------------------------------------------------------------------------


async def place_order(request: web.Request) -> web.Response:
    account = current_account(request)
    dry_run = request.path.endswith("/dry-run")
    result = request.app[BOOK].place_order(account, await read_json(request), dry_run=dry_run)
    return ok(request, op.placed_order_response(result), status=201)


async def live_orders(request: web.Request) -> web.Response:
    account = current_account(request)
    today = request.app[BOOK].now().astimezone(NEW_YORK).date()
    orders = [
        o for o in account.orders.values() if o.received_at.astimezone(NEW_YORK).date() == today
    ]
    return ok(request, {"items": [op.order_payload(order) for order in orders]})


async def search_orders(request: web.Request) -> web.Response:
    account = current_account(request)
    try:
        per_page = min(max(int(request.query.get("per-page", "10")), 1), 250)
        page = max(int(request.query.get("page-offset", "0")), 0)
    except ValueError:
        raise InvalidRequest("per-page and page-offset must be integers") from None
    statuses = set(request.query.getall("status[]", []))
    underlying = request.query.get("underlying-symbol")
    orders = [
        order
        for order in sorted(account.orders.values(), key=lambda o: o.id or 0, reverse=True)
        if (not statuses or order.status in statuses)
        and (underlying is None or order.underlying_symbol == underlying)
    ]
    chunk = orders[page * per_page : (page + 1) * per_page]
    return ok(
        request,
        {"items": [op.order_payload(order) for order in chunk]},
        pagination=p.pagination(len(orders), per_page, page, len(chunk)),
    )


async def get_order(request: web.Request) -> web.Response:
    order = request.app[BOOK].order(current_account(request), path_int(request, "id"))
    return ok(request, op.order_payload(order))


async def replace_order(request: web.Request) -> web.Response:
    account = current_account(request)
    order = request.app[BOOK].replace_order(
        account, path_int(request, "id"), await read_json(request)
    )
    return ok(request, op.order_payload(order))


async def dry_run_replace_order(request: web.Request) -> web.Response:
    account = current_account(request)
    body = await read_json(request)
    result = request.app[BOOK].dry_run_replace(account, path_int(request, "id"), body)
    return ok(request, op.placed_order_response(result), status=201)


async def cancel_order(request: web.Request) -> web.Response:
    order = request.app[BOOK].cancel_order(current_account(request), path_int(request, "id"))
    return ok(request, op.order_payload(order))


async def place_complex_order(request: web.Request) -> web.Response:
    account = current_account(request)
    dry_run = request.path.endswith("/dry-run")
    result = request.app[BOOK].place_complex_order(
        account, await read_json(request), dry_run=dry_run
    )
    return ok(request, op.complex_order_response(result), status=201)


async def live_complex_orders(request: web.Request) -> web.Response:
    account = current_account(request)
    items = [op.complex_order_payload(c) for c in account.complex_orders.values()]
    return ok(request, {"items": items})


async def get_complex_order(request: web.Request) -> web.Response:
    complex_order = request.app[BOOK].complex_order(
        current_account(request), path_int(request, "id")
    )
    return ok(request, op.complex_order_payload(complex_order))


async def cancel_complex_order(request: web.Request) -> web.Response:
    complex_order = request.app[BOOK].cancel_complex_order(
        current_account(request), path_int(request, "id")
    )
    return ok(request, op.complex_order_payload(complex_order))


def add_order_routes(app: web.Application) -> None:
    acct = "/accounts/{account}"
    order_id = acct + r"/orders/{id:\d+}"
    complex_id = acct + r"/complex-orders/{id:\d+}"
    app.router.add_post(acct + "/orders", place_order)
    app.router.add_post(acct + "/orders/dry-run", place_order)
    app.router.add_get(acct + "/orders/live", live_orders)
    app.router.add_get(acct + "/orders", search_orders)
    app.router.add_get(order_id, get_order)
    app.router.add_put(order_id, replace_order)
    app.router.add_patch(order_id, replace_order)
    app.router.add_post(order_id + "/dry-run", dry_run_replace_order)
    app.router.add_delete(order_id, cancel_order)
    app.router.add_post(acct + "/complex-orders", place_complex_order)
    app.router.add_post(acct + "/complex-orders/dry-run", place_complex_order)
    app.router.add_get(acct + "/complex-orders/live", live_complex_orders)
    app.router.add_get(acct + "/complex-orders", live_complex_orders)
    app.router.add_get(complex_id, get_complex_order)
    app.router.add_delete(complex_id, cancel_complex_order)
