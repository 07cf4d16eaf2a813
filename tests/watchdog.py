"""The event-loop watchdog: fails any test during which a callback blocked the loop."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import pytest

# A callback that holds the loop longer than this fails the test: it would stall every
# other bot's requests in production. One second: a blocking call (a sync HTTP client, a
# subprocess wait, time.sleep) shows up above it, while ordinary work on a 2-core VM shared
# with other tenants, late in a 12-minute session (a large heap to collect), was seen at
# 0.52-0.56 s (wall time: the time the VM did not run this thread counts too).
SLOW_CALLBACK_SECONDS = 1.0
# pytest-asyncio's tasks that set a fixture up or tear it down: test harness, not the product
# (starting a gatekeeper in process builds its app, templates and metrics at once); on a
# loaded machine their steps were seen at 0.52-0.54 s and could be longer. A product
# coroutine a fixture awaits runs in them too, but every test's own body exercises the
# product again, watched.
_FIXTURE_TASKS = ("_asyncgen_fixture_wrapper.<locals>.", "_async_fixture_wrapper.<locals>.")


class _SlowCallbackRecorder(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.WARNING)
        self.records: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        slow = message.startswith("Executing") and "took" in message
        if slow and not any(task in message for task in _FIXTURE_TASKS):
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
