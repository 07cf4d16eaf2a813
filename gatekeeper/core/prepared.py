"""What one account snapshot's positions are worth, computed once and reused by every
evaluation of the same snapshot (a dry-run and its real order, each order of a warm account).

:func:`prepared` values every position, groups them, and takes each group's risk on its own
strikes; :mod:`gatekeeper.core.incremental` then values again only the groups that an order,
a working order or an in-flight order touches. The result is exactly that of
:func:`gatekeeper.core.facts.account_facts` (tests compare the two).

The cache is a memo, not state. The order path builds a new snapshot for every order, so
an entry is found by account and risk parameters and then used only when what the
valuation read is the same: equal positions, equal quotes for every symbol it looked up,
equal instruments for the held symbols (snapshots are frozen, their mappings copied behind
read-only views, so an entry's content cannot change), and a ``now`` at which every quote it
used is judged as it was (a quote that ages past the maximum age, or a stale one met again
earlier, is never served from it). What the valuation did not read (cash, working orders,
the day's start, instruments of an order's new symbols) comes from the snapshot asked
about: the entry is handed out with that snapshot. A snapshot whose positions cannot all be
valued is not prepared: those evaluations take the general path, which names every problem
in order.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import Context, Decimal, Rounded, localcontext
from threading import Lock

from gatekeeper.core.holdings import Valuer
from gatekeeper.core.pricing import PriceProblem, Prices, quote_is_aged
from gatekeeper.core.risk import GroupRisk, Holding, group_risk, strikes_of
from gatekeeper.core.snapshot import AccountSnapshot, Position, RiskParameters
from gatekeeper.core.symbols import InstrumentType

_ZERO = Decimal(0)
_ONE = Decimal(1)
CACHE_SIZE = 64  # accounts kept (each with its last snapshot's valuation)
WIDENED_SIZE = 256  # held groups' risks on an order's strikes, per snapshot


def _rounded(context: Context) -> bool:
    """Whether an operation in ``context`` rounded (read through ``getattr``: typeshed calls
    ``flags`` a dict, which a compiled core would check it is; it is the C module's own
    mapping)."""
    flags: Mapping[type, bool] = getattr(context, "flags")  # noqa: B009
    return bool(flags[Rounded])


@dataclass(frozen=True, slots=True)
class Total:
    """An ordered sum of non-negative terms from 0 (``total = 0; total += t`` for each), kept
    so that the same sum with some terms removed or added is found without the loop.

    Decimal addition without rounding is exact and takes the smaller exponent, so when the
    result fits the context's precision at the smallest exponent of its terms, every partial
    sum in any order fits too and the loop's result is that value at that exponent. When
    that cannot be shown, :meth:`changed` says ``None`` and the caller runs the loop.
    """

    value: Decimal
    exponents: Mapping[int, int]  # exponent -> how many terms have it
    exact: bool

    @classmethod
    def of(cls, terms: list[Decimal]) -> Total:
        exponents: dict[int, int] = {}
        with localcontext() as context:
            context.clear_flags()
            total = _ZERO
            for term in terms:
                total += term
                exponent = term.as_tuple().exponent
                assert isinstance(exponent, int)  # noqa: S101 - finite terms
                exponents[exponent] = exponents.get(exponent, 0) + 1
            exact = not _rounded(context) and all(t >= 0 for t in terms)
        return cls(total, exponents, exact)

    def changed(self, removed: list[Decimal], added: list[Decimal]) -> Decimal | None:
        """The loop's result over the terms less ``removed`` (each one of the terms) plus
        ``added``, or ``None`` when it cannot be shown exact."""
        if not self.exact:
            return None
        counts = dict(self.exponents)
        smallest = 0  # the loop starts from Decimal(0)
        with localcontext() as wide:
            precision = wide.prec
            wide.prec = precision * 2 + 10
            wide.clear_flags()
            value = self.value
            for term in removed:
                value -= term
                exponent = term.as_tuple().exponent
                assert isinstance(exponent, int)  # noqa: S101 - finite terms
                counts[exponent] -= 1
            for term in added:
                if term < 0:
                    return None
                value += term
                exponent = term.as_tuple().exponent
                assert isinstance(exponent, int)  # noqa: S101 - finite terms
                smallest = min(smallest, exponent)
            if _rounded(wide):
                return None
            smallest = min([smallest, *(e for e, n in counts.items() if n > 0)])
            if value and value.adjusted() - smallest + 1 > precision:
                return None
            return value.quantize(_ONE.scaleb(smallest))


@dataclass(frozen=True, slots=True)
class ShortTerm:
    """A held short (netted by symbol): what buying all of it back costs at its mark."""

    quantity: Decimal  # net held quantity (negative)
    holding: Holding  # the netted holding (last position's instrument and mark)
    cost: Decimal  # -quantity * multiplier * mark, as the general path computes it


@dataclass(frozen=True, slots=True)
class PreparedAccount:
    """The positions of one snapshot, valued at one set of quote verdicts.

    ``groups``: each group's position holdings, in the order the general path meets them;
    ``risks``: each group's risk on its own strikes (``strikes``); ``exposure``: their sum in
    that order. ``shorts``: held shorts in first-seen order with their buy-back cost and
    ``buyback`` their sum. ``long``/``short``: closable quantity per symbol.
    """

    snapshot: AccountSnapshot
    params: RiskParameters
    computed_at: datetime
    oldest_fresh: datetime | None  # the oldest dated quote that was usable
    saw_aged: bool  # a dated quote was too old (it may have been fresh earlier)
    held: Mapping[str, Position]
    mids: Mapping[str, Decimal]  # usable mids of the quotes looked up
    positions: tuple[Holding, ...]
    netted: Mapping[str, Decimal]  # net held quantity per symbol
    groups: Mapping[str, tuple[Holding, ...]]
    strikes: Mapping[str, frozenset[Decimal]]
    risks: Mapping[str, GroupRisk]
    exposure: Total
    order: Mapping[str, int]  # each group's place in ``groups``
    shorts: Mapping[str, ShortTerm]
    buyback: Total
    long: Mapping[str, Decimal]
    short: Mapping[str, Decimal]
    looked_up: frozenset[str]  # every symbol whose quote the valuation read
    # a held group's risk on wider strikes (an order's), by (group, strikes): a memo
    widened: dict[tuple[str, frozenset[str]], GroupRisk] = field(default_factory=dict)

    def remember(self, key: tuple[str, frozenset[str]], risk: GroupRisk) -> None:
        """Keep a held group's risk on an order's strikes (bounded)."""
        if len(self.widened) >= WIDENED_SIZE:
            self.widened.clear()
        self.widened[key] = risk

    def valid_at(self, now: datetime) -> bool:
        """Whether every quote used is judged at ``now`` as it was when prepared."""
        if self.saw_aged and now < self.computed_at:
            return False
        oldest = self.oldest_fresh
        return oldest is None or not quote_is_aged(oldest, self.params, now)

    def values(self, snapshot: AccountSnapshot) -> bool:
        """Whether ``snapshot`` gives the valuation what it read from this one."""
        mine = self.snapshot
        if snapshot is mine:
            return True
        if snapshot.positions != mine.positions:
            return False
        theirs, ours = snapshot.quotes, mine.quotes
        for symbol in self.looked_up:
            old, new = ours.get(symbol), theirs.get(symbol)
            if old is not new and old != new:
                return False
        theirs_i, ours_i = snapshot.instruments, mine.instruments
        for symbol in self.held:
            old_i, new_i = ours_i.get(symbol), theirs_i.get(symbol)
            if old_i is not new_i and old_i != new_i:
                return False
        return True


_Entry = tuple[AccountSnapshot, datetime, PreparedAccount | None]
_CACHE: OrderedDict[tuple[str, RiskParameters], _Entry] = OrderedDict()
_LOCK = Lock()  # evaluations may run on several threads (the CLI, tests)


def clear_cache() -> None:
    """Forget every prepared snapshot (benchmarks measure the cold path with it)."""
    with _LOCK:
        _CACHE.clear()


def prepared(
    snapshot: AccountSnapshot, params: RiskParameters, now: datetime
) -> PreparedAccount | None:
    """The prepared positions of ``snapshot`` (from the cache when the account's last one
    values the same and is still valid at ``now``: see the module docstring), or ``None``
    when a position cannot be valued (the general path then applies)."""
    key = (snapshot.account_number, params)
    with _LOCK:
        found = _CACHE.get(key)
    if found is not None:
        ready = found[2]
        if ready is None:
            if found[0] is snapshot and found[1] == now:
                return None
        elif ready.valid_at(now) and ready.values(snapshot):
            return ready if ready.snapshot is snapshot else replace(ready, snapshot=snapshot)
    ready = prepare(snapshot, params, now)
    with _LOCK:
        _CACHE[key] = (snapshot, now, ready)
        _CACHE.move_to_end(key)
        while len(_CACHE) > CACHE_SIZE:
            _CACHE.popitem(last=False)
    return ready


def prepare(
    snapshot: AccountSnapshot, params: RiskParameters, now: datetime
) -> PreparedAccount | None:
    """Value every position of ``snapshot`` at ``now`` (uncached); ``None`` if one cannot
    be valued or a sum would need rounding (the general path then applies)."""
    held = {p.symbol: p for p in snapshot.positions}
    prices = Prices(snapshot, params, now, held=held)
    valuer = Valuer(snapshot, prices, held=held)
    entries = valuer.positions()
    positions = tuple(e for e in entries if isinstance(e, Holding))
    if len(positions) != len(entries) or prices.problems:
        return None
    groups: dict[str, list[Holding]] = {}
    for holding in positions:
        groups.setdefault(holding.instrument.group, []).append(holding)
    strikes = {g: frozenset(strikes_of(hs)) for g, hs in groups.items()}
    risks: dict[str, GroupRisk] = {}
    for group, holdings in groups.items():
        reference = prices.mark(min(h.instrument.underlying for h in holdings))
        if reference is None:
            return None
        risks[group] = group_risk(
            group, _net(holdings), reference, params.stress_up_percentage, strikes[group]
        )
    netted = _net(positions)
    shorts = {
        h.instrument.symbol: ShortTerm(
            h.quantity,
            h,
            min(-h.quantity, max(-h.quantity, _ZERO)) * h.instrument.multiplier * h.mark,
        )
        for h in netted
        if h.quantity < 0 and h.instrument.instrument_type is not InstrumentType.FUTURE
    }
    exposure = Total.of([r.risk for r in risks.values()])
    buyback = Total.of([t.cost for t in shorts.values()])
    long: dict[str, Decimal] = {}
    short: dict[str, Decimal] = {}
    for position in snapshot.positions:
        side = long if position.quantity > 0 else short
        side[position.symbol] = side.get(position.symbol, _ZERO) + abs(position.quantity)
    mids, oldest, aged = _verdicts(prices, snapshot, params, now)
    return PreparedAccount(
        snapshot=snapshot,
        params=params,
        computed_at=now,
        oldest_fresh=oldest,
        saw_aged=aged,
        held=held,
        mids=mids,
        positions=positions,
        netted={h.instrument.symbol: h.quantity for h in netted},
        groups={g: tuple(hs) for g, hs in groups.items()},
        strikes=strikes,
        risks=risks,
        exposure=exposure,
        order={g: n for n, g in enumerate(groups)},
        shorts=shorts,
        buyback=buyback,
        long=long,
        short=short,
        looked_up=frozenset(prices.checked()),
    )


def _verdicts(
    prices: Prices, snapshot: AccountSnapshot, params: RiskParameters, now: datetime
) -> tuple[dict[str, Decimal], datetime | None, bool]:
    """The usable mids looked up, the oldest dated one, and whether a dated quote was aged."""
    mids: dict[str, Decimal] = {}
    oldest: datetime | None = None
    aged = False
    for symbol, verdict in prices.checked().items():
        quote = snapshot.quotes.get(symbol)
        updated = None if quote is None else quote.updated_at
        if isinstance(verdict, PriceProblem):
            aged = aged or (updated is not None and quote_is_aged(updated, params, now))
            continue
        mids[symbol] = verdict
        if updated is not None and (oldest is None or updated < oldest):
            oldest = updated
    return mids, oldest, aged


def _net(holdings: tuple[Holding, ...] | list[Holding]) -> list[Holding]:
    """Holdings merged by symbol, as the general path nets them (same sums, same order)."""
    merged: dict[str, Holding] = {}
    for h in holdings:
        seen = merged.get(h.instrument.symbol)
        merged[h.instrument.symbol] = (
            h if seen is None else Holding(h.instrument, seen.quantity + h.quantity, h.mark)
        )
    return list(merged.values())
