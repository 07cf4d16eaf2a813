"""The operators' commands, run as subprocesses against the test's database: bootstrapping a
user and token (the seed's Step 5 token), and the seed's Step 7 without a Rails console."""

from __future__ import annotations

import re

from tests.fixtures.admin import AdminApi, run_cli

BASE = "/api/v1/portfolio_protections"
STEP_7 = (
    "--cash-reserve", "25.0", "--daily-loss", "5.0", "--single-trade", "10.0",
    "--exposure", "75.0", "--concentration", "20.0", "--daily-trades", "50",
    "--email-alerts", "--active",
)  # fmt: skip


async def test_users_and_tokens_bootstrap_the_admin_api(admin_api: AdminApi) -> None:
    url = admin_api.database_url
    created = await run_cli(url, "users", "create", "Trader@Example.com", "--name", "Trader")
    assert created.returncode == 0, created.stderr
    assert "trader@example.com" in created.stdout
    duplicate = await run_cli(url, "users", "create", "trader@example.com")
    assert duplicate.returncode == 1
    assert "exists already" in duplicate.stderr

    issued = await run_cli(
        url, "tokens", "create", "--user", "trader@example.com", "--ttl", "24h", "--role", "admin"
    )
    assert issued.returncode == 0, issued.stderr
    match = re.search(r"^token: (gk_[0-9a-f]{64})$", issued.stdout, re.M)
    assert match is not None
    token = match[1]
    assert "role: admin" in issued.stdout

    assert (await admin_api.call("GET", BASE, token)).status == 200
    listing = await run_cli(url, "tokens", "list")
    assert token not in listing.stdout
    assert re.search(r"^\s+1\s+trader@example.com\s+admin\s+active\s", listing.stdout, re.M)

    revoked = await run_cli(url, "tokens", "revoke", "1")
    assert revoked.returncode == 0
    reply = await admin_api.call("GET", BASE, token)
    assert reply.error["code"] == "token_revoked"
    assert (
        "revoked" in (await run_cli(url, "tokens", "list", "--user", "trader@example.com")).stdout
    )

    bad_ttl = await run_cli(
        url,
        "tokens",
        "create",
        "--user",
        "trader@example.com",
        "--ttl",
        "forever",
        "--role",
        "viewer",
    )
    assert bad_ttl.returncode == 1
    assert "invalid TTL" in bad_ttl.stderr
    no_role = await run_cli(url, "tokens", "create", "--user", "trader@example.com")
    assert no_role.returncode == 2  # argparse: --role is required


async def test_step_7_protections_set_and_show(admin_api: AdminApi) -> None:
    url = admin_api.database_url
    await run_cli(url, "users", "create", "your_email@example.com")
    result = await run_cli(url, "protections", "set", "5WZ12345", *STEP_7)
    assert result.returncode == 0, result.stderr
    for line in ("Created protection for account 5WZ12345", "  Cash Reserve: 25.00%",
                 "  Daily Loss Limit: 5.00%", "  Single Trade Limit: 10.00%",
                 "  Max Exposure: 75.00%", "  Max Concentration: 20.00%",
                 "  Max Daily Trades: 50", "  Email Alerts: on", "  Active: yes"):  # fmt: skip
        assert line in result.stdout.splitlines(), line

    again = await run_cli(url, "protections", "set", "5WZ12345", "--cash-reserve", "30")
    assert again.returncode == 0
    assert "Updated protection" in again.stdout
    assert "  Cash Reserve: 30.00%" in again.stdout

    refused = await run_cli(url, "protections", "set", "5WZ12345", "--cash-reserve", "10.0")
    assert refused.returncode == 1
    assert (
        "cash_reserve_percentage must be between 20 and 50 (cash_reserve_range_check); got 10.0"
        in refused.stderr
    )

    shown = await run_cli(url, "protections", "show", "5WZ12345")
    assert "  Cash Reserve: 30.00%" in shown.stdout
    assert "owner your_email@example.com" in shown.stdout
    assert (await run_cli(url, "protections", "show", "NOPE1")).returncode == 1

    rows = await admin_api.fetch(
        "SELECT action, via, changed_by FROM protection_changes ORDER BY id"
    )
    assert [tuple(row.values()) for row in rows] == [
        ("created", "cli", "cli"),
        ("updated", "cli", "cli"),
    ]


async def test_protections_set_needs_an_owner_when_several_users_exist(
    admin_api: AdminApi,
) -> None:
    url = admin_api.database_url
    await run_cli(url, "users", "create", "a@example.com")
    await run_cli(url, "users", "create", "b@example.com")
    ambiguous = await run_cli(url, "protections", "set", "TEST123")
    assert ambiguous.returncode == 1
    assert "--user" in ambiguous.stderr
    chosen = await run_cli(url, "protections", "set", "TEST123", "--user", "b@example.com")
    assert chosen.returncode == 0, chosen.stderr
    assert "owner b@example.com" in chosen.stdout


async def test_emergency_stop_and_clear_from_the_cli(admin_api: AdminApi) -> None:
    url = admin_api.database_url
    await run_cli(url, "users", "create", "ops@example.com")
    await run_cli(url, "protections", "set", "TEST123")
    stopped = await run_cli(
        url, "protections", "stop", "TEST123", "--reason", "Safety check", "--by", "ops"
    )
    assert stopped.returncode == 0, stopped.stderr
    assert "Emergency Stop: ACTIVE" in stopped.stdout
    unconfirmed = await run_cli(url, "protections", "clear", "TEST123", "--by", "ops")
    assert unconfirmed.returncode == 2
    cleared = await run_cli(url, "protections", "clear", "TEST123", "--by", "ops", "--confirm")
    assert cleared.returncode == 0
    assert "Emergency Stop: inactive" in cleared.stdout
    rows = await admin_api.fetch("SELECT event, actor, via FROM emergency_events ORDER BY id")
    assert [tuple(row.values()) for row in rows] == [
        ("triggered", "ops", "cli"),
        ("cleared", "ops", "cli"),
    ]
