"""The paper broker's in-memory book: users, tokens, accounts, quotes, orders, faults and the
log of requests received; the instrument catalog it trades against.

Everything runs on one event loop and no method awaits, so each operation is atomic. The
order lifecycle lives in ``trading``; this module holds the state and the simple operations.
"""

from __future__ import annotations

import itertools
import secrets
from collections import deque
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Literal
from zoneinfo import ZoneInfo

from gatekeeper.paper import trading
from gatekeeper.paper.catalog import DEFAULT_CATALOG, Catalog
from gatekeeper.paper.errors import (
    InvalidCredentials,
    InvalidRequest,
    NotPermitted,
    RecordNotFound,
    TokenInvalid,
)
from gatekeeper.paper.instruments import infer_type
from gatekeeper.paper.model import (
    Account,
    ComplexOrder,
    Fault,
    PaperOrder,
    Position,
    Quote,
    ReceivedOrder,
    SeenRequest,
    Token,
    User,
)
from gatekeeper.paper.valuation import Valuation, value_account

ACCESS_TOKEN_LIFETIME = timedelta(seconds=900)
RECEIVED_LOG_SIZE = 50_000
SEEN_LOG_SIZE = 10_000
SESSION_LIFETIME = timedelta(hours=24)
NEW_YORK = ZoneInfo("America/New_York")

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


class PaperBook:
    """All of the paper broker's state, with the operations its HTTP API and tests use."""

    def __init__(
        self,
        *,
        users: list[User],
        accounts: list[Account],
        quotes: list[Quote],
        clock: Clock = utc_now,
        catalog: Catalog = DEFAULT_CATALOG,
    ) -> None:
        self.clock = clock
        self.catalog = catalog
        self.users: dict[str, User] = {user.login: user for user in users}
        self.accounts: dict[str, Account] = {
            account.account_number: account for account in accounts
        }
        self.quotes: dict[str, Quote] = {quote.symbol: quote for quote in quotes}
        self.tokens: dict[str, Token] = {}
        self.faults: list[Fault] = []
        # Bounded: a long-running demo or benchmark must not grow without limit.
        self.received: deque[ReceivedOrder] = deque(maxlen=RECEIVED_LOG_SIZE)
        self.seen: deque[SeenRequest] = deque(maxlen=SEEN_LOG_SIZE)
        self.order_ids = itertools.count(100_001)
        self.fill_ids = itertools.count(1)
        self.received_seq = itertools.count(1)
        self.transaction_ids = itertools.count(1)
        self.start_of_day: dict[str, Valuation] = {}
        self.start_of_day_date = self.trading_date()
        self.reset_start_of_day()

    def now(self) -> datetime:
        return self.clock()

    def trading_date(self) -> date:
        """Today in New York, by the book's clock."""
        return self.now().astimezone(NEW_YORK).date()

    def reset_start_of_day(self) -> None:
        """Take the current balances as the day's opening ones (``balance-snapshots`` BOD)."""
        self.start_of_day = {number: self.valuation(number) for number in self.accounts}
        self.start_of_day_date = self.trading_date()

    def start_of_day_of(self, account_number: str, day: date) -> Valuation | None:
        """The BOD snapshot of ``day``: only today's exists (None for another day, or when a
        test removed it). A new New York day starts when first asked for: its opening
        balances are the balances then."""
        if self.trading_date() != self.start_of_day_date:
            self.reset_start_of_day()
        if day != self.start_of_day_date:
            return None
        return self.start_of_day.get(account_number)

    # --- authentication -------------------------------------------------------------------

    def _issue(self, login: str, kind: Literal["oauth", "session"], lifetime: timedelta) -> Token:
        token = Token(secrets.token_urlsafe(24), login, kind, self.now() + lifetime)
        self.tokens[token.value] = token
        return token

    def issue_oauth_token(
        self,
        *,
        grant_type: object,
        refresh_token: object,
        client_secret: object,
        client_id: object = None,
    ) -> Token:
        """Exchange a refresh token (and the client's secret) for a 15-minute access token."""
        if grant_type != "refresh_token":
            raise InvalidRequest("grant_type must be refresh_token")
        for user in self.users.values():
            for client in user.oauth_clients:
                if (
                    isinstance(refresh_token, str)
                    and isinstance(client_secret, str)
                    and secrets.compare_digest(client.refresh_token, refresh_token)
                    and secrets.compare_digest(client.client_secret, client_secret)
                    and client_id in (None, "", client.client_id)
                ):
                    return self._issue(user.login, "oauth", ACCESS_TOKEN_LIFETIME)
        raise InvalidCredentials("Invalid refresh token or client secret")

    def create_session(
        self, *, login: object, password: object, remember_token: object, remember_me: bool
    ) -> tuple[User, Token, str | None]:
        """Legacy login by password or single-use remember token; returns the new tokens."""
        user = self.users.get(login) if isinstance(login, str) else None
        ok = user is not None and (
            (isinstance(password, str) and secrets.compare_digest(user.password, password))
            or (isinstance(remember_token, str) and remember_token in user.remember_tokens)
        )
        if user is None or not ok:
            raise InvalidCredentials("Invalid login, please check your username and password.")
        if isinstance(remember_token, str):
            user.remember_tokens.discard(remember_token)
        token = self._issue(user.login, "session", SESSION_LIFETIME)
        new_remember: str | None = None
        if remember_me:
            new_remember = secrets.token_urlsafe(30)
            user.remember_tokens.add(new_remember)
        return user, token, new_remember

    def _token(self, authorization: str | None) -> Token:
        value = (authorization or "").strip()
        if value.lower().startswith("bearer "):
            value = value[7:].strip()
        token = self.tokens.get(value) if value else None
        if token is None or token.expires_at <= self.now():
            raise TokenInvalid("This token is invalid or has expired")
        return token

    def authenticate(self, authorization: str | None) -> User:
        """The user behind ``Authorization: Bearer <access token>`` or a bare session token."""
        return self.users[self._token(authorization).login]

    def end_session(self, authorization: str | None) -> None:
        del self.tokens[self._token(authorization).value]

    def accounts_of(self, user: User) -> list[Account]:
        return [self.accounts[number] for number in user.account_numbers if number in self.accounts]

    def account_for(self, user: User, account_number: str) -> Account:
        account = self.accounts.get(account_number)
        if account is None:
            raise RecordNotFound(f"Account {account_number} not found")
        if account_number not in user.account_numbers:
            raise NotPermitted("User not permitted access")
        return account

    # --- quotes ---------------------------------------------------------------------------

    def set_quote(
        self,
        symbol: str,
        bid: Decimal,
        ask: Decimal,
        *,
        mark: Decimal | None = None,
        instrument_type: str | None = None,
        last: Decimal | None = None,
        close: Decimal | None = None,
        crossed: bool = False,
    ) -> Quote:
        """Set (or replace) a quote; working orders it makes marketable fill at once.

        A crossed quote (bid above ask) is accepted: feeds do send them, and the gatekeeper
        must refuse to price from one (``crossed=True`` says the caller means it)."""
        if bid < 0 or ask < 0 or (ask and bid > ask and not crossed):
            raise InvalidRequest("need 0 <= bid <= ask (or crossed: true)")
        previous = self.quotes.get(symbol)
        kind = instrument_type or (previous.instrument_type if previous else None)
        if kind is None:
            kind = infer_type(symbol, self.catalog)
        quote = Quote(symbol, kind, bid, ask, self.now(), mark, last, close)
        if close is None and previous is not None:
            quote.close = previous.close
        self.quotes[symbol] = quote
        trading.reevaluate(self, symbol)
        return quote

    def remove_quote(self, symbol: str) -> bool:
        """Make a price unavailable; returns whether there was one."""
        return self.quotes.pop(symbol, None) is not None

    # --- faults ---------------------------------------------------------------------------

    def add_fault(
        self,
        path_prefix: str,
        *,
        status: int | None = None,
        delay_seconds: float = 0.0,
        method: str | None = None,
        times: int | None = None,
        after: bool = False,
    ) -> Fault:
        """Fail (``status``) and/or stall (``delay_seconds``) requests under ``path_prefix``.

        ``method`` limits it to one HTTP method, ``times`` to the next N matching requests;
        ``after`` lets the broker handle the request before the fault applies to the answer.
        """
        if status is None and delay_seconds <= 0:
            raise InvalidRequest("a fault needs a status, a delay or both")
        if status is not None and not 400 <= status <= 599:
            raise InvalidRequest("status must be 400-599")
        fault = Fault(path_prefix, status, delay_seconds, method, times, after)
        self.faults = [f for f in self.faults if (f.path_prefix, f.method) != (path_prefix, method)]
        self.faults.append(fault)
        return fault

    def clear_faults(self, path_prefix: str | None = None) -> None:
        self.faults = [
            f for f in self.faults if path_prefix is not None and f.path_prefix != path_prefix
        ]

    def take_fault(self, method: str, path: str) -> Fault | None:
        """The fault that applies to this request, counting it against ``times``."""
        for fault in self.faults:
            if fault.matches(method, path):
                if fault.remaining is not None:
                    fault.remaining -= 1
                return fault
        return None

    # --- money ----------------------------------------------------------------------------

    def mark_of(self, position: Position) -> Decimal:
        quote = self.quotes.get(position.symbol)
        if quote is not None:
            return quote.mark
        return position.close_price or position.average_open_price

    def valuation(self, account_number: str) -> Valuation:
        account = self.accounts[account_number]
        reserved = sum(
            (
                max(Decimal(0), trading.working_cost(self, order))
                for order in account.orders.values()
            ),
            Decimal(0),
        )
        return value_account(account, self.mark_of, reserved)

    def set_cash(self, account_number: str, cash: Decimal) -> None:
        """Test control: set an account's cash balance (NLV moves with it)."""
        self.accounts[account_number].cash = cash

    # --- request log --------------------------------------------------------------------

    def record_request(self, method: str, raw_path: str) -> None:
        """Note a request to the API as it arrived (``/__paper/`` controls are not noted)."""
        self.seen.append(SeenRequest(method, raw_path, self.now()))

    def seen_requests(self) -> list[SeenRequest]:
        """API requests received, oldest first; the last SEEN_LOG_SIZE are kept."""
        return list(self.seen)

    # --- orders (lifecycle in trading) ----------------------------------------------------

    def received_orders(self) -> list[ReceivedOrder]:
        """Order requests that reached the broker, oldest first: placed, complex or replace
        (never a dry run), accepted or refused; the last RECEIVED_LOG_SIZE are kept."""
        return list(self.received)

    def clear_received_orders(self) -> None:
        self.received.clear()

    def record_received(
        self, kind: Literal["order", "complex-order", "replace"], account_number: str, body: object
    ) -> ReceivedOrder:
        entry = ReceivedOrder(
            seq=next(self.received_seq),
            kind=kind,
            account_number=account_number,
            received_at=self.now(),
            body=dict(body) if isinstance(body, Mapping) else {"raw": body},
        )
        self.received.append(entry)
        return entry

    def place_order(
        self, account: Account, body: object, *, dry_run: bool = False
    ) -> trading.OrderResult:
        return trading.place_order(self, account, body, dry_run=dry_run)

    def place_complex_order(
        self, account: Account, body: object, *, dry_run: bool = False
    ) -> trading.ComplexResult:
        return trading.place_complex_order(self, account, body, dry_run=dry_run)

    def replace_order(self, account: Account, order_id: int, body: object) -> PaperOrder:
        return trading.replace_order(self, account, order_id, body)

    def dry_run_replace(self, account: Account, order_id: int, body: object) -> trading.OrderResult:
        return trading.dry_run_replace(self, account, order_id, body)

    def cancel_order(self, account: Account, order_id: int) -> PaperOrder:
        return trading.cancel_order(self, account, order_id)

    def cancel_complex_order(self, account: Account, complex_id: int) -> ComplexOrder:
        return trading.cancel_complex_order(self, account, complex_id)

    def order(self, account: Account, order_id: int) -> PaperOrder:
        found = account.orders.get(order_id)
        if found is None:
            raise RecordNotFound(f"Order {order_id} not found")
        return found

    def complex_order(self, account: Account, complex_id: int) -> ComplexOrder:
        found = account.complex_orders.get(complex_id)
        if found is None:
            raise RecordNotFound(f"Complex order {complex_id} not found")
        return found
