"""Alert bodies per webhook format, the signature, and settings that keep secrets out of
errors (gatekeeper.alerts, gatekeeper.settings)."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from pydantic import SecretStr, ValidationError

from gatekeeper.alerts.messages import render
from gatekeeper.alerts.outbox import Event
from gatekeeper.alerts.webhook import request_for, signature
from gatekeeper.settings import AlertSettings, SettingsError, WebhookSettings, load_settings

SECRET = "0123456789abcdef-secret"
URL = "https://hooks.example.com/services/T000/B000/token-in-url"


def _stop() -> Event:
    return Event(
        id=7,
        kind="stop_triggered",
        account="5WT00001",
        protection_id=3,
        payload={"mode": "reduce_only", "actor": "system", "via": "system", "reason": "loss"},
        created_at=datetime(2026, 3, 2, 15, 0, tzinfo=UTC),
        last_figures={"nlv": "94465.0000", "day_pnl_pct": "-5.535", "order_value": None},
        cancel_on_stop=True,
    )


def _hook(fmt: str, secret: str | None = None) -> WebhookSettings:
    return WebhookSettings(
        name="ops",
        url=SecretStr(URL),
        format=fmt,
        secret=None if secret is None else SecretStr(secret),
    )


def test_a_stop_message_names_who_why_figures_and_working_orders() -> None:
    message = render(_stop())
    assert message.title == "Emergency stop triggered on 5WT00001"
    assert "Who: system (via system)" in message.text
    assert "Why: loss" in message.text
    assert "Figures: nlv=94465.00 day_pnl_pct=-5.54" in message.text
    assert "Working orders: not cancelled yet" in message.text


@pytest.mark.parametrize(
    ("fmt", "key"), [("slack", "text"), ("discord", "content"), ("json", "text")]
)
def test_json_formats(fmt: str, key: str) -> None:
    body, headers = request_for(_hook(fmt), render(_stop()))
    data = json.loads(body)
    assert "Who: system (via system)" in data[key]
    if fmt != "json":
        assert data[key].startswith("Emergency stop triggered on 5WT00001\n")
    assert headers["Content-Type"] == "application/json"
    assert headers["X-Gatekeeper-Alert-Id"] == "7"


def test_ntfy_is_plain_text_with_title_and_tags() -> None:
    body, headers = request_for(_hook("ntfy"), render(_stop()))
    assert body.decode().startswith("Account: 5WT00001 (protection 3)")
    assert headers["Title"] == "Emergency stop triggered on 5WT00001"
    assert headers["Tags"] == "rotating_light"
    assert headers["Priority"] == "5"


def test_the_signature_is_an_hmac_of_the_exact_body() -> None:
    body, headers = request_for(_hook("slack", SECRET), render(_stop()))
    expected = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    assert headers["X-Gatekeeper-Signature"] == f"sha256={expected}"
    assert signature(SECRET, body + b" ") != headers["X-Gatekeeper-Signature"]
    unsigned = request_for(_hook("slack"), render(_stop()))[1]
    assert "X-Gatekeeper-Signature" not in unsigned


def test_settings_errors_never_echo_a_url_or_secret(tmp_path: Path) -> None:
    config = tmp_path / "gatekeeper.toml"
    config.write_text(
        '[[alerts.webhooks]]\nname = "x"\nurl = "ftp://user:pw@host/secret-path"\n'
        'secret = "short-pw"\n'
    )
    with pytest.raises(SettingsError) as caught:
        load_settings(config)
    text = str(caught.value)
    assert "alerts.webhooks.0.url" in text
    assert "alerts.webhooks.0.secret" in text
    assert "secret-path" not in text
    assert "short-pw" not in text
    assert SECRET not in repr(_hook("slack", SECRET))
    assert URL not in repr(_hook("slack"))


def test_webhook_names_are_unique() -> None:
    with pytest.raises(ValidationError, match="unique"):
        AlertSettings(webhooks=(_hook("slack"), _hook("ntfy")))
