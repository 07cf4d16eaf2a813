"""Email delivery with aiosmtplib (asyncio SMTP: STARTTLS, implicit TLS, AUTH, timeouts)."""

from __future__ import annotations

from email.message import EmailMessage
from email.utils import make_msgid

import aiosmtplib

from gatekeeper.alerts.messages import Message
from gatekeeper.alerts.webhook import ALERT_ID_HEADER, DeliveryFailed
from gatekeeper.settings import EmailAlertSettings


def email_for(settings: EmailAlertSettings, message: Message) -> EmailMessage:
    mail = EmailMessage()
    mail["From"] = settings.sender
    mail["To"] = ", ".join(settings.recipients)
    mail["Subject"] = f"[gatekeeper] {message.title}"
    mail["Message-ID"] = make_msgid(f"alert-{message.event_id}", settings.sender.rpartition("@")[2])
    mail[ALERT_ID_HEADER] = str(message.event_id)
    mail.set_content(message.text)
    return mail


async def send(settings: EmailAlertSettings, message: Message, seconds: float) -> None:
    """Send ``message`` to the configured recipients; raises DeliveryFailed."""
    password = settings.password.get_secret_value() if settings.password else None
    try:
        await aiosmtplib.send(
            email_for(settings, message),
            sender=settings.sender,
            recipients=list(settings.recipients),
            hostname=settings.host,
            port=settings.port,
            username=settings.username,
            password=password,
            use_tls=settings.security == "tls",
            start_tls=settings.security == "starttls",
            timeout=min(seconds, settings.timeout_seconds),
        )
    except (aiosmtplib.SMTPException, TimeoutError, OSError) as error:
        # The type only: an SMTP error's text may quote the server's answer to our login.
        raise DeliveryFailed(type(error).__name__) from None
