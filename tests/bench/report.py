"""The comparison's printed report: median tables, ratios, one met / not met line per target
of issue 12 (item 6), and the README's Performance table.

Each figure is the median over the rounds of that figure (rate, p50, p99 and CPU taken
separately). Verdicts use the pinned run when there is one (the system under test alone on
core 0), except two replicas, which need both cores: they use the unpinned run. A verdict on
a ratio of requests/s also shows that ratio round by round: on a shared machine a round can
move by a quarter, and the median of three is then one round's figure.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from tests.bench.drive import Shot
from tests.bench.setups import SETUPS

Cell = tuple[str, str, int]  # setup key, mode, connections


@dataclass(frozen=True)
class Median:
    rate: float
    p50: float
    p99: float
    cpu_us: float
    loadgen: float
    busy: float  # both cores' busy share over the round
    other0: float  # core 0's busy share not spent by the system under test
    bad: int  # answers not as expected plus socket errors, all rounds
    rounds: int


def median(shots: Sequence[Shot], expect_2xx: bool = True) -> Median:
    def med(value: Callable[[Shot], float]) -> float:
        return statistics.median(value(shot) for shot in shots)

    bad = sum(
        shot.socket_errors + (shot.non_2xx if expect_2xx else shot.requests - shot.non_2xx)
        for shot in shots
    )
    return Median(
        rate=med(lambda s: s.rate),
        p50=med(lambda s: s.p50_ms),
        p99=med(lambda s: s.p99_ms),
        cpu_us=med(lambda s: s.cpu_us),
        loadgen=med(lambda s: s.loadgen_share),
        busy=med(lambda s: s.busy),
        other0=med(lambda s: s.other_on(0)),
        bad=bad,
        rounds=len(shots),
    )


class Report:
    def __init__(
        self,
        results: dict[Cell, list[Shot]],
        growth: dict[tuple[int, str], list[Shot]],
        growth_counts: dict[tuple[int, str], list[int]],
        skipped: dict[str, str],
    ) -> None:
        self.cells = {
            cell: median(shots, expect_2xx=cell[0] != "gk_rejected")
            for cell, shots in results.items()
        }
        self.shots = results
        self.growth = {key: median(shots) for key, shots in growth.items()}
        self.growth_counts = growth_counts
        self.skipped = skipped
        # BENCH_ONLY=none runs the growth series alone: its mode counts too.
        modes = {mode for _, mode, _ in results} | {mode for _, mode in growth}
        self.main_mode = "pinned" if "pinned" in modes else "unpinned"
        self.modes = [m for m in ("pinned", "unpinned") if m in modes]
        self.connections = sorted({c for _, _, c in results})
        self.top = max(self.connections, default=1)

    def get(self, key: str, connections: int, mode: str | None = None) -> Median | None:
        return self.cells.get((key, mode or self.main_mode, connections))

    # -- tables ----------------------------------------------------------------------------

    def tables(self) -> list[str]:
        lines: list[str] = []
        head = (f"{'setup':46}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'CPU µs/req':>12}"
                f"{'gen CPU':>9}{'busy':>6}{'c0 other':>9}{'bad':>5}")  # fmt: skip
        for mode in self.modes:
            for connections in self.connections:
                lines += ["", f"-- {mode}, {connections} connection(s) --", head]
                for setup in SETUPS:
                    m = self.get(setup.key, connections, mode)
                    if m is None:
                        reason = self.skipped.get(setup.key)
                        if reason:
                            lines.append(f"{setup.label:46}  skipped: {reason}")
                        continue
                    lines.append(
                        f"{setup.label:46}{m.rate:9,.0f}{m.p50:9.2f}{m.p99:9.2f}"
                        f"{m.cpu_us:12,.0f}{m.loadgen:9.0%}{m.busy:6.0%}"
                        + (f"{m.other0:9.0%}" if mode == "pinned" else f"{'-':>9}")
                        + f"{m.bad:5}"
                    )
        if self.growth:
            lines += [
                "",
                "-- growth: allowed order, 1 connection (decisions today at start;"
                " the levels' orders in turn: orders/s and CPU are the round's) --",
            ]
            for (level, growth_mode), m in sorted(
                self.growth.items(), key=lambda kv: (kv[0][1], kv[0][0])
            ):
                counts = self.growth_counts.get((level, growth_mode), [])
                lines.append(
                    f"{growth_mode:9}{level:>7,} recorded ({min(counts, default=0):,}-"
                    f"{max(counts, default=0):,} at the rounds' start): "
                    f"p50 {m.p50:.2f} ms, p99 {m.p99:.2f} ms, {m.rate:,.0f} orders/s,"
                    f" CPU {m.cpu_us:,.0f} µs/req, bad {m.bad}"
                )
        return lines

    # -- ratios and verdicts ---------------------------------------------------------------

    def round_ratios(self, top: str, bottom: str, connections: int, mode: str) -> str:
        """``; rounds 0.58, 0.81, 1.20``: the ratio of requests/s within each round, in the
        order the rounds ran, so that a verdict shows how much the machine moved under it;
        empty with fewer than two rounds."""
        a = self.shots.get((top, mode, connections), [])
        b = self.shots.get((bottom, mode, connections), [])
        if len(a) != len(b) or len(a) < 2 or not all(shot.rate for shot in b):
            return ""
        return "; rounds " + ", ".join(f"{x.rate / y.rate:.2f}" for x, y in zip(a, b, strict=True))

    def _ratio(self, top: str, bottom: str, connections: int, mode: str | None = None) -> str:
        a, b = self.get(top, connections, mode), self.get(bottom, connections, mode)
        if a is None or b is None or not b.rate:
            return "n/a"
        return f"{a.rate / b.rate:.2f}"

    def ratios(self) -> list[str]:
        pairs = (
            ("gk_get", "minimal_get", "Gatekeeper pass-through / minimal proxy (GET)"),
            ("minimal_post", "direct_post", "minimal proxy / direct (POST)"),
            ("nginx_get", "minimal_get", "nginx / minimal proxy (GET)"),
            ("prototype", "minimal_post", "prototype / minimal proxy (POST)"),
            ("gk_allowed", "prototype", "Gatekeeper allowed / prototype"),
            ("gk_allowed", "gk_get", "Gatekeeper allowed / own pass-through"),
            ("gk_rejected", "gk_allowed", "Gatekeeper rejected / allowed"),
            ("gk_dry_run", "gk_allowed", "Gatekeeper dry-run / allowed"),
            ("gk_replicas", "gk_allowed", "2 replicas behind nginx / 1 Gatekeeper"),
        )
        lines = [
            "",
            "-- ratios of requests/s ("
            + ", ".join(f"{mode} {c}c" for mode in self.modes for c in self.connections)
            + ") --",
        ]
        for top, bottom, label in pairs:
            values = [self._ratio(top, bottom, c, mode) for mode in self.modes
                      for c in self.connections]  # fmt: skip
            lines.append(f"{label:46}" + "".join(f"{v:>8}" for v in values))
        return lines

    def verdicts(self) -> list[str]:
        mode, top = self.main_mode, self.top
        where = f"{top} connections, {mode}"
        lines = ["", f"-- targets (issue 12, item 6; {where} unless said) --"]

        def line(ok: bool | None, text: str) -> None:
            lines.append(
                f"{'met    ' if ok else 'not met' if ok is not None else 'n/a    '} {text}"
            )

        gk, minimal = self.get("gk_get", top), self.get("minimal_get", top)
        if gk and minimal:
            r = gk.rate / minimal.rate
            spread = self.round_ratios("gk_get", "minimal_get", top, mode)
            line(r >= 0.9, f"pass-through ≥ 0.9 x minimal proxy: {r:.2f} "
                           f"({gk.rate:,.0f} vs {minimal.rate:,.0f} req/s{spread})")  # fmt: skip
        allowed, proto = self.get("gk_allowed", top), self.get("prototype", top)
        if allowed and proto:
            r = allowed.rate / proto.rate
            goal = "goal 1.2x met" if r >= 1.2 else "goal 1.2x not met"
            spread = self.round_ratios("gk_allowed", "prototype", top, mode)
            line(r >= 1.0, f"allowed orders/s ≥ 1.0 x prototype: {r:.2f} ({goal}; "
                           f"{allowed.rate:,.0f} vs {proto.rate:,.0f}/s{spread})")  # fmt: skip
        if allowed and gk:
            r = allowed.rate / gk.rate
            spread = self.round_ratios("gk_allowed", "gk_get", top, mode)
            line(r >= 0.5, f"allowed orders/s ≥ 50 % of own pass-through: {r:.0%} "
                           f"({allowed.rate:,.0f} vs {gk.rate:,.0f}/s{spread})")  # fmt: skip
        one_allowed, one_get = self.get("gk_allowed", 1), self.get("gk_get", 1)
        if one_allowed and one_get:
            added = one_allowed.p50 - one_get.p50
            figures = f"{added:+.2f} ms ({one_allowed.p50:.2f} vs {one_get.p50:.2f})"
            line(added <= 1.0, f"added p50 over own pass-through ≤ 1 ms at 1 connection: {figures}")
        self._growth_verdict(line)
        self._replicas_verdict(line)
        line(None, "evaluate() ≤ 50 µs: timed by tests/bench/test_bench_evaluate.py, not here")
        return lines

    def _growth_verdict(self, line: Callable[[bool | None, str], None]) -> None:
        mode = self.main_mode
        base = self.growth.get((0, mode))
        others = sorted((lvl, m) for (lvl, md), m in self.growth.items() if md == mode and lvl)
        if base is None or not others:
            return
        ratios = [(lvl, m.p50 / base.p50) for lvl, m in others]
        ok = all(0.9 <= r <= 1.1 for _, r in ratios)
        shown = ", ".join(f"{lvl:,}: {r:.2f}x" for lvl, r in ratios)
        line(ok, f"growth within ±10 % (p50 vs 0 decisions today, 1 connection, {mode}): "
                 f"{shown} ({base.p50:.2f} ms at 0)")  # fmt: skip

    def _replicas_verdict(self, line: Callable[[bool | None, str], None]) -> None:
        top = self.top
        two, one = self.get("gk_replicas", top, "unpinned"), self.get("gk_allowed", top, "unpinned")
        if two is None or one is None:
            reason = (
                self.skipped.get("gk_replicas") or "needs it and the single gatekeeper unpinned"
            )
            line(None, f"two replicas ≥ 1.7 x one: not measured ({reason})")
            return
        r = two.rate / one.rate
        cores = (
            f"cores {two.busy:.0%} busy, load generator {two.loadgen:.0%} of a core"
            f"{self.round_ratios('gk_replicas', 'gk_allowed', top, 'unpinned')};"
            " the replicas share the 2 cores with it, the upstream, Postgres and Redis"
        )
        if r < 1.7 and two.loadgen >= 0.9:
            cores += ": the load generator is the limit"
        elif r < 1.7 and two.busy >= 0.9:
            cores += ": the cores are the limit, not the replicas"
        line(r >= 1.7, f"two replicas ≥ 1.7 x one ({top} connections, unpinned): {r:.2f} "
                       f"({two.rate:,.0f} vs {one.rate:,.0f}/s); {cores}")  # fmt: skip

    # -- README ----------------------------------------------------------------------------

    def readme_table(self) -> list[str]:
        top, mode = self.top, self.main_mode
        lines = ["", f"-- README table ({mode}; req/s at {top} connections, p50 at 1) --",
                 f"| setup | requests/s ({top} connections) | p50 at 1 connection "
                 "| p99 at 16 | CPU µs per request |", "|---|---|---|---|---|"]  # fmt: skip
        for setup in SETUPS:
            m, one = self.get(setup.key, top), self.get(setup.key, 1)
            if m is None:
                continue
            p50 = f"{one.p50:.2f} ms" if one else "—"
            lines.append(f"| {setup.label} | {m.rate:,.0f} | {p50} | {m.p99:.2f} ms "
                         f"| {m.cpu_us:,.0f} |")  # fmt: skip
        return lines

    def text(self, header: Sequence[str]) -> str:
        return "\n".join([*header, *self.tables(), *self.ratios(), *self.verdicts(),
                          *self.readme_table()])  # fmt: skip
