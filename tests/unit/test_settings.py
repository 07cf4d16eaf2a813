"""Settings: TOML file plus GATEKEEPER_* overrides, strict, every problem reported at once."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from pydantic import BaseModel

from gatekeeper.settings import (
    PRODUCTION_URL,
    SANDBOX_URL,
    Settings,
    SettingsError,
    load_settings,
)


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import os

    for key in list(os.environ):
        if key.startswith("GATEKEEPER_") or key in ("DATABASE_URL", "REDIS_URL"):
            monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)  # no config/gatekeeper.toml here


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "gatekeeper.toml"
    path.write_text(text)
    return path


def test_defaults_point_at_the_sandbox() -> None:
    settings = load_settings()
    assert settings.proxy.upstream_url == SANDBOX_URL
    assert (settings.proxy.port, settings.admin.port) == (8080, 8081)
    assert settings.database_url is None


def test_environment_overrides_the_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    config = write(tmp_path, '[proxy]\nport = 9000\nupstream_url = "https://api.tastyworks.com"\n')
    monkeypatch.setenv("GATEKEEPER_PROXY__PORT", "9100")
    monkeypatch.setenv("DATABASE_URL", "postgresql://u:pw@db/gk")
    settings = load_settings(config)
    assert settings.proxy.port == 9100
    assert settings.proxy.upstream_url == PRODUCTION_URL
    assert settings.database_url is not None
    assert settings.database_url.get_secret_value() == "postgresql://u:pw@db/gk"
    assert "pw" not in repr(settings)


def test_config_file_from_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("GATEKEEPER_CONFIG", str(write(tmp_path, "[admin]\nport = 9999\n")))
    assert load_settings().admin.port == 9999


def test_every_problem_is_reported_at_once(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    config = write(
        tmp_path,
        '[proxy]\nport = "eighty"\nupstream_url = "ftp://x"\nuptream = 1\n[nonsense]\na = 1\n',
    )
    monkeypatch.setenv("GATEKEEPER_BOGUS", "1")
    with pytest.raises(SettingsError) as caught:
        load_settings(config)
    message = str(caught.value)
    assert "proxy.port" in message
    assert "proxy.upstream_url: Value error, must start with http:// or https://" in message
    assert "proxy.uptream: unknown setting" in message
    assert "nonsense: unknown setting" in message
    assert "GATEKEEPER_BOGUS: unknown setting" in message


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("https://user:pw@api.tastyworks.com", "credentials"),
        ("https://api.tastyworks.com/v1", "origin only"),
        ("https://api.tastyworks.com?x=1", "origin only"),
        ("https://", "must name a host"),
    ],
)
def test_upstream_must_be_a_plain_origin(
    monkeypatch: pytest.MonkeyPatch, url: str, problem: str
) -> None:
    monkeypatch.setenv("GATEKEEPER_PROXY__UPSTREAM_URL", url)
    with pytest.raises(SettingsError, match=problem) as caught:
        load_settings()
    assert "pw" not in str(caught.value)


def test_missing_config_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="does not exist"):
        load_settings(tmp_path / "missing.toml")


def test_toml_syntax_error_is_reported(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match=r"gatekeeper\.toml"):
        load_settings(write(tmp_path, "[proxy\nport = 1\n"))


SHIPPED_CONFIG = Path(__file__).resolve().parents[2] / "config" / "gatekeeper.toml"


def test_the_shipped_config_loads_and_has_a_section_for_every_settings_section() -> None:
    settings = load_settings(SHIPPED_CONFIG)
    tables = {
        k for k, v in tomllib.loads(SHIPPED_CONFIG.read_text()).items() if isinstance(v, dict)
    }
    sections = {
        name
        for name, field in Settings.model_fields.items()
        if isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel)
    }
    assert sections == {"proxy", "admin", "paper", "embedded", "risk", "stops", "alerts"}
    assert tables == sections
    text = SHIPPED_CONFIG.read_text()
    # The secrets' places are shown, commented, never as values.
    for example in (
        "# broker_clients_file = ",
        "GATEKEEPER_STOPS__BROKER_CLIENTS=",
        "# [alerts.email]",
        "# [[alerts.webhooks]]",
        "GATEKEEPER_ALERTS__EMAIL__PASSWORD",
    ):
        assert example in text
    assert settings.stops.broker_clients == ()
    assert settings.alerts.email is None
