"""The paper broker's instrument catalog: future products, option roots, cryptocurrencies.

Reference data (what TastyTrade's ``/instruments`` endpoints describe), not account state.
The default catalog lives here; a seed file may add option roots (mini options, say) with
its ``instruments`` section. Figures are the exchanges' contract specifications.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from decimal import Decimal

MONTH_CODES = "FGHJKMNQUVXZ"  # January ... December
QUARTERLY = "HMUZ"


@dataclass(frozen=True)
class FutureProduct:
    """A family of futures (``/ES``): every contract ``/ES<month><year>`` shares these terms."""

    code: str
    description: str
    notional_multiplier: Decimal
    tick_size: Decimal
    exchange: str  # TastyTrade names every CME Group venue "CME"
    streamer_exchange_code: str  # the venue's MIC: XCME, XCBT, XNYM, XCEC
    market_sector: str
    product_type: str  # Financial | Physical
    listed_months: str  # month codes
    cash_settled: bool
    option_roots: frozenset[str] = frozenset()
    display_factor: Decimal = Decimal("0.01")

    @property
    def root_symbol(self) -> str:
        return "/" + self.code


@dataclass(frozen=True)
class OptionRoot:
    """An equity or index option root and what its contracts deliver."""

    root: str
    underlying: str
    shares_per_contract: int = 100
    exercise_style: str = "American"
    settlement_type: str = "PM"  # AM: settled on the open of expiration day
    cash_settled: bool = False


@dataclass(frozen=True)
class CryptoAsset:
    """A cryptocurrency pair TastyTrade lists (``BTC/USD``)."""

    id: int
    symbol: str
    short_description: str
    tick_size: Decimal

    @property
    def base(self) -> str:
        return self.symbol.split("/", 1)[0]


@dataclass(frozen=True)
class Catalog:
    """Everything the paper broker knows about instruments beyond their symbols."""

    future_products: Mapping[str, FutureProduct]
    option_roots: Mapping[str, OptionRoot]
    cryptocurrencies: Mapping[str, CryptoAsset]
    indices: frozenset[str] = field(default_factory=frozenset)

    def option_root(self, root: str) -> OptionRoot:
        """The root's terms; a root the catalog does not list is a standard option on itself."""
        return self.option_roots.get(root) or OptionRoot(root, root)

    def with_option_roots(self, roots: Iterable[OptionRoot]) -> Catalog:
        """A copy where ``roots`` are added (replacing any listed under the same root)."""
        merged = dict(self.option_roots)
        merged.update({root.root: root for root in roots})
        return replace(self, option_roots=merged)


def _daily(prefix: str) -> frozenset[str]:
    """CME's Monday-Thursday option roots: ``E1A`` (1st Monday) ... ``E5D`` (5th Thursday)."""
    return frozenset(f"{prefix}{week}{day}" for week in "12345" for day in "ABCD")


def _weekly(eom: str, weekly: str) -> frozenset[str]:
    """End-of-month root plus the Friday weeklies ``<weekly>1`` ... ``<weekly>4``."""
    return frozenset({eom, *(f"{weekly}{week}" for week in "1234")})


def _future(
    code: str,
    description: str,
    multiplier: str,
    tick: str,
    venue: str,
    sector: str,
    *,
    months: str = QUARTERLY,
    cash_settled: bool = True,
    options: Iterable[str] = (),
) -> FutureProduct:
    return FutureProduct(
        code=code,
        description=description,
        notional_multiplier=Decimal(multiplier),
        tick_size=Decimal(tick),
        exchange="CME",
        streamer_exchange_code=venue,
        market_sector=sector,
        product_type="Financial" if cash_settled else "Physical",
        listed_months=months,
        cash_settled=cash_settled,
        option_roots=frozenset({code, *options}),
    )


_EQUITY_INDEX = "Equity Index"
_FUTURES = [
    _future("ES", "E-Mini S&P 500", "50", "0.25", "XCME", _EQUITY_INDEX,
            options=_weekly("EW", "EW") | _daily("E")),
    _future("MES", "Micro E-Mini S&P 500", "5", "0.25", "XCME", _EQUITY_INDEX,
            options=_weekly("EX", "EX")),
    _future("NQ", "E-Mini Nasdaq-100", "20", "0.25", "XCME", _EQUITY_INDEX,
            options=_weekly("QNE", "QN") | _daily("Q")),
    _future("MNQ", "Micro E-Mini Nasdaq-100", "2", "0.25", "XCME", _EQUITY_INDEX),
    _future("RTY", "E-Mini Russell 2000", "50", "0.1", "XCME", _EQUITY_INDEX),
    _future("M2K", "Micro E-Mini Russell 2000", "5", "0.1", "XCME", _EQUITY_INDEX),
    _future("YM", "E-Mini Dow", "5", "1", "XCBT", _EQUITY_INDEX),
    _future("MYM", "Micro E-Mini Dow", "0.5", "1", "XCBT", _EQUITY_INDEX),
    _future("CL", "Light Sweet Crude Oil", "1000", "0.01", "XNYM", "Energy",
            months=MONTH_CODES, cash_settled=False, options={"LO", "ML1", "ML2", "ML3", "ML4"}),
    _future("MCL", "Micro WTI Crude Oil", "100", "0.01", "XNYM", "Energy",
            months=MONTH_CODES, cash_settled=False),
    _future("GC", "Gold", "100", "0.1", "XCEC", "Metals",
            months="GJMQVZ", cash_settled=False, options={"OG"}),
    _future("MGC", "Micro Gold", "10", "0.1", "XCEC", "Metals",
            months="GJMQVZ", cash_settled=False),
    _future("ZN", "10-Year T-Note", "1000", "0.015625", "XCBT", "Interest Rates",
            cash_settled=False, options={"OZN"}),
    _future("ZB", "30-Year T-Bond", "1000", "0.03125", "XCBT", "Interest Rates",
            cash_settled=False, options={"OZB"}),
    _future("6E", "Euro FX", "125000", "0.00005", "XCME", "Currencies",
            cash_settled=False, options={"EUU"}),
]  # fmt: skip


def _index_root(root: str, underlying: str, settlement: str) -> OptionRoot:
    return OptionRoot(
        root, underlying, exercise_style="European", settlement_type=settlement, cash_settled=True
    )


# Index options: the PM-settled weeklies (SPXW, NDXP, RUTW) belong to their index.
_INDEX_ROOTS = [
    _index_root("SPX", "SPX", "AM"),
    _index_root("SPXW", "SPX", "PM"),
    _index_root("NDX", "NDX", "AM"),
    _index_root("NDXP", "NDX", "PM"),
    _index_root("RUT", "RUT", "AM"),
    _index_root("RUTW", "RUT", "PM"),
    _index_root("XSP", "XSP", "PM"),
    _index_root("VIX", "VIX", "AM"),
    _index_root("VIXW", "VIX", "AM"),
]

_CRYPTO = [
    CryptoAsset(1, "BTC/USD", "Bitcoin", Decimal("0.01")),
    CryptoAsset(2, "BCH/USD", "Bitcoin Cash", Decimal("0.01")),
    CryptoAsset(3, "ETH/USD", "Ethereum", Decimal("0.01")),
    CryptoAsset(4, "LTC/USD", "Litecoin", Decimal("0.01")),
    CryptoAsset(5, "SOL/USD", "Solana", Decimal("0.01")),
]

DEFAULT_CATALOG = Catalog(
    future_products={product.code: product for product in _FUTURES},
    option_roots={root.root: root for root in _INDEX_ROOTS},
    cryptocurrencies={asset.symbol: asset for asset in _CRYPTO},
    indices=frozenset({"SPX", "NDX", "RUT", "XSP", "VIX", "DJX"}),
)
