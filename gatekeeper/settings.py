"""Settings: the only module that reads configuration files and the environment.

Sources, highest priority first: keyword arguments (CLI flags), ``GATEKEEPER_*`` environment
variables (nested with ``__``, e.g. ``GATEKEEPER_PROXY__PORT``; ``DATABASE_URL`` and
``REDIS_URL`` are accepted too), a TOML file (``GATEKEEPER_CONFIG`` or ``config/gatekeeper.toml``),
then defaults. Unknown keys anywhere are an error, and every error is reported at once.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    AliasChoices,
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
from gatekeeper.settings_risk import RiskSettings
from gatekeeper.settings_sections import (
    AlertSettings,
    BrokerClientSettings,
    EmailAlertSettings,
    Port,
    PositiveSeconds,
    Section,
    StopSettings,
    WebhookSettings,
)

__all__ = [
    "PRODUCTION_URL",
    "SANDBOX_URL",
    "AdminSettings",
    "AlertSettings",
    "BrokerClientSettings",
    "EmailAlertSettings",
    "EmbeddedSettings",
    "PaperSettings",
    "ProxySettings",
    "RiskSettings",
    "Settings",
    "SettingsError",
    "StopSettings",
    "WebhookSettings",
    "load_settings",
    "validate_backend_url",
    "validate_upstream_url",
]

DEFAULT_CONFIG_FILE = Path("config/gatekeeper.toml")
SANDBOX_URL = "https://api.cert.tastyworks.com"
PRODUCTION_URL = "https://api.tastyworks.com"


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


class ProxySettings(Section):
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


class AdminSettings(Section):
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


class PaperSettings(Section):
    """The paper broker (``gatekeeper paper`` and the demo's upstream)."""

    host: str = "127.0.0.1"
    port: Port = 8090
    accounts_file: Path = Path("config/paper-accounts.json")
    # Needed by its /__paper/ control routes (X-Paper-Control-Token). Unset: a random one is
    # generated at start and printed by `gatekeeper paper` and `gatekeeper demo`.
    control_token: Annotated[SecretStr, Field(min_length=16)] | None = None


class EmbeddedSettings(Section):
    """Where the demo keeps the Postgres and Redis it starts from wheels."""

    data_dir: Path = Path("var/demo")


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
