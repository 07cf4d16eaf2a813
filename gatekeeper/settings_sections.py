"""The settings' shared parts (every section's base, ports, durations, percentages) and the
sections that stand apart from the request path: alerts (email, webhooks) and what an
emergency stop does besides refusing orders (the gatekeeper's own broker clients). Loaded
only through :mod:`gatekeeper.settings`, which assembles every section."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

Port = Annotated[int, Field(ge=0, le=65535)]
PositiveSeconds = Annotated[float, Field(gt=0, le=600)]


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


Percent = Annotated[Decimal, Field(gt=0, le=100)]


def random_secret(value: SecretStr | None) -> SecretStr | None:
    """A key or signing secret: at least 16 characters (a random string), or none."""
    if value is not None and len(value.get_secret_value()) < 16:
        raise ValueError("must be at least 16 characters (a random string)")
    return value


_WEBHOOK_NAME = r"^[a-z0-9][a-z0-9_-]{0,39}$"


class EmailAlertSettings(Section):
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


class WebhookSettings(Section):
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
        return random_secret(value)


class AlertSettings(Section):
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


class BrokerClientSettings(Section):
    """The gatekeeper's own TastyTrade OAuth client for some accounts: what a manual or global
    stop cancels their working orders with (``POST /oauth/token``, refresh_token grant)."""

    accounts: Annotated[tuple[AccountNumber, ...], Field(min_length=1)]
    client_secret: SecretStr
    refresh_token: SecretStr
    client_id: str | None = None


class StopSettings(Section):
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
