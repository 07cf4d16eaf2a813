"""The OpenAPI document describes exactly the admin listener's routes, and is served."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from gatekeeper.limits import LIMITS
from gatekeeper.metrics import Metrics
from gatekeeper.settings import Settings
from gatekeeper.web.admin import create_admin_app
from gatekeeper.web.admin_api import ROUTES
from gatekeeper.web.openapi import OPENAPI_PATH, build_openapi
from tests.fixtures.admin import AdminApi

METHODS = {"get", "post", "put", "patch", "delete"}


def registered_routes() -> set[tuple[str, str]]:
    app = create_admin_app(Settings(), Metrics.create())
    return {
        (route.method, route.resource.canonical)
        for route in app.router.routes()
        if route.method != "HEAD" and route.resource is not None  # HEAD comes with every GET
    }


def documented_routes(document: dict[str, Any]) -> set[tuple[str, str]]:
    return {
        (method.upper(), path)
        for path, item in document["paths"].items()
        for method in item
        if method in METHODS
    }


def refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return found + [ref for value in node.values() for ref in refs(value)]
    if isinstance(node, list):
        return [ref for value in node for ref in refs(value)]
    return []


def test_every_route_is_documented_and_nothing_else() -> None:
    document = build_openapi()
    assert documented_routes(document) == registered_routes()


def test_the_document_is_self_consistent() -> None:
    document = build_openapi()
    assert document["openapi"].startswith("3.1")
    schemas = document["components"]["schemas"]
    for ref in refs(document):
        assert ref.startswith("#/components/schemas/")
        assert ref.removeprefix("#/components/schemas/") in schemas, ref
    for route in ROUTES:
        path = route.path.split("{")[0]
        assert any(p.startswith(path) for p in document["paths"])
    json.dumps(document)  # plain JSON, no Decimals or sets


def test_ranges_in_the_document_come_from_the_one_definition() -> None:
    properties = build_openapi()["components"]["schemas"]["ProtectionCreate"]["properties"]
    for limit in LIMITS:
        (bounded,) = [v for v in properties[limit.field]["anyOf"] if v["type"] != "null"][:1]
        low = "minimum" if limit.lower_inclusive else "exclusiveMinimum"
        high = "maximum" if limit.upper_inclusive else "exclusiveMaximum"
        assert Decimal(str(bounded[low])) == limit.lower, limit.field
        assert Decimal(str(bounded[high])) == limit.upper, limit.field
        assert limit.constraint in properties[limit.field]["description"]


async def test_the_admin_listener_serves_it(admin_api: AdminApi) -> None:
    reply = await admin_api.call("GET", OPENAPI_PATH)
    assert reply.status == 200
    assert reply.body == json.loads(json.dumps(build_openapi()))
