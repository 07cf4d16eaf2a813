"""Webhook delivery: the body in the webhook's format, optionally signed.

Formats: ``slack`` ``{"text": …}``, ``discord`` ``{"content": …}`` (at most 2,000
characters), ``ntfy`` the text as a plain body with ``Title``, ``Tags`` and ``Priority``
headers, ``json`` Gatekeeper's own object. With a ``secret``, the signature header carries
``sha256=<hex HMAC-SHA256 of the exact body bytes>``. ``X-Gatekeeper-Alert-Id`` is the
event's id, the same on every retry, so a receiver can drop a duplicate.
"""

from __future__ import annotations

import hashlib
import hmac
import json

import aiohttp

from gatekeeper.alerts.messages import Message
from gatekeeper.settings import WebhookSettings

ALERT_ID_HEADER = "X-Gatekeeper-Alert-Id"
_DISCORD_LIMIT = 2000


class DeliveryFailed(Exception):
    """A channel did not take the message; ``kind`` is safe to log (no URL, no secret)."""

    def __init__(self, kind: str) -> None:
        super().__init__(kind)
        self.kind = kind


def signature(secret: str, body: bytes) -> str:
    """The signature header's value for ``body``."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def request_for(hook: WebhookSettings, message: Message) -> tuple[bytes, dict[str, str]]:
    """The body and headers ``hook`` gets for ``message``."""
    headers = {ALERT_ID_HEADER: str(message.event_id)}
    if hook.format == "ntfy":
        body = message.text.encode()
        headers |= {
            "Content-Type": "text/plain; charset=utf-8",
            "Title": message.title,
            "Tags": message.tags,
            "Priority": message.priority,
        }
    else:
        full = f"{message.title}\n{message.text}"
        data: dict[str, object]
        if hook.format == "slack":
            data = {"text": full}
        elif hook.format == "discord":
            data = {"content": full[: _DISCORD_LIMIT - 1] + "…" if len(full) > _DISCORD_LIMIT
                    else full}  # fmt: skip
        else:
            data = {
                "id": message.event_id,
                "kind": message.kind,
                "account": message.account,
                "title": message.title,
                "text": message.text,
                "details": message.details,
            }
        body = json.dumps(data, default=str).encode()
        headers["Content-Type"] = "application/json"
    if hook.secret is not None:
        headers[hook.signature_header] = signature(hook.secret.get_secret_value(), body)
    return body, headers


async def send(
    session: aiohttp.ClientSession, hook: WebhookSettings, message: Message, seconds: float
) -> None:
    """POST ``message`` to ``hook``; a 2xx answer delivers it, anything else raises
    DeliveryFailed (redirects are not followed)."""
    body, headers = request_for(hook, message)
    try:
        async with session.post(
            hook.url.get_secret_value(),
            data=body,
            headers=headers,
            allow_redirects=False,
            timeout=aiohttp.ClientTimeout(total=seconds),
        ) as response:
            await response.read()
            if not 200 <= response.status < 300:
                raise DeliveryFailed(f"HTTP {response.status}")
    except (aiohttp.ClientError, TimeoutError, OSError) as error:
        # The type only: a client error's text names the URL, which may hold a token.
        raise DeliveryFailed(type(error).__name__) from None
