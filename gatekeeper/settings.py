"""Settings: the only module that reads configuration files and the environment.

Sources, highest priority first: keyword arguments (CLI flags), ``GATEKEEPER_*`` environment
variables (nested with ``__``, e.g. ``GATEKEEPER_PROXY__PORT``; ``DATABASE_URL`` and
``REDIS_URL`` are accepted too), a TOML file (``GATEKEEPER_CONFIG`` or ``config/gatekeeper.toml``),
then defaults. Unknown keys anywhere are an error, and every error is reported at once.
"""

from __future__ import annotations

import json
import os
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from gatekeeper.auth import InvalidTtl, parse_ttl

DEFAULT_CONFIG_FILE = Path("config/gatekeeper.toml")
SANDBOX_URL = "https://api.cert.tastyworks.com"
PRODUCTION_URL = "https://api.tastyworks.com"

Port = Annotated[int, Field(ge=0, le=65535)]
PositiveSeconds = Annotated[float, Field(gt=0, le=600)]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def validate_upstream_url(value: str) -> str:
    """An origin only: scheme and host (and port). No path, query, credentials or fragment."""
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https"):
        raise ValueError("must start with http:// or https://")
    if not parts.hostname:
        raise ValueError("must name a host")
    if parts.username or parts.password:
        raise ValueError("must not contain credentials")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ValueError("must be an origin only (no path, query or fragment)")
    parts.port  # noqa: B018 - raises ValueError on a malformed port
    return f"{parts.scheme}://{parts.netloc}"


class ProxySettings(_Section):
    """The listener bots talk to, and how it talks to the broker."""

    host: str = "127.0.0.1"
    port: Port = 8080
    upstream_url: str = SANDBOX_URL
    # Connecting to the broker, including the wait for a free pooled connection: a request
    # that got none in this time was never sent (not_sent), never "unknown".
    connect_timeout_seconds: PositiveSeconds = 5.0
    read_timeout_seconds: PositiveSeconds = 30.0
    total_timeout_seconds: PositiveSeconds = 60.0
    # Broker connections for pass-through traffic.
    max_connections: Annotated[int, Field(ge=1, le=10_000)] = 100
    # Broker connections of the order path alone (account state, instruments, quotes, order
    # forwards): pass-through traffic cannot take them.
    order_max_connections: Annotated[int, Field(ge=1, le=10_000)] = 50
    # Clients (both listeners): a request's head must arrive within this time (from the
    # connection's opening or the request's first byte), its body within this time after the
    # head, and an idle keep-alive connection is closed after this time.
    request_head_timeout_seconds: PositiveSeconds = 10.0
    request_body_timeout_seconds: PositiveSeconds = 10.0
    keepalive_timeout_seconds: PositiveSeconds = 75.0
    # Open client connections per listener, in total and from one address; beyond them a new
    # connection is answered 503. Behind a TLS terminator or load balancer every client shares
    # its address: raise the per-address limit to the total there.
    max_client_connections: Annotated[int, Field(ge=1, le=1_000_000)] = 4096
    max_client_connections_per_address: Annotated[int, Field(ge=1, le=1_000_000)] = 256
    # Sent upstream instead of the bot's own when set (TastyTrade wants "<product>/<version>").
    user_agent_override: str | None = None
    # HTTPS on this listener (clients that insist on it, e.g. tastytrade-sdk): a PEM
    # certificate (chain) and its PEM key, both or neither; read when the listener starts
    # (gatekeeper.tls). `gatekeeper demo --tls` makes a local certificate authority for them.
    tls_certificate: Path | None = None
    tls_key: Path | None = None
    # TastyTrade's account streamer (docs/order-path.md, "Account streamer"): once a bot's
    # credentials for an account are seen, a WebSocket keeps the account's cached balances,
    # positions and orders current; polling stays the fallback. URL unset: TastyTrade's
    # streamer for its API hosts, else the upstream's /account-streamer (the paper broker's).
    account_streamer: bool = True
    account_streamer_url: str | None = None
    # The event loop of every command: "uvloop" (libuv; the default where it is installed,
    # which Linux and macOS wheels are) or Python's own "asyncio".
    event_loop: Literal["uvloop", "asyncio"] = "uvloop"

    _check_upstream = field_validator("upstream_url")(validate_upstream_url)

    @field_validator("account_streamer_url")
    @classmethod
    def _check_streamer_url(cls, value: str | None) -> str | None:
        parts = urlsplit(value or "ws://host")
        if parts.scheme not in ("ws", "wss") or not parts.hostname:
            raise ValueError("must be a ws:// or wss:// URL naming a host")
        if parts.username or parts.password:
            raise ValueError("must not contain credentials")
        return value

    @model_validator(mode="after")
    def _check_tls(self) -> ProxySettings:
        if (self.tls_certificate is None) != (self.tls_key is None):
            raise ValueError("tls_certificate and tls_key go together (both or neither)")
        return self

    @model_validator(mode="after")
    def _check_timeouts(self) -> ProxySettings:
        # aiohttp rounds timeouts above 5 s up to the next second: with a second's margin the
        # connect timeout always fires first, so a request that never got a connection is
        # told apart from one that timed out after it was sent.
        if self.total_timeout_seconds < self.connect_timeout_seconds + 1:
            raise ValueError(
                "total_timeout_seconds must exceed connect_timeout_seconds by at least 1"
            )
        return self


class AdminSettings(_Section):
    """The operators' listener: admin API, metrics, health. Its own port by default."""

    host: str = "127.0.0.1"
    port: Port = 8081
    # Lifetime of a token from `gatekeeper tokens create` without --ttl (the seed: 24 hours).
    default_token_ttl: str = "24h"  # noqa: S105 - a duration, not a secret
    # The emergency_stop_mode given to a new protection created without one: halt (nothing
    # passes) or reduce_only (verified closes pass). None (the default): new protections leave
    # it unset, so an automatic (daily-loss) stop applies reduce_only and a manual stop halt.
    default_emergency_stop_mode: Literal["halt", "reduce_only"] | None = None
    # The status job (gatekeeper.status_job) refreshes the per-account gauges and counts
    # emergency events from Postgres this often (stops from the CLI and other replicas too).
    status_refresh_seconds: PositiveSeconds = 15.0

    @field_validator("default_token_ttl")
    @classmethod
    def _check_ttl(cls, value: str) -> str:
        try:
            parse_ttl(value)
        except InvalidTtl as error:
            raise ValueError(error.message) from None
        return value


class PaperSettings(_Section):
    """The paper broker (``gatekeeper paper`` and the demo's upstream)."""

    host: str = "127.0.0.1"
    port: Port = 8090
    accounts_file: Path = Path("config/paper-accounts.json")
    # Needed by its /__paper/ control routes (X-Paper-Control-Token). Unset: a random one is
    # generated at start and printed by `gatekeeper paper` and `gatekeeper demo`.
    control_token: Annotated[SecretStr, Field(min_length=16)] | None = None


class EmbeddedSettings(_Section):
    """Where the demo keeps the Postgres and Redis it starts from wheels."""

    data_dir: Path = Path("var/demo")


Percent = Annotated[Decimal, Field(gt=0, le=100)]


class RiskSettings(_Section):
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
        if value is not None and len(value.get_secret_value()) < 16:
            raise ValueError("must be at least 16 characters (a random string)")
        return value

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


_WEBHOOK_NAME = r"^[a-z0-9][a-z0-9_-]{0,39}$"


class EmailAlertSettings(_Section):
    """An SMTP server and who gets the mail (for protections with ``email_alerts_enabled``)."""

    host: str
    # 587 with starttls, 465 with tls, 25 with none.
    port: Port = 587
    security: Literal["starttls", "tls", "none"] = "starttls"
    username: str | None = None
    password: SecretStr | None = None
    sender: str
    recipients: Annotated[tuple[str, ...], Field(min_length=1)]
    timeout_seconds: PositiveSeconds = 10.0

    @field_validator("sender", "recipients")
    @classmethod
    def _check_addresses(cls, value: str | tuple[str, ...]) -> str | tuple[str, ...]:
        for address in (value,) if isinstance(value, str) else value:
            local, at, domain = address.rpartition("@")
            if not (at and local and domain) or any(c.isspace() or c in ",<>" for c in address):
                raise ValueError("must be plain email addresses (name@host)")
        return value

    @model_validator(mode="after")
    def _check_credentials(self) -> EmailAlertSettings:
        given = [value is not None for value in (self.username, self.password)]
        if any(given) and not all(given):
            raise ValueError("username and password go together")
        return self


class WebhookSettings(_Section):
    """One webhook: a Slack-, Discord- or ntfy-compatible body, or Gatekeeper's own JSON."""

    # Names the webhook in logs and in the outbox, where the URL never appears.
    name: Annotated[str, Field(pattern=_WEBHOOK_NAME)]
    # A secret: chat webhooks carry their token in the URL.
    url: SecretStr
    format: Literal["slack", "discord", "ntfy", "json"] = "json"
    # Signs the body: "<signature_header>: sha256=<hex HMAC-SHA256 of the body>".
    secret: SecretStr | None = None
    signature_header: str = "X-Gatekeeper-Signature"

    @field_validator("url")
    @classmethod
    def _check_url(cls, value: SecretStr) -> SecretStr:
        parts = urlsplit(value.get_secret_value())
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an http:// or https:// URL")  # the URL is not echoed
        return value

    @field_validator("secret")
    @classmethod
    def _check_secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < 16:
            raise ValueError("must be at least 16 characters (a random string)")
        return value


class AlertSettings(_Section):
    """Alerts (docs/alerts.md): what raises one, and the channels that deliver it."""

    email: EmailAlertSettings | None = None
    webhooks: tuple[WebhookSettings, ...] = ()
    # A limit used above this share (exposure, largest concentration, cash above the reserve,
    # trades today) raises one alert per account, limit and trading day.
    utilisation_threshold_percentage: Percent = Decimal(80)
    # This many rejections of one account within the window raise one alert per window.
    rejection_burst_count: Annotated[int, Field(ge=2, le=10_000)] = 10
    rejection_burst_window_seconds: Annotated[float, Field(ge=1, le=86_400)] = 60.0
    # The risk path failing (database, cache, broker state) alerts once per account, reason and
    # this many seconds.
    risk_path_alert_interval_seconds: Annotated[float, Field(ge=1, le=86_400)] = 300.0
    # Delivery: how often each replica's worker looks for due messages, the timeout of one
    # attempt, and the retries (exponential back-off from retry_base_seconds, at most
    # retry_max_seconds apart, max_attempts in all).
    poll_interval_seconds: Annotated[float, Field(ge=0.01, le=60)] = 1.0
    send_timeout_seconds: PositiveSeconds = 10.0
    max_attempts: Annotated[int, Field(ge=1, le=100)] = 12
    retry_base_seconds: Annotated[float, Field(ge=0.01, le=3_600)] = 5.0
    retry_max_seconds: Annotated[float, Field(ge=0.01, le=86_400)] = 1_800.0

    @model_validator(mode="after")
    def _check_webhooks(self) -> AlertSettings:
        names = [hook.name for hook in self.webhooks]
        if len(names) != len(set(names)):
            raise ValueError("webhook names must be unique")
        return self


AccountNumber = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")]


class BrokerClientSettings(_Section):
    """The gatekeeper's own TastyTrade OAuth client for some accounts: what a manual or global
    stop cancels their working orders with (``POST /oauth/token``, refresh_token grant)."""

    accounts: Annotated[tuple[AccountNumber, ...], Field(min_length=1)]
    client_secret: SecretStr
    refresh_token: SecretStr
    client_id: str | None = None


class StopSettings(_Section):
    """What an emergency stop does besides refusing orders (docs/admin.md)."""

    # The gatekeeper's own broker credentials, per account. Put them in the environment
    # (GATEKEEPER_STOPS__BROKER_CLIENTS as a JSON list) or in broker_clients_file (a JSON list
    # of the same objects, read once at start-up), not in the TOML file.
    broker_clients: tuple[BrokerClientSettings, ...] = ()
    broker_clients_file: Path | None = None
    # How often each replica looks for stops whose cancels wait on its own credentials.
    sweep_interval_seconds: PositiveSeconds = 5.0
    # One cancel (DELETE) at the broker may take this long.
    cancel_timeout_seconds: PositiveSeconds = 10.0

    @model_validator(mode="before")
    @classmethod
    def _read_clients_file(cls, data: Any) -> Any:
        if not isinstance(data, dict) or not data.get("broker_clients_file"):
            return data
        path = Path(data["broker_clients_file"])
        try:
            loaded = json.loads(path.read_text(encoding="utf-8"))
        except OSError as error:
            raise ValueError(
                f"broker_clients_file {path} cannot be read ({type(error).__name__})"
            ) from None
        except ValueError:
            raise ValueError(f"broker_clients_file {path} is not JSON") from None
        if not isinstance(loaded, list):
            raise ValueError(f"broker_clients_file {path} must hold a JSON list")
        return {**data, "broker_clients": [*data.get("broker_clients", ()), *loaded]}

    @model_validator(mode="after")
    def _check_accounts(self) -> StopSettings:
        accounts = [a for client in self.broker_clients for a in client.accounts]
        if len(accounts) != len(set(accounts)):
            raise ValueError("an account may be named by one broker client only")
        return self


_URL_EXAMPLES = {
    "database_url": (
        ("postgresql", "postgres"),
        "postgresql://gatekeeper@127.0.0.1:5432/gatekeeper",
    ),
    "redis_url": (("redis", "rediss", "unix"), "redis://127.0.0.1:6379/0"),
}


def validate_backend_url(value: SecretStr | None, name: str) -> SecretStr | None:
    """A Postgres or Redis URL that its client can read. The URL is never echoed: it may hold
    a password."""
    if value is None:
        return None
    schemes, example = _URL_EXAMPLES[name]
    text = value.get_secret_value().strip()
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018 - raises ValueError on a malformed port
    except ValueError:
        raise ValueError(f"cannot be parsed as a URL (expected e.g. {example})") from None
    if parts.scheme.lower() not in schemes:
        got = f"{parts.scheme}://" if parts.scheme else "no scheme"
        raise ValueError(
            f"must start with {' or '.join(f'{s}://' for s in schemes)} (got {got}); e.g. {example}"
        )
    return value


class Settings(BaseSettings):
    """All of Gatekeeper's configuration, frozen once loaded."""

    model_config = SettingsConfigDict(
        env_prefix="GATEKEEPER_",
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
        populate_by_name=True,
    )

    database_url: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("database_url", "GATEKEEPER_DATABASE_URL", "DATABASE_URL"),
    )
    redis_url: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("redis_url", "GATEKEEPER_REDIS_URL", "REDIS_URL"),
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["text", "json"] = "text"
    proxy: ProxySettings = ProxySettings()
    admin: AdminSettings = AdminSettings()
    paper: PaperSettings = PaperSettings()
    embedded: EmbeddedSettings = EmbeddedSettings()
    risk: RiskSettings = RiskSettings()
    stops: StopSettings = StopSettings()
    alerts: AlertSettings = AlertSettings()

    @field_validator("database_url", "redis_url")
    @classmethod
    def _check_backend_url(cls, value: SecretStr | None, info: ValidationInfo) -> SecretStr | None:
        return validate_backend_url(value, info.field_name or "")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        config_file = _CONFIG_FILE_IN_USE.get("path")
        if config_file is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=config_file))
        return tuple(sources)


# The TOML source is chosen per load; kept here so settings_customise_sources can see it.
_CONFIG_FILE_IN_USE: dict[str, Path | None] = {"path": None}


class SettingsError(Exception):
    """Configuration is invalid; the message lists every problem in words."""


def _describe(error: ValidationError, config_file: Path | None) -> str:
    lines = [f"invalid configuration ({error.error_count()} problem(s)):"]
    for item in error.errors(include_url=False, include_input=False):
        where = ".".join(str(part) for part in item["loc"]) or "(root)"
        message = item["msg"]
        if item["type"] == "extra_forbidden":
            message = "unknown setting"
        lines.append(f"  - {where}: {message}")
    if config_file is not None:
        lines.append(f"  (config file: {config_file})")
    lines.append(
        "  environment overrides use GATEKEEPER_<SECTION>__<KEY>, e.g. GATEKEEPER_PROXY__PORT"
    )
    return "\n".join(lines)


def _unknown_env_keys(environ: dict[str, str]) -> list[str]:
    """Top-level ``GATEKEEPER_*`` variables naming no setting (pydantic would ignore them)."""
    known = {name.upper() for name in Settings.model_fields} | {"CONFIG"}
    return sorted(
        key
        for key in environ
        if key.startswith("GATEKEEPER_")
        and key.removeprefix("GATEKEEPER_").partition("__")[0] not in known
    )


def load_settings(config_file: Path | None = None, **overrides: Any) -> Settings:
    """Load, validate and freeze the settings; raise SettingsError describing all problems."""
    env = os.environ
    if config_file is None and env.get("GATEKEEPER_CONFIG"):
        config_file = Path(env["GATEKEEPER_CONFIG"])
    if config_file is None and DEFAULT_CONFIG_FILE.is_file():
        config_file = DEFAULT_CONFIG_FILE
    if config_file is not None and not config_file.is_file():
        raise SettingsError(f"invalid configuration: config file {config_file} does not exist")
    problems = [f"  - {key}: unknown setting" for key in _unknown_env_keys(dict(env))]
    _CONFIG_FILE_IN_USE["path"] = config_file
    try:
        settings = Settings(**overrides)
    except ValidationError as error:
        raise SettingsError("\n".join([_describe(error, config_file), *problems])) from None
    except ValueError as error:  # TOML syntax errors
        raise SettingsError(f"invalid configuration: {config_file}: {error}") from None
    finally:
        _CONFIG_FILE_IN_USE["path"] = None
    if problems:
        raise SettingsError("\n".join(["invalid configuration:", *problems]))
    return settings
