"""Request and response shapes of the stop-anything routes (``/api/v1/emergency_stops``) and
of the working-order cancels a stop makes (also shown by the status route)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, model_validator

from gatekeeper.adapters import stops
from gatekeeper.limits import StopMode
from gatekeeper.web.admin_models import ACCOUNT_ID_PATTERN, Name, ProtectionOut, Text
from gatekeeper.web.cancel_models import WorkingOrdersOnStop


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _Scoped(_Request):
    account_id: str | None = Field(None, pattern=ACCOUNT_ID_PATTERN)
    all: StrictBool | None = Field(None, description="true: every account (the global stop)")

    @model_validator(mode="after")
    def _one_scope(self) -> _Scoped:
        if (self.account_id is None) == (self.all is not True):
            raise ValueError('give exactly one of "account_id" or "all": true')
        return self


class StopRequest(_Scoped):
    reason: Text
    triggered_by: Name | None = Field(None, description="default: the token's user")
    mode: StopMode | None = Field(
        None,
        description="this stop's mode. Default: each protection's emergency_stop_mode, else"
        " halt (the global stop: halt). A looser mode than that needs an admin token",
    )


class ClearStopRequest(_Scoped):
    confirm: str = Field(
        description='typed confirmation: the account_id being cleared, or "all" for the global stop'
    )
    cleared_by: Name | None = Field(None, description="default: the token's user")

    @model_validator(mode="after")
    def _confirmed(self) -> ClearStopRequest:
        expected = "all" if self.all else self.account_id
        if self.confirm != expected:
            raise ValueError(f'confirm must be "{expected}" (typed confirmation)')
        return self


class GlobalStopOut(BaseModel):
    active: bool
    mode: StopMode | None
    reason: str | None
    triggered_by: str | None
    triggered_at: datetime | None

    @classmethod
    def of(cls, stop: stops.GlobalStop) -> GlobalStopOut:
        return cls(
            active=stop.active,
            mode=stop.mode,
            reason=stop.reason,
            triggered_by=stop.triggered_by,
            triggered_at=stop.triggered_at,
        )


class StopResponse(BaseModel):
    scope: Literal["account", "all"]
    account_id: str | None
    already_active: bool = Field(description="true when the stop was active before this call")
    global_emergency_stop: GlobalStopOut
    protections: list[ProtectionOut] = Field(description="the account's protections (all owners)")
    working_orders_on_stop: WorkingOrdersOnStop | None = Field(
        None, description="the account's working orders (null for the global stop)"
    )


class StopStateResponse(BaseModel):
    global_emergency_stop: GlobalStopOut
    account_id: str | None
    emergency_stop_active: bool | None = Field(
        None, description="the account is stopped (its own stop or the global one)"
    )
    protections: list[ProtectionOut]
    working_orders_on_stop: WorkingOrdersOnStop | None
