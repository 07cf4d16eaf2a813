"""Errors about protections, and the mapping from a fired CHECK constraint to its 422."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import asyncpg

from gatekeeper.auth import InsufficientRole
from gatekeeper.errors import Conflict, NotFound, Unprocessable
from gatekeeper.limits import OTHER_CONSTRAINTS, Limit, limit_for_constraint


class ProtectionNotFound(NotFound):
    code = "protection_not_found"


class ProtectionExists(Conflict):
    code = "protection_exists"


class EmergencyStopNotActive(Conflict):
    code = "emergency_stop_not_active"


class StopModeTooLoose(InsufficientRole):
    """A stop mode looser than the protection's, asked for by someone who may not edit it."""


class ConstraintViolation(Unprocessable):
    """A setting outside its allowed range: names the field, the range and the constraint."""

    code = "constraint_violation"

    def __init__(self, items: list[dict[str, str]]) -> None:
        super().__init__("; ".join(item["message"] for item in items), details={"errors": items})


def range_error_item(limit: Limit, value: object) -> dict[str, str]:
    """One entry of a ConstraintViolation: the same words whoever noticed (API or database)."""
    return {
        "field": limit.field,
        "code": "out_of_range",
        "message": limit.message(value),
        "allowed": limit.describe(),
        "constraint": limit.constraint,
    }


def constraint_error(
    error: asyncpg.CheckViolationError, values: Mapping[str, Any]
) -> ConstraintViolation:
    """The 422 for a CHECK constraint the database enforced (the API's checks missed it)."""
    name = error.constraint_name or "unknown"
    limit = limit_for_constraint(name)
    if limit is not None:
        return ConstraintViolation([range_error_item(limit, values.get(limit.field))])
    message = OTHER_CONSTRAINTS.get(name, f"the values violate the database constraint {name}")
    return ConstraintViolation(
        [{"field": "", "code": "constraint", "message": f"{message} ({name})", "constraint": name}]
    )
