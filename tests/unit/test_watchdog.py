"""The watchdog fails a test that blocks the event loop, and only such a test (a fixture's
setup or teardown is test harness: not reported)."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parents[2]

INNER_TESTS = """
import asyncio
import time

import pytest


async def test_blocks_the_loop():
    time.sleep(2.3)


async def test_awaits_politely():
    await asyncio.sleep(2.3)


@pytest.fixture
async def slow_to_set_up():
    time.sleep(2.3)  # test harness (a fixture's setup), not the product: not reported
    yield


async def test_with_a_slow_fixture(slow_to_set_up):
    await asyncio.sleep(0)
"""


def _run_inner(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, source: str
) -> pytest.RunResult:
    """``source`` as a test module, run by pytest in a subprocess with the watchdog."""
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    pytester.makeconftest('pytest_plugins = ["tests.watchdog"]\n')
    pytester.makeini("[pytest]\nasyncio_mode = auto\ntimeout = 60\n")
    pytester.makepyfile(test_inner=source)
    return pytester.runpytest_subprocess("-p", "no:cacheprovider", "-p", "no:randomly")


def test_a_blocking_call_fails_the_test(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = _run_inner(pytester, monkeypatch, INNER_TESTS)
    result.assert_outcomes(passed=3, errors=1)
    result.stdout.fnmatch_lines(["*the event loop was blocked*", "*test_blocks_the_loop*"])


HANGING_TEST = """
import asyncio

import pytest


async def never_answered(event):
    await event.wait()


@pytest.mark.timeout(6)
async def test_hangs():
    await asyncio.create_task(never_answered(asyncio.Event()), name="the-stuck-one")
"""


def test_a_hanging_test_shows_what_its_tasks_wait_on(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = _run_inner(pytester, monkeypatch, HANGING_TEST)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        ["*asyncio tasks near the timeout of test_inner.py::test_hangs*",
         "*the-stuck-one*", "*in never_answered*"]
    )  # fmt: skip


UNRETRIEVED_TEST = """
import asyncio
import gc


async def fails_quietly():
    raise RuntimeError("nobody looked")


async def test_drops_a_failed_task():
    task = asyncio.get_running_loop().create_task(fails_quietly())
    await asyncio.sleep(0.01)
    del task
    gc.collect()  # asyncio reports the exception as the task goes


async def test_awaits_its_task():
    task = asyncio.get_running_loop().create_task(fails_quietly())
    try:
        await task
    except RuntimeError:
        pass
"""


def test_a_task_exception_never_retrieved_fails_the_test(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = _run_inner(pytester, monkeypatch, UNRETRIEVED_TEST)
    result.assert_outcomes(passed=2, errors=1)
    result.stdout.fnmatch_lines(
        ["*a task's exception was never retrieved*", "*RuntimeError('nobody looked')*"]
    )
