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
    time.sleep(1.3)


async def test_awaits_politely():
    await asyncio.sleep(1.3)


@pytest.fixture
async def slow_to_set_up():
    time.sleep(1.3)  # test harness (a fixture's setup), not the product: not reported
    yield


async def test_with_a_slow_fixture(slow_to_set_up):
    await asyncio.sleep(0)
"""


def test_a_blocking_call_fails_the_test(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    pytester.makeconftest('pytest_plugins = ["tests.watchdog"]\n')
    pytester.makeini("[pytest]\nasyncio_mode = auto\n")
    pytester.makepyfile(test_inner=INNER_TESTS)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-p", "no:randomly")
    result.assert_outcomes(passed=3, errors=1)
    result.stdout.fnmatch_lines(["*the event loop was blocked*", "*test_blocks_the_loop*"])
