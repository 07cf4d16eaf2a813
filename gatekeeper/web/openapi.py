"""The admin listener's OpenAPI 3.1 document, built from the route table and the pydantic
models (a test checks it against the routes actually registered)."""

from __future__ import annotations

import re
from typing import Any

from aiohttp import web
from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from gatekeeper.web.admin_api import ROUTES, ApiRoute
from gatekeeper.web.admin_models import ErrorResponse

OPENAPI_PATH = "/api/v1/openapi.json"
_REF = "#/components/schemas/{model}"
_PATTERNED = re.compile(r"\{(\w+):(?:[^{}]|\{[^{}]*\})*\}")

# Routes outside the admin API proper: (method, path, summary, content type).
PLAIN_ROUTES: tuple[tuple[str, str, str, str], ...] = (
    ("GET", "/healthz", "Liveness: the process answers", "application/json"),
    ("GET", "/readyz", "Readiness: Postgres (migrations current) and Redis", "application/json"),
    ("GET", "/metrics", "Prometheus metrics", "text/plain"),
    ("GET", OPENAPI_PATH, "This document", "application/json"),
)

# Path parameters by name: protection ids are integers, decision ids UUIDs.
_PATH_SCHEMAS: dict[str, dict[str, str]] = {
    "id": {"type": "integer"},
    "decision_id": {"type": "string", "format": "uuid"},
}

_ERRORS = {
    400: "Malformed JSON, wrong types, unknown or missing fields",
    401: "Missing, malformed, unknown, expired or revoked token",
    403: "The token's role does not allow this",
    404: "No such protection (or decision) among those you may see",
    409: "Conflicts with the current state (exists already, stop not active)",
    422: "A value outside its allowed range: names the field, the range and the constraint",
    501: "Needs the risk engine, not part of this build yet",
    503: "The database is unavailable",
}


def openapi_path(path: str) -> str:
    """aiohttp's ``/x/{id:\\d+}`` as OpenAPI's ``/x/{id}``."""
    return _PATTERNED.sub(r"{\1}", path)


def _schemas(routes: tuple[ApiRoute, ...]) -> tuple[dict[Any, dict[str, Any]], dict[str, Any]]:
    wanted: list[tuple[type[BaseModel], JsonSchemaMode]] = [(ErrorResponse, "serialization")]
    for route in routes:
        if route.request is not None:
            wanted.append((route.request, "validation"))
        if route.response is not None:
            wanted.append((route.response, "serialization"))
    refs, top = models_json_schema(list(dict.fromkeys(wanted)), ref_template=_REF)
    return dict(refs), top.get("$defs", {})


def _json_content(schema: dict[str, Any]) -> dict[str, Any]:
    return {"application/json": {"schema": schema}}


def _operation(route: ApiRoute, refs: dict[Any, dict[str, Any]]) -> dict[str, Any]:
    error_ref = refs[(ErrorResponse, "serialization")]
    responses: dict[str, Any] = {}
    if route.response is not None:
        schema = refs[(route.response, "serialization")]
        responses[str(route.status)] = {"description": "OK", "content": _json_content(schema)}
    for status in (*route.errors, 503):
        responses[str(status)] = {
            "description": _ERRORS[status],
            "content": _json_content(error_ref),
        }
    parameters = (
        [
            {"name": name, "in": "path", "required": True, "schema": _PATH_SCHEMAS[name]}
            for name in re.findall(r"\{(\w+)\}", openapi_path(route.path))
        ]
        + [
            {"name": name, "in": "query", "required": True, "schema": {"type": "string"}}
            for name in route.query
        ]
        + [
            {"name": name, "in": "query", "required": False, "schema": {"type": "string"}}
            for name in route.optional_query
        ]
    )
    operation: dict[str, Any] = {
        "summary": route.summary,
        "operationId": route.handler.__name__,
        "security": [{"bearerAuth": []}],
        "x-required-permission": route.permission.value,
        "responses": responses,
    }
    if parameters:
        operation["parameters"] = parameters
    if route.request is not None:
        schema = refs[(route.request, "validation")]
        operation["requestBody"] = {"required": True, "content": _json_content(schema)}
    return operation


def build_openapi(routes: tuple[ApiRoute, ...] = ROUTES) -> dict[str, Any]:
    """The whole document: every admin API route plus health, readiness, metrics and itself."""
    refs, schemas = _schemas(routes)
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        paths.setdefault(openapi_path(route.path), {})[route.method.lower()] = _operation(
            route, refs
        )
    for method, path, summary, content_type in PLAIN_ROUTES:
        paths.setdefault(path, {})[method.lower()] = {
            "summary": summary,
            "operationId": path.strip("/").replace("/", "_").replace(".", "_"),
            "security": [],
            "responses": {"200": {"description": "OK", "content": {content_type: {}}}},
        }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Gatekeeper admin API",
            "version": "1",
            "description": (
                "Portfolio protections, emergency stops and trade validation. Authenticate"
                " with 'Authorization: Bearer <token>' (tokens from `gatekeeper tokens create`)."
                " Roles: viewer (read), operator (read, trigger an emergency stop), admin"
                ' (everything). Errors: {"error": {"code", "message", "errors"?}}.'
            ),
        },
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer"}},
        },
    }


def add_openapi(app: web.Application) -> None:
    """Serve the document (built once, no authentication: it holds no data)."""
    document = build_openapi()

    async def openapi(request: web.Request) -> web.Response:
        return web.json_response(document)

    app.router.add_get(OPENAPI_PATH, openapi)
