"""Waiting in long-lived background loops without losing a cancellation.

On Python 3.11, ``asyncio.wait_for`` returns the inner result instead of raising when the
task is cancelled just after the awaited event was set (CPython gh-86296, fixed in 3.12):
a loop of ``wait_for(wake.wait(), interval)`` then never ends, and shutdown waits for it
forever. ``asyncio.timeout`` counts cancellations (``Task.uncancel``) and never swallows
one, so the loops here use it (ruff bans ``asyncio.wait_for`` in the package: TID251).
"""

from __future__ import annotations

import asyncio


async def wait_event(event: asyncio.Event, seconds: float) -> bool:
    """Wait until ``event`` is set or ``seconds`` pass; True when it was set."""
    try:
        async with asyncio.timeout(seconds):
            await event.wait()
    except TimeoutError:
        return False
    return True
