"""The seed file: users, accounts, positions and quotes the paper broker starts with, and
option roots to add to the instrument catalog (``instruments.option-roots``: mini options...).

Validated with pydantic (unknown keys rejected, every problem reported at once). Stated
net liquidating values must equal cash + long market value - short market value (futures:
their open P&L) at the seed's marks, so a typo cannot make the demo's numbers disagree.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from gatekeeper.paper.book import Clock, PaperBook, utc_now
from gatekeeper.paper.catalog import DEFAULT_CATALOG, Catalog, OptionRoot
from gatekeeper.paper.instruments import terms_of, valid_quote_symbol
from gatekeeper.paper.model import Account, OAuthClient, Position, Quote, User
from gatekeeper.paper.valuation import nlv_contribution

Money = Annotated[Decimal, Field(allow_inf_nan=False)]
Price = Annotated[Decimal, Field(ge=0, allow_inf_nan=False)]
TradedType = Literal["Equity", "Equity Option", "Future", "Future Option"]
QuotedType = Literal[
    "Equity", "Equity Option", "Future", "Future Option", "Index", "Cryptocurrency"
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class SeedOAuthClient(_Strict):
    client_id: str = Field(alias="client-id", min_length=1)
    client_secret: str = Field(alias="client-secret", min_length=8)
    refresh_token: str = Field(alias="refresh-token", min_length=8)


class SeedUser(_Strict):
    login: str = Field(min_length=1)
    password: str = Field(min_length=1)
    email: str
    username: str
    external_id: str = Field(alias="external-id")
    first_name: str = Field(alias="first-name", default="Paper")
    last_name: str = Field(alias="last-name", default="Trader")
    accounts: list[str]
    oauth_clients: list[SeedOAuthClient] = Field(alias="oauth-clients", default_factory=list)


class SeedOptionRoot(_Strict):
    """An equity option root whose contracts are not 100 shares of the root itself."""

    root: str = Field(pattern=r"^[A-Z][A-Z0-9]{0,5}$")
    underlying: str = Field(pattern=r"^[A-Z][A-Z0-9.]{0,9}$")
    shares_per_contract: int = Field(alias="shares-per-contract", default=100, gt=0)
    exercise_style: Literal["American", "European"] = Field(
        alias="exercise-style", default="American"
    )
    settlement_type: Literal["AM", "PM"] = Field(alias="settlement-type", default="PM")

    def option_root(self) -> OptionRoot:
        return OptionRoot(
            self.root,
            self.underlying,
            self.shares_per_contract,
            self.exercise_style,
            self.settlement_type,
            cash_settled=self.exercise_style == "European",
        )


class SeedInstruments(_Strict):
    option_roots: list[SeedOptionRoot] = Field(alias="option-roots", default_factory=list)


class SeedQuote(_Strict):
    symbol: str
    instrument_type: QuotedType = Field(alias="instrument-type", default="Equity")
    bid: Price
    ask: Price
    mark: Price | None = None
    close: Price | None = None

    @model_validator(mode="after")
    def _check(self) -> SeedQuote:
        if self.bid > self.ask:
            raise ValueError(f"{self.symbol}: bid {self.bid} above ask {self.ask}")
        if not valid_quote_symbol(self.symbol, self.instrument_type):
            raise ValueError(f"{self.symbol!r} is not a valid {self.instrument_type} symbol")
        return self


class SeedPosition(_Strict):
    symbol: str
    instrument_type: TradedType = Field(alias="instrument-type", default="Equity")
    quantity: Money = Field(description="signed: negative is short")
    average_open_price: Price = Field(alias="average-open-price")
    close_price: Price | None = Field(alias="close-price", default=None)

    @model_validator(mode="after")
    def _check(self) -> SeedPosition:
        if self.quantity == 0:
            raise ValueError(f"{self.symbol}: quantity must not be zero")
        if not valid_quote_symbol(self.symbol, self.instrument_type):
            raise ValueError(f"{self.symbol!r} is not a valid {self.instrument_type} symbol")
        return self


class SeedAccount(_Strict):
    account_number: str = Field(alias="account-number", pattern=r"^[0-9A-Z]{5,10}$")
    nickname: str = "Paper"
    margin_or_cash: Literal["Margin", "Cash"] = Field(alias="margin-or-cash", default="Margin")
    cash_balance: Money = Field(alias="cash-balance")
    net_liquidating_value: Money | None = Field(alias="net-liquidating-value", default=None)
    positions: list[SeedPosition] = Field(default_factory=list)


class SeedFile(_Strict):
    users: list[SeedUser] = Field(min_length=1)
    accounts: list[SeedAccount] = Field(min_length=1)
    quotes: list[SeedQuote] = Field(default_factory=list)
    instruments: SeedInstruments = Field(default_factory=SeedInstruments)

    def catalog(self) -> Catalog:
        """The default instrument catalog with the seed's option roots added."""
        roots = [root.option_root() for root in self.instruments.option_roots]
        return DEFAULT_CATALOG.with_option_roots(roots)

    @model_validator(mode="after")
    def _consistent(self) -> SeedFile:
        problems: list[str] = []
        numbers = [account.account_number for account in self.accounts]
        if len(set(numbers)) != len(numbers):
            problems.append("account numbers must be unique")
        owned = [number for user in self.users for number in user.accounts]
        problems += [f"user account {n} is not defined" for n in owned if n not in numbers]
        problems += [f"account {n} has no user" for n in numbers if n not in owned]
        if len(set(owned)) != len(owned):
            problems.append("an account belongs to more than one user")
        marks = {
            quote.symbol: quote.mark if quote.mark is not None else (quote.bid + quote.ask) / 2
            for quote in self.quotes
        }
        catalog = self.catalog()
        for account in self.accounts:
            number = account.account_number
            value = account.cash_balance
            for position in account.positions:
                mark = marks.get(position.symbol, position.close_price)
                terms = terms_of(position.symbol, position.instrument_type, catalog)
                if terms is None:
                    problems.append(f"{number}: {position.symbol} is not a known instrument")
                    continue
                if mark is None:
                    problems.append(f"{number}: {position.symbol} has no quote nor close-price")
                    continue
                value += nlv_contribution(
                    position.instrument_type,
                    position.quantity,
                    mark,
                    position.average_open_price,
                    terms.multiplier,
                )
            stated = account.net_liquidating_value
            if stated is not None and stated != value:
                problems.append(
                    f"{number}: net-liquidating-value {stated} but cash + positions = {value}"
                )
        if problems:
            raise ValueError("; ".join(problems))
        return self


class SeedError(Exception):
    """The seed file is missing or invalid; the message lists every problem."""


def load_seed(path: Path) -> SeedFile:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise SeedError(f"cannot read paper accounts file {path}: {error.strerror}") from None
    try:
        return SeedFile.model_validate(json.loads(text))
    except json.JSONDecodeError as error:
        raise SeedError(f"{path}: not JSON: {error}") from None
    except ValidationError as error:
        lines = [f"{path}: invalid paper accounts file ({error.error_count()} problem(s)):"]
        for item in error.errors(include_url=False, include_input=False):
            where = ".".join(str(part) for part in item["loc"]) or "(root)"
            message = "unknown key" if item["type"] == "extra_forbidden" else item["msg"]
            lines.append(f"  - {where}: {message}")
        raise SeedError("\n".join(lines)) from None


def build_book(seed: SeedFile, *, clock: Clock = utc_now) -> PaperBook:
    """A fresh book holding the seed's state (each call is independent)."""
    now = clock()
    opened = datetime(2024, 1, 2, 14, 30, tzinfo=UTC)
    users = [
        User(
            login=u.login,
            password=u.password,
            email=u.email,
            username=u.username,
            external_id=u.external_id,
            first_name=u.first_name,
            last_name=u.last_name,
            account_numbers=list(u.accounts),
            oauth_clients=[
                OAuthClient(c.client_id, c.client_secret, c.refresh_token) for c in u.oauth_clients
            ],
        )
        for u in seed.users
    ]
    owners = {number: user.login for user in seed.users for number in user.accounts}
    quotes = [
        Quote(q.symbol, q.instrument_type, q.bid, q.ask, now, mark_override=q.mark, close=q.close)
        for q in seed.quotes
    ]
    marks = {quote.symbol: quote.mark for quote in quotes}
    catalog = seed.catalog()
    accounts = []
    for a in seed.accounts:
        account = Account(
            a.account_number,
            a.nickname,
            a.margin_or_cash,
            owners[a.account_number],
            opened,
            a.cash_balance,
        )
        for p in a.positions:
            terms = terms_of(p.symbol, p.instrument_type, catalog)
            if terms is None:  # SeedFile validation refuses unknown instruments
                raise SeedError(f"{p.symbol} is not a known {p.instrument_type}")
            account.positions[p.symbol] = Position(
                account_number=a.account_number,
                symbol=p.symbol,
                instrument_type=p.instrument_type,
                quantity=p.quantity,
                average_open_price=p.average_open_price,
                multiplier=terms.multiplier,
                underlying_symbol=terms.underlying_symbol,
                created_at=opened,
                updated_at=opened,
                close_price=p.close_price
                if p.close_price is not None
                else marks.get(p.symbol, p.average_open_price),
            )
        accounts.append(account)
    return PaperBook(users=users, accounts=accounts, quotes=quotes, clock=clock, catalog=catalog)


def load_book(path: Path, *, clock: Clock = utc_now) -> PaperBook:
    return build_book(load_seed(path), clock=clock)
