"""Reference prices and marks from quotes (``shared/risk-model.md`` section 2).

A quote is usable only if bid > 0, ask >= bid, it is younger than the maximum quote age (when
it says when it was updated) and its spread is within the allowed share of its mid. Its mid,
(bid + ask) / 2, is the price. A held position with no usable quote falls back to its own
mark, then its close price. The order's own limit price is never a reference price: it says
what the order pays, not what the position can lose.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from gatekeeper.core.codes import Code
from gatekeeper.core.snapshot import AccountSnapshot, Position, Quote, RiskParameters

_TWO = Decimal(2)
_HUNDRED = Decimal(100)


@dataclass(frozen=True, slots=True)
class PriceProblem:
    """Why a symbol has no usable price: ``price_unavailable`` or ``quote_invalid``."""

    code: Code
    symbol: str
    reason: str

    @property
    def text(self) -> str:
        """``AAPL: crossed quote (bid 150.00 above ask 1.50)``."""
        return f"{self.symbol}: {self.reason}"


def _fmt(price: Decimal) -> str:
    return f"{price:f}"


def _age(updated_at: datetime, now: datetime) -> Decimal:
    return Decimal(str((now - updated_at).total_seconds()))


def quote_is_aged(updated_at: datetime, params: RiskParameters, now: datetime) -> bool:
    """Whether a quote updated at ``updated_at`` is older than the maximum age at ``now``
    (once aged, a quote stays aged as ``now`` grows)."""
    limit = params.max_quote_age_seconds
    return limit is not None and _age(updated_at, now) > limit


def check_quote(
    quote: Quote | None, symbol: str, params: RiskParameters, now: datetime
) -> Decimal | PriceProblem:
    """The quote's mid, or why it cannot be used."""
    if quote is None:
        return PriceProblem(Code.PRICE_UNAVAILABLE, symbol, "no quote")
    bid, ask = quote.bid, quote.ask
    if bid is None or ask is None:
        return PriceProblem(Code.PRICE_UNAVAILABLE, symbol, "the quote has no bid or no ask")
    if bid <= 0:
        return PriceProblem(Code.QUOTE_INVALID, symbol, f"bid {_fmt(bid)} is not positive")
    if ask < bid:
        reason = f"crossed quote (bid {_fmt(bid)} above ask {_fmt(ask)})"
        return PriceProblem(Code.QUOTE_INVALID, symbol, reason)
    if quote.updated_at is not None and quote_is_aged(quote.updated_at, params, now):
        age = _age(quote.updated_at, now)
        reason = f"quote is {age:.0f}s old, above the {params.max_quote_age_seconds}s maximum"
        return PriceProblem(Code.QUOTE_INVALID, symbol, reason)
    mid = (bid + ask) / _TWO
    limit = params.max_spread_percentage
    if limit is not None and (ask - bid) * _HUNDRED > limit * mid:
        spread = (ask - bid) * _HUNDRED / mid
        reason = (
            f"spread {_fmt(bid)}/{_fmt(ask)} is {spread:.2f}% of the mid, "
            f"above the {limit}% maximum"
        )
        return PriceProblem(Code.QUOTE_INVALID, symbol, reason)
    return mid


class Prices:
    """Looks up usable prices in one snapshot and remembers every problem met."""

    def __init__(
        self,
        snapshot: AccountSnapshot,
        params: RiskParameters,
        now: datetime,
        *,
        held: Mapping[str, Position] | None = None,
        mids: Mapping[str, Decimal] | None = None,
    ) -> None:
        """``held`` (positions by symbol) and ``mids`` (usable mids already checked at a
        ``now`` that judges them alike) may come from a prepared snapshot."""
        self._quotes: Mapping[str, Quote] = snapshot.quotes
        self._params = params
        self._now = now
        self._held: Mapping[str, Position] = (
            {p.symbol: p for p in snapshot.positions} if held is None else held
        )
        self._mids: Mapping[str, Decimal] = {} if mids is None else mids
        self._cache: dict[str, Decimal | PriceProblem] = {}
        self.problems: dict[str, PriceProblem] = {}

    def quoted(self, symbol: str) -> Decimal | PriceProblem:
        """The usable mid of ``symbol``'s quote, or the problem (not recorded)."""
        found = self._cache.get(symbol)
        if found is None:
            found = self._mids.get(symbol)
            if found is None:
                found = check_quote(self._quotes.get(symbol), symbol, self._params, self._now)
            self._cache[symbol] = found
        return found

    def checked(self) -> Mapping[str, Decimal | PriceProblem]:
        """Every quote looked up so far and its verdict."""
        return self._cache

    def mark(self, symbol: str) -> Decimal | None:
        """Price of ``symbol`` now: its quote's mid, else (when held) the position's mark or
        close price; ``None`` (and the problem recorded) when there is none."""
        mid = self.quoted(symbol)
        if isinstance(mid, Decimal):
            return mid
        held = self._held.get(symbol)
        if held is not None:
            for fallback in (held.mark, held.close_price):
                if fallback is not None and fallback > 0:
                    return fallback
        self.problems.setdefault(symbol, mid)
        return None

    def side(self, symbol: str, *, buy: bool) -> Decimal | None:
        """What a marketable order pays (the ask) or receives (the bid), from a usable quote."""
        mid = self.quoted(symbol)
        if isinstance(mid, PriceProblem):
            self.problems.setdefault(symbol, mid)
            return None
        quote = self._quotes[symbol]
        return quote.ask if buy else quote.bid

    def bid_ask(self, symbol: str) -> tuple[Decimal, Decimal] | None:
        """The bid and ask of a usable quote, else ``None`` (the problem is not recorded)."""
        if isinstance(self.quoted(symbol), PriceProblem):
            return None
        quote = self._quotes[symbol]
        if quote.bid is None or quote.ask is None:  # a usable quote has both
            return None
        return quote.bid, quote.ask

    def missing(self, symbol: str, reason: str) -> None:
        """Record a symbol that cannot be valued (e.g. its instrument is unknown)."""
        self.problems.setdefault(symbol, PriceProblem(Code.PRICE_UNAVAILABLE, symbol, reason))
