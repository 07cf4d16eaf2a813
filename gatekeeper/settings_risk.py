"""The ``[risk]`` section of the settings: the account state's freshness, the order path's
deadlines and bounds, the reconciler's timing, and the limits of accounts guarded by the
configured defaults (checked against the protections' own CHECK constraints)."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Literal

from pydantic import Field, SecretStr, ValidationInfo, field_validator, model_validator

from gatekeeper.settings_sections import Percent, PositiveSeconds, Section, random_secret


class RiskSettings(Section):
    """The order path: account-state caching, unknown accounts and their default limits."""

    # Account state younger than this is used as is; older is refetched from the broker.
    state_ttl_seconds: PositiveSeconds = 2.0
    # Older than this (and unrefreshable) the order is rejected: state_unavailable.
    max_state_age_seconds: PositiveSeconds = 10.0
    quote_ttl_seconds: PositiveSeconds = 1.0
    # After an order is forwarded the account's state is refreshed in the background, at most
    # once per this many seconds per account (the broker's answer already put the order in
    # the cached state, and its reservation counts it until the state shows it); 0: after
    # every forward.
    refresh_after_forward_seconds: Annotated[float, Field(ge=0, le=60)] = 0.5
    # Cached account state serves a request only if the broker let the request's credential
    # read that account within this many seconds (a digest of it is kept in Redis this long).
    credential_ttl_seconds: PositiveSeconds = 60.0
    # Keys the HMAC-SHA256 digests of those credentials. Unset: a random key per process, so
    # each replica confirms a credential once itself; set one to share confirmations.
    credential_digest_key: SecretStr | None = None
    # Instruments (an option's underlying group, a future's multiplier) do not change intraday:
    # looked up once per symbol, then cached in Redis this long (6 hours; at most a week).
    instrument_ttl_seconds: Annotated[float, Field(gt=0, le=7 * 86_400)] = 6 * 3_600.0
    # Accounts without a protection: guarded by the defaults below, or every order rejected.
    unknown_account_policy: Literal["defaults", "reject"] = "defaults"
    max_body_bytes: Annotated[int, Field(ge=1024, le=1024**2)] = 64 * 1024
    # A submission with the same route and body (external-identifiers aside) as a counted
    # order of the account decided this many seconds before, while that one is unresolved or
    # accepted, is a retry: answered from the first, never forwarded (docs/order-path.md).
    # 0 turns this off; retries carrying the bot's own external-identifier are always caught.
    duplicate_window_seconds: Annotated[float, Field(ge=0, le=3600)] = 0.0
    # How long an order may wait inside the gatekeeper before it is forwarded (in the
    # kernel's accept queue, for the broker's account state, a database connection, the
    # account lock): past it the order is refused, 503 deadline_exceeded with its decision
    # row, never forwarded late. Keep it below the bot's own timeout minus the broker's answer
    # time (httpx, under tastyware's client, gives up after 5 s).
    order_deadline_seconds: PositiveSeconds = 2.5
    # Order requests one process works on at once; beyond them a new one is answered 503
    # overloaded at once, with its decision row, instead of waiting in a queue.
    order_max_in_flight: Annotated[int, Field(ge=1, le=10_000)] = 64
    # The reconciler (gatekeeper.reconciler): how often it looks for unresolved orders; how
    # old a decision with no outcome at all must be before it is taken for a dead replica's
    # (longer than a forward can take: connect + read timeouts); how long after it was sent
    # an order not found at the broker is declared not_placed (a broker may place an order
    # that waited in its accept queue long after the gatekeeper gave up on it).
    reconcile_interval_seconds: PositiveSeconds = 1.0
    reconcile_grace_seconds: PositiveSeconds = 90.0
    reconcile_not_placed_after_seconds: PositiveSeconds = 120.0
    # The seed's Step 7 values.
    default_cash_reserve_percentage: Percent = Decimal(25)
    default_max_daily_loss_percentage: Percent = Decimal(5)
    default_max_single_trade_percentage: Percent = Decimal(10)
    default_max_portfolio_exposure_percentage: Percent = Decimal(75)
    default_max_position_concentration_percentage: Percent = Decimal(20)
    default_max_daily_trades: Annotated[int, Field(ge=1, le=10_000)] = 50
    # Risk model (docs/order-path.md): the highest scenario price is the largest of the
    # underlying's price and every strike, plus this share of the underlying's price.
    stress_up_percentage: Annotated[Decimal, Field(gt=0, le=1000)] = Decimal(100)
    # Quotes older than this (when they say when they were updated) are not used; None: off.
    max_quote_age_seconds: Annotated[Decimal, Field(gt=0)] | None = Decimal(300)
    # Quotes whose bid-ask spread exceeds this share of the mid are not used; None: off.
    max_spread_percentage: Annotated[Decimal, Field(gt=0, le=1000)] | None = Decimal(100)
    # Start of day (docs/order-path.md "The trading day"): the day's deposits and withdrawals
    # (the broker's Money Movement transactions) are cached in Redis this long, then asked
    # again: they arrive intraday.
    money_movements_ttl_seconds: Annotated[float, Field(gt=0, le=3_600)] = 30.0
    # While the broker has no beginning-of-day snapshot for the day (the first sight stands
    # in), it is asked again at most this often; once it has one, never again that day.
    start_of_day_retry_seconds: Annotated[float, Field(gt=0, le=3_600)] = 300.0

    @field_validator("credential_digest_key")
    @classmethod
    def _check_digest_key(cls, value: SecretStr | None) -> SecretStr | None:
        return random_secret(value)

    @model_validator(mode="after")
    def _check_ages(self) -> RiskSettings:
        if self.max_state_age_seconds < self.state_ttl_seconds:
            raise ValueError("max_state_age_seconds must be at least state_ttl_seconds")
        return self

    @field_validator(
        "default_cash_reserve_percentage",
        "default_max_daily_loss_percentage",
        "default_max_single_trade_percentage",
        "default_max_portfolio_exposure_percentage",
        "default_max_position_concentration_percentage",
        "default_max_daily_trades",
    )
    @classmethod
    def _check_default_limit(cls, value: Decimal | int, info: ValidationInfo) -> Decimal | int:
        # The defaults guard accounts without a protection: the same ranges as the
        # protections table's CHECK constraints (gatekeeper/limits.py, the guide's ranges).
        from gatekeeper.limits import LIMITS_BY_FIELD

        limit = LIMITS_BY_FIELD[(info.field_name or "").removeprefix("default_")]
        if not limit.allows(value):
            raise ValueError(
                f"must be {limit.describe()} like a protection's (CHECK {limit.constraint});"
                f" got {value}"
            )
        return value
