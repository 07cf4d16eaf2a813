"""The event-loop watchdog: fails any test during which a callback blocked the loop."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import pytest

# A callback that holds the loop longer than this fails the test: it would stall every
# other bot's requests in production. Half a second: a blocking call (a sync HTTP client, a
# subprocess wait, time.sleep) shows up well above it, while ordinary work on a 2-core
# machine busy with other processes was seen peaking near 0.3 s.
SLOW_CALLBACK_SECONDS = 0.5


class _SlowCallbackRecorder(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.WARNING)
        self.records: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if message.startswith("Executing") and "took" in message:
            self.records.append(message)


@pytest.fixture(autouse=True)
async def _no_blocking_calls(request: pytest.FixtureRequest) -> AsyncIterator[None]:
    """Fail any test during which a callback blocked the event loop (unless it is marked
    ``stalls_event_loop``: the stall is what it tests)."""
    loop = asyncio.get_running_loop()
    loop.set_debug(True)
    loop.slow_callback_duration = SLOW_CALLBACK_SECONDS
    recorder = _SlowCallbackRecorder()
    asyncio_logger = logging.getLogger("asyncio")
    asyncio_logger.addHandler(recorder)
    try:
        yield
    finally:
        asyncio_logger.removeHandler(recorder)
    if recorder.records and request.node.get_closest_marker("stalls_event_loop") is None:
        pytest.fail("the event loop was blocked:\n" + "\n".join(recorder.records))
