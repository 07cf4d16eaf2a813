"""Alerts by email and webhook, delivered off the order path through a durable outbox.

- ``outbox``: the SQL. Events are enqueued by one INSERT in the transaction of what caused them
  (a stop or its clearing, a decision); deliveries are claimed by every replica's worker with
  FOR UPDATE SKIP LOCKED, retried with back-off, and survive a restart.
- ``triggers``: which decisions raise an alert (daily loss, utilisation, rejection bursts),
  and the risk-path failures kept in memory until the outbox can take them.
- ``messages``: an event as a title and a text (pure).
- ``email``, ``webhook``: the channels. ``worker``: the delivery loop.
- ``check``: :func:`send_test_alert`, a test message to every channel, sent directly
  (``gatekeeper check --send-test-alert``).
"""

from gatekeeper.alerts.check import ChannelResult, send_test_alert

__all__ = ["ChannelResult", "send_test_alert"]
