"""``gatekeeper check --send-test-alert``: one test message to every configured channel.

Sent directly, not through the outbox: the check must tell whether each channel takes a message
now, and must leave nothing behind to be delivered later (nor need the database). One result
per channel; a result names the channel (email, or the webhook's ``name``) and a failure by its
kind (``HTTP 404``, ``ClientConnectorError``, ``SMTPRecipientsRefused``): never a URL, a
password or a signing secret.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Awaitable
from dataclasses import dataclass
from datetime import UTC, datetime

import aiohttp

from gatekeeper.alerts import email, webhook
from gatekeeper.alerts.messages import Message
from gatekeeper.alerts.webhook import DeliveryFailed
from gatekeeper.settings import EmailAlertSettings, Settings, WebhookSettings

TEST_KIND = "test"


@dataclass(frozen=True)
class ChannelResult:
    """What one channel did with the test message."""

    channel: str  # "email" or "webhook <name>"
    ok: bool
    detail: str


def test_message(now: datetime) -> Message:
    """The test message. Its id is ``test-<random>``: never an outbox event's id, and a new one
    each time, so a receiver that drops duplicates by ``X-Gatekeeper-Alert-Id`` keeps it."""
    return Message(
        event_id=f"test-{secrets.token_hex(6)}",
        kind=TEST_KIND,
        account="-",
        title="Test alert from gatekeeper check",
        text="\n".join(
            (
                "Why: `gatekeeper check --send-test-alert` was run; nothing to do",
                "Account: none (a test message)",
                f"Time: {now.isoformat()}",
            )
        ),
        tags="white_check_mark",
        priority="3",
        details={},
    )


async def _attempt(channel: str, sent: str, send: Awaitable[None]) -> ChannelResult:
    try:
        await send
    except DeliveryFailed as failure:
        return ChannelResult(channel, False, f"test message NOT delivered ({failure.kind})")
    except Exception as error:  # a bug in one channel must not hide the others' results
        return ChannelResult(channel, False, f"test message NOT delivered ({type(error).__name__})")
    return ChannelResult(channel, True, f"test message delivered {sent}")


def _email_sent(settings: EmailAlertSettings) -> str:
    count = len(settings.recipients)
    return (
        f"to {count} recipient{'s' if count != 1 else ''} through"
        f" {settings.host}:{settings.port} ({settings.security})"
    )


def _webhook_sent(hook: WebhookSettings) -> str:
    return f"({hook.format}{', signed' if hook.secret is not None else ''})"


async def send_test_alert(
    settings: Settings, *, max_seconds: float | None = None
) -> list[ChannelResult]:
    """Send the test message to the email channel and every webhook at once, each within
    ``alerts.send_timeout_seconds`` (or ``max_seconds`` when shorter); ``[]`` when no channel is
    configured."""
    alerts = settings.alerts
    seconds = (
        alerts.send_timeout_seconds
        if max_seconds is None
        else min(max_seconds, alerts.send_timeout_seconds)
    )
    message = test_message(datetime.now(UTC))
    async with aiohttp.ClientSession(
        trust_env=False, cookie_jar=aiohttp.DummyCookieJar()
    ) as session:
        sends = [
            _attempt(f"webhook {hook.name}", _webhook_sent(hook),
                     webhook.send(session, hook, message, seconds))
            for hook in alerts.webhooks
        ]  # fmt: skip
        if alerts.email is not None:
            mail = email.send(alerts.email, message, seconds)
            sends.insert(0, _attempt("email", _email_sent(alerts.email), mail))
        return list(await asyncio.gather(*sends))
