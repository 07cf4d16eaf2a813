"""BENCH_STAGES=1: where an order's CPU goes, stage by stage, in the gatekeeper as it runs.

Run by the comparison instead of ``gatekeeper serve``:
``python -m tests.bench.stage_times --out FILE serve``. It wraps the order path's stages
(:data:`STAGES`, each where its callers look it up) with a counter of calls and of the
thread's CPU time while the stage ran, then runs ``gatekeeper serve`` as deployed. On SIGUSR1
it writes the counters to FILE (JSON, with a sequence number); the comparison asks before and
after each round of the gatekeeper and prints the difference per request (:func:`report`).

Why not a profiler: cProfile and py-spy inflate many small calls far more than a few large
ones, so their shares mislead; the counters here cost about a microsecond per stage call.
Read the figures with their limits:

- A stage that awaits counts what the event loop ran while it waited (other requests'
  work at 16 connections; a previous order's background writes at 1): compare 1-connection
  rounds, and nested stages with each other, not with the process's total.
- Code runs slower here than in a loop that repeats it (caches are cold after every
  round trip): ``evaluate()`` takes 2-4 times its micro-benchmark's figure.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import importlib
import inspect
import json
import os
import signal
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

# (label, module whose namespace the callers look it up in, attribute path), in the order
# path's order; a label's leading spaces nest it under the stage above.
STAGES: tuple[tuple[str, str, str], ...] = (
    ("order request", "gatekeeper.orderpath.handler", "OrderPath._handle"),
    ("  read body", "gatekeeper.orderpath.handler", "read_body"),
    ("  parse order", "gatekeeper.orderpath.handler", "parse_request"),
    ("  identify (fingerprint, identifiers)", "gatekeeper.orderpath.handler", "identify"),
    ("  decide", "gatekeeper.orderpath.engine", "Engine.decide"),
    ("    gather (account state, quotes, instruments)", "gatekeeper.orderpath.engine", "gather"),
    ("      account state (Redis)", "gatekeeper.adapters.account_state", "StateSource.account"),
    ("    locked read (Postgres)", "gatekeeper.adapters.held_decision", "read"),
    ("    evaluate and build the row", "gatekeeper.orderpath.engine", "Engine._evaluate"),
    ("      snapshot from payloads", "gatekeeper.orderpath.gather", "Gathered.snapshot"),
    ("      evaluate()", "gatekeeper.orderpath.engine", "evaluate"),
    ("      decision row", "gatekeeper.orderpath.engine", "decision_row"),
    ("    record decision (Postgres)", "gatekeeper.adapters.held_decision", "record"),
    ("    after decision (alerts)", "gatekeeper.orderpath.engine", "Engine._after"),
    ("  forwarded body", "gatekeeper.orderpath.handler", "forwarded_body"),
    ("  forward (the broker's answer relayed)", "gatekeeper.orderpath.handler",
     "OrderPath._forward"),
    ("    broker round trip", "gatekeeper.adapters.broker", "BrokerClient.send_buffered"),
    ("log line, counters and gauges (next loop turn)", "gatekeeper.orderpath.handler",
     "report_decision"),
    ("outcome row (Postgres, after the answer)", "gatekeeper.orderpath.handler",
     "record_outcome"),
    ("answered order into the state (background)", "gatekeeper.adapters.account_state",
     "StateSource._add_answered"),
)  # fmt: skip


class Counters:
    """Calls and thread CPU seconds per stage label."""

    def __init__(self) -> None:
        self.calls: dict[str, int] = {}
        self.seconds: dict[str, float] = {}
        self.sequence = 0

    def add(self, label: str, spent: float) -> None:
        self.calls[label] = self.calls.get(label, 0) + 1
        self.seconds[label] = self.seconds.get(label, 0.0) + spent

    def dump(self, out: Path) -> None:
        """Write the counters to ``out`` at once (readers never see half a file)."""
        self.sequence += 1
        stages = {k: [self.calls[k], self.seconds[k]] for k in self.calls}
        partial = out.with_suffix(".partial")
        partial.write_text(json.dumps({"sequence": self.sequence, "stages": stages}))
        os.replace(partial, out)


def timed(function: Callable[..., Any], label: str, counters: Counters) -> Callable[..., Any]:
    """``function`` counting its calls and the thread's CPU time while it runs."""
    clock = time.thread_time
    if inspect.iscoroutinefunction(function):

        @functools.wraps(function)
        async def waited(*args: Any, **kwargs: Any) -> Any:
            started = clock()
            try:
                return await function(*args, **kwargs)
            finally:
                counters.add(label, clock() - started)

        return waited

    @functools.wraps(function)
    def called(*args: Any, **kwargs: Any) -> Any:
        started = clock()
        try:
            return function(*args, **kwargs)
        finally:
            counters.add(label, clock() - started)

    return called


def install(
    counters: Counters, stages: Sequence[tuple[str, str, str]] = STAGES
) -> Callable[[], None]:
    """Wrap every stage; raises AttributeError naming a stage that no longer exists (the
    order path changed: update :data:`STAGES`). Returns what undoes it."""
    undo: list[tuple[Any, str, Any]] = []
    for label, module_name, path in stages:
        owner: Any = importlib.import_module(module_name)
        *parents, name = path.split(".")
        for parent in parents:
            owner = getattr(owner, parent)
        original = owner.__dict__[name] if isinstance(owner, type) else getattr(owner, name)
        undo.append((owner, name, original))
        setattr(owner, name, timed(original, label.strip(), counters))

    def restore() -> None:
        for owner, name, original in reversed(undo):
            setattr(owner, name, original)

    return restore


async def snapshot(pid: int, out: Path) -> dict[str, tuple[int, float]]:
    """Ask the gatekeeper ``pid`` for its counters (SIGUSR1) and read them from ``out``
    (TimeoutError after 10 s)."""
    before = _read(out)
    os.kill(pid, signal.SIGUSR1)
    async with asyncio.timeout(10):
        while True:
            await asyncio.sleep(0.01)
            now = _read(out)
            if now is not None and (before is None or now["sequence"] > before["sequence"]):
                return {k: (int(v[0]), float(v[1])) for k, v in now["stages"].items()}


def _read(out: Path) -> dict[str, Any] | None:
    try:
        found: dict[str, Any] = json.loads(out.read_text())
    except FileNotFoundError:
        return None
    return found


def report(
    before: dict[str, tuple[int, float]], after: dict[str, tuple[int, float]], requests: int
) -> str:
    """The stages' CPU per request between two snapshots, in the order path's order."""
    lines = [f"{'CPU µs/req':>11} {'calls/req':>9}  stage"]
    for label, _, _ in STAGES:
        key = label.strip()
        calls = after.get(key, (0, 0.0))[0] - before.get(key, (0, 0.0))[0]
        if not calls:
            continue
        spent = after[key][1] - before.get(key, (0, 0.0))[1]
        per = max(requests, 1)
        lines.append(f"{spent / per * 1e6:11,.0f} {calls / per:9.2f}  {label}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--out", type=Path, required=True)
    args, rest = parser.parse_known_args(argv)
    counters = Counters()
    install(counters)
    signal.signal(signal.SIGUSR1, lambda *_: counters.dump(args.out))
    from gatekeeper.cli import main as gatekeeper_main

    return gatekeeper_main(rest)


if __name__ == "__main__":
    sys.exit(main())
