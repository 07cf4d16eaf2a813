"""The event-loop watchdog: fails any test during which a callback blocked the loop, or a
task's exception went unretrieved."""

from __future__ import annotations

import asyncio
import io
import logging
import sys
from collections.abc import AsyncIterator

import pytest

# A callback that holds the loop longer than this fails the test: it would stall every
# other bot's requests in production. Two seconds: a blocking call (a sync HTTP client, a
# subprocess wait, time.sleep) shows up above it, while ordinary work on a 2-core VM shared
# with other tenants, late in a 12-minute session (a large heap to collect), was seen at
# 0.52-0.56 s on an ordinary day and 1.1-1.2 s on a loaded one (wall time: the time the VM
# did not run this thread counts too); the VM has had days three times slower than usual.
SLOW_CALLBACK_SECONDS = 2.0
# pytest-asyncio's tasks that set a fixture up or tear it down: test harness, not the product
# (starting a gatekeeper in process builds its app, templates and metrics at once); on a
# loaded machine their steps were seen at 0.52-0.54 s and could be longer. A product
# coroutine a fixture awaits runs in them too, but every test's own body exercises the
# product again, watched.
_FIXTURE_TASKS = ("_asyncgen_fixture_wrapper.<locals>.", "_async_fixture_wrapper.<locals>.")
# Seconds before pytest-timeout's deadline at which every task's stack is written out: a test
# that hangs with its loop idle (waiting on a task that never finishes) shows what it waits on.
DUMP_BEFORE_TIMEOUT_SECONDS = 5.0


class _SlowCallbackRecorder(logging.Handler):
    """asyncio's reports of a slow callback, and of a task or future whose exception nobody
    retrieved (a background task that failed unseen: the soak found one)."""

    def __init__(self) -> None:
        super().__init__(level=logging.WARNING)
        self.records: list[str] = []
        self.unretrieved: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if "exception was never retrieved" in message:
            error = record.exc_info[1] if record.exc_info else None
            self.unretrieved.append(f"{message.splitlines()[0][:300]}: {error!r}")
            return
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
    dump = _dump_tasks_before_timeout(request, loop)
    try:
        yield
    finally:
        asyncio_logger.removeHandler(recorder)
        if dump is not None:
            dump.cancel()
    if recorder.records and request.node.get_closest_marker("stalls_event_loop") is None:
        pytest.fail("the event loop was blocked:\n" + "\n".join(recorder.records))
    if recorder.unretrieved:
        pytest.fail("a task's exception was never retrieved:\n" + "\n".join(recorder.unretrieved))


def _timeout_seconds(request: pytest.FixtureRequest) -> float:
    marker = request.node.get_closest_marker("timeout")
    if marker is not None and marker.args:
        return float(marker.args[0])
    return float(request.config.getini("timeout") or 0)


def _dump_tasks_before_timeout(
    request: pytest.FixtureRequest, loop: asyncio.AbstractEventLoop
) -> asyncio.TimerHandle | None:
    """Schedule a dump of every task's stack shortly before the test's timeout."""
    timeout = _timeout_seconds(request)
    if timeout <= DUMP_BEFORE_TIMEOUT_SECONDS:
        return None
    return loop.call_later(
        timeout - DUMP_BEFORE_TIMEOUT_SECONDS, write_task_stacks, request.node.nodeid
    )


def write_task_stacks(title: str) -> str:
    """Every pending task's stack, on stderr: pytest shows it with the failing test's output."""
    out = io.StringIO()
    tasks = asyncio.all_tasks()
    out.write(f"\n=== {len(tasks)} asyncio tasks near the timeout of {title} ===\n")
    for task in tasks:
        task.print_stack(limit=20, file=out)
    text = out.getvalue()
    sys.stderr.write(text)
    sys.stderr.flush()
    return text
