"""The account's transaction history (TastyTrade's ``GET /accounts/{a}/transactions``) and the
test control that deposits or withdraws (``POST /__paper/accounts/{a}/money-movements``,
registered with the other control routes, behind their token)."""

from __future__ import annotations

from collections.abc import Mapping

from aiohttp import web

from gatekeeper.paper import money
from gatekeeper.paper import payloads as p
from gatekeeper.paper.errors import InvalidRequest
from gatekeeper.paper.http import BOOK, current_account, ok, read_json
from gatekeeper.paper.orders import parse_decimal


async def transactions(request: web.Request) -> web.Response:
    """Filters: ``type``, ``types[]``, ``sub-type[]``, ``start-date``, ``end-date``, ``sort``
    (``Desc`` by default), paginated by ``per-page`` and ``page-offset``."""
    account = current_account(request)
    query = request.query
    types = [*query.getall("types[]", []), *query.getall("type", [])]
    start, end = money.query_dates(dict(query))
    sort = query.get("sort", "Desc")
    if sort not in ("Asc", "Desc"):
        raise InvalidRequest("sort must be Asc or Desc")
    found = money.select(
        account.money_movements,
        types=types,
        sub_types=query.getall("sub-type[]", []),
        start=start,
        end=end,
        ascending=sort == "Asc",
    )
    items, pagination = money.page_of([money.transaction_payload(m) for m in found], dict(query))
    return ok(request, {"items": items}, pagination=pagination)


async def post_money_movement(request: web.Request) -> web.Response:
    """Control. Body: ``{"amount": signed (+ deposit, - withdrawal), "sub-type"?: "Deposit" |
    "Withdrawal" | "Transfer" | "Mark to Market" | ... (money.SUB_TYPES), "description"?}``:
    records a Money Movement transaction of today and moves the cash (NLV with it)."""
    body = await read_json(request)
    if not isinstance(body, Mapping):
        raise InvalidRequest("Request body must be a JSON object")
    amount = parse_decimal(body.get("amount"))
    if amount is None:
        raise InvalidRequest("amount is required (a number: + deposit, - withdrawal)")
    sub_type, description = body.get("sub-type"), body.get("description")
    if sub_type is not None and not isinstance(sub_type, str):
        raise InvalidRequest("sub-type must be a string")
    if description is not None and not isinstance(description, str):
        raise InvalidRequest("description must be a string")
    book = request.app[BOOK]
    number = request.match_info["account"]
    movement = money.move_money(book, number, amount, sub_type=sub_type, description=description)
    value = book.valuation(number)
    return ok(
        request,
        {
            "transaction": money.transaction_payload(movement),
            "cash-balance": p.dec(value.cash),
            "net-liquidating-value": p.dec(value.net_liquidating_value),
        },
        status=201,
    )
