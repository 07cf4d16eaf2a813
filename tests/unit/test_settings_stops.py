"""[stops] broker_clients: the gatekeeper's own broker credentials, from the environment or a
secrets file, kept secret."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gatekeeper.settings import SettingsError, load_settings

CLIENT = {"accounts": ["5WT00001"], "client_secret": "s3cret-value", "refresh_token": "r3fresh"}


def test_broker_clients_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)  # no config/gatekeeper.toml here
    monkeypatch.setenv("GATEKEEPER_STOPS__BROKER_CLIENTS", json.dumps([CLIENT]))
    settings = load_settings(None)
    (client,) = settings.stops.broker_clients
    assert client.accounts == ("5WT00001",)
    assert client.refresh_token.get_secret_value() == "r3fresh"
    assert "r3fresh" not in repr(settings)
    assert "s3cret-value" not in repr(settings)


def test_broker_clients_from_a_secrets_file(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    secrets = tmp_path / "clients.json"
    secrets.write_text(json.dumps([CLIENT]))
    monkeypatch.setenv("GATEKEEPER_STOPS__BROKER_CLIENTS_FILE", str(secrets))
    (client,) = load_settings(None).stops.broker_clients
    assert client.client_secret.get_secret_value() == "s3cret-value"


def test_an_unreadable_secrets_file_is_a_configuration_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("GATEKEEPER_STOPS__BROKER_CLIENTS_FILE", str(tmp_path / "missing.json"))
    with pytest.raises(SettingsError, match="cannot be read"):
        load_settings(None)
