"""Where the trading day started, for the daily-loss limit: the broker's beginning-of-day
balance snapshot and the day's deposits and withdrawals, read with the bot's own credentials
(the headers, timeouts and error mapping of :mod:`gatekeeper.adapters.broker_read`).

- **Start of day**: ``GET /accounts/{a}/balance-snapshots?time-of-day=BOD&snapshot-date=DAY``,
  its item for that date; recorded in Postgres (``account_day_start``, source ``broker_bod``)
  and then never asked again that day. While the broker has none (404, or no item for the
  day), the decision records its first sight instead (source ``first_sight``, in the locked
  decision, :func:`gatekeeper.adapters.decisions.decision_inputs`) and the broker is asked
  again at most every ``risk.start_of_day_retry_seconds`` (a Redis entry that expires then,
  shared by the replicas; each process remembers until when, so the orders in between make
  no Redis round trip for it); once it has one, its figure wins.
- **Deposits**: ``GET /accounts/{a}/transactions?types[]=Money Movement&start-date=DAY&
  end-date=DAY``, the sub-types ``Deposit``, ``Withdrawal`` and ``Transfer`` netted (money in
  +, out -), cached in Redis for ``risk.money_movements_ttl_seconds`` (the entry names when
  it expires, so each process serves it from memory until then: no Redis round trip per
  order). The other Money Movement sub-types (interest, fees, dividends, a future's daily mark
  to market, balance adjustments) are the account's own gains and losses and stay in the
  day's P&L. How an answer is read: :mod:`gatekeeper.adapters.day_start_answers`.

The day is the America/New_York date of this host's clock; the locked decision uses the
database's, and when the two differ (the request straddles midnight) :meth:`within_trading_day`
gathers everything again for the database's day: no baseline of another day is ever used.

A broker failure is StateUnavailable (a 401/403 BrokerAuthFailed), an answer not understood
AccountStateInvalid, a Redis error CacheUnavailable: the order path fails closed.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any, TypeVar

import aiohttp
import asyncpg
from redis.asyncio import Redis
from redis.exceptions import RedisError

from gatekeeper.adapters import decisions as db
from gatekeeper.adapters.broker_read import BrokerReadError, get_data, read_timeout
from gatekeeper.adapters.day_start_answers import answer_decimal, answer_items, money_moved
from gatekeeper.core.tradingday import trading_day
from gatekeeper.errors import CacheUnavailable, StateUnavailable
from gatekeeper.metrics import Metrics
from gatekeeper.settings import Settings

log = logging.getLogger(__name__)

T = TypeVar("T")
K = TypeVar("K")
V = TypeVar("V")

MISSING_KEY = "gk:day-start-missing:v1:{account}:{day}"
DEPOSITS_KEY = "gk:money-movements:v1:{account}:{day}"
PER_PAGE = 250
MAX_PAGES = 40  # 10,000 money movements in a day: beyond that, refuse rather than guess
# Gathering the inputs again for the database's day: more than twice only if the day changed
# again while deciding.
MAX_DAY_ATTEMPTS = 3
MAX_REMEMBERED = 4096

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class DayStart:
    """What the decision of ``day`` needs besides the account state: the broker's
    beginning-of-day NLV (None: it has none, the first sight stands in) and the day's net
    deposits (deposits - withdrawals) as the broker lists them."""

    day: date
    broker_nlv: Decimal | None
    net_deposits: Decimal


class DayStartSource:
    """Fetches, records and caches the start of each account's trading day; one per engine."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        redis: Redis,
        pool: asyncpg.Pool,
        settings: Settings,
        metrics: Metrics,
        *,
        clock: Clock = utc_now,
    ) -> None:
        self._session = session
        self._redis = redis
        self._pool = pool
        self._upstream = settings.proxy.upstream_url
        self._risk = settings.risk
        self._metrics = metrics
        self._timeout = read_timeout(settings)
        self._clock = clock
        # (account, day) -> the broker's figure, once recorded: it never changes that day.
        self._recorded: dict[tuple[str, date], Decimal] = {}
        # (account, day) -> the net deposits cached in Redis and when its entry expires there
        # (wall clock, written into the entry): served from here until then.
        self._deposits: dict[tuple[str, date], tuple[Decimal, float]] = {}
        # (account, day) -> until when (wall clock) the broker is not asked again for a
        # snapshot it did not have: the expiry of the Redis entry that says so.
        self._missing: dict[tuple[str, date], float] = {}

    async def within_trading_day(
        self,
        account: str,
        client_headers: Mapping[str, str],
        decide: Callable[[DayStart], Awaitable[T]],
        *,
        operator_check: bool = False,
    ) -> T:
        """``decide`` with the start of today (New York date of this host's clock); if the
        locked decision finds the database in another day (TradingDayChanged, nothing
        recorded), again with that day's."""
        day = trading_day(self._clock())
        for _ in range(MAX_DAY_ATTEMPTS):
            start = await self.load(account, day, client_headers, operator_check=operator_check)
            try:
                return await decide(start)
            except db.TradingDayChanged as changed:
                log.info("trading day changed while deciding (%s -> %s)", day, changed.actual)
                day = changed.actual
        raise StateUnavailable(
            "state_unavailable: the trading day changed while the order was being decided;"
            " send it again"
        )

    async def load(
        self,
        account: str,
        day: date,
        client_headers: Mapping[str, str],
        *,
        operator_check: bool = False,
    ) -> DayStart:
        """The broker's start of ``day`` (fetched and recorded once) and its net deposits.
        An operator's check without broker credentials uses what is recorded or cached."""
        can_fetch = not operator_check or bool(client_headers.get("Authorization"))
        broker_nlv = await self._broker_nlv(account, day, client_headers, can_fetch)
        deposits = await self._net_deposits(account, day, client_headers, can_fetch)
        return DayStart(day, broker_nlv, deposits)

    # -- start of day ------------------------------------------------------------------------

    async def _broker_nlv(
        self, account: str, day: date, client_headers: Mapping[str, str], can_fetch: bool
    ) -> Decimal | None:
        known = self._recorded.get((account, day))
        if known is not None:
            return known
        if time.time() < self._missing.get((account, day), 0.0):
            return None  # asked recently (this process knows until when): the broker had none
        missing = MISSING_KEY.format(account=account, day=day.isoformat())
        try:
            left_ms = await self._redis.pttl(missing)
        except RedisError as error:
            raise self._cache_error(error) from None
        if left_ms > 0 or left_ms == -1:  # -1: an entry without expiry (not ours): believed
            if left_ms > 0:
                _remember(self._missing, (account, day), time.time() + left_ms / 1000)
            return None  # asked recently: the broker had none
        async with self._pool.acquire() as conn:
            recorded = await db.broker_start_of_day(conn, account, day)
        if recorded is None and can_fetch:
            fetched = await self._fetch_snapshot(account, day, client_headers)
            if fetched is None:
                retry = self._risk.start_of_day_retry_seconds
                await self._set(missing, b"1", retry)
                _remember(self._missing, (account, day), time.time() + retry)
                return None
            async with self._pool.acquire() as conn:
                recorded = await db.record_broker_start_of_day(conn, account, day, fetched)
        if recorded is not None:
            _remember(self._recorded, (account, day), recorded)
        return recorded

    async def _fetch_snapshot(
        self, account: str, day: date, client_headers: Mapping[str, str]
    ) -> Decimal | None:
        """The NLV of the broker's BOD snapshot of ``day``; None when it has none."""
        query = [
            ("time-of-day", "BOD"),
            ("snapshot-date", day.isoformat()),
            ("currency", "USD"),
        ]
        try:
            data = await self._get(account, "balance-snapshots", client_headers, query)
        except BrokerReadError as error:
            if error.status == 404:
                return None
            raise self._broker_error(error.what) from None
        for item in answer_items(data, "balance-snapshots"):
            if (
                item.get("snapshot-date") == day.isoformat()
                and item.get("time-of-day", "BOD") == "BOD"
                and item.get("account-number", account) == account
            ):
                return answer_decimal(item, "net-liquidating-value", "balance snapshot")
        return None  # no snapshot of that day: never one of another day

    # -- deposits and withdrawals ------------------------------------------------------------

    async def _net_deposits(
        self, account: str, day: date, client_headers: Mapping[str, str], can_fetch: bool
    ) -> Decimal:
        known = self._deposits.get((account, day))
        if known is not None and time.time() < known[1]:
            return known[0]  # what Redis holds until the same moment: no round trip
        key = DEPOSITS_KEY.format(account=account, day=day.isoformat())
        try:
            cached = await self._redis.get(key)
        except RedisError as error:
            raise self._cache_error(error) from None
        if cached is not None:
            net, expires_at = _cached_deposits(cached)
            if expires_at is not None:
                _remember(self._deposits, (account, day), (net, expires_at))
            return net
        if not can_fetch:
            raise StateUnavailable(
                f"state_unavailable: the deposits and withdrawals of account {account} today"
                " are not cached, and no broker credentials were given to fetch them"
            )
        net = await self._fetch_deposits(account, day, client_headers)
        ttl = self._risk.money_movements_ttl_seconds
        expires_at = time.time() + ttl
        await self._set(key, f"{net}|{expires_at:.3f}".encode(), ttl)
        _remember(self._deposits, (account, day), (net, expires_at))
        return net

    async def _fetch_deposits(
        self, account: str, day: date, client_headers: Mapping[str, str]
    ) -> Decimal:
        net = Decimal(0)
        for page in range(MAX_PAGES):
            query = [
                ("types[]", "Money Movement"),
                ("start-date", day.isoformat()),
                ("end-date", day.isoformat()),
                ("per-page", str(PER_PAGE)),
                ("page-offset", str(page)),
            ]
            try:
                data = await self._get(account, "transactions", client_headers, query)
            except BrokerReadError as error:
                raise self._broker_error(error.what) from None
            items = answer_items(data, "transactions")
            net += sum((money_moved(item, day) for item in items), Decimal(0))
            if len(items) < PER_PAGE:
                return net
        raise self._broker_error(f"more than {MAX_PAGES * PER_PAGE} money movements")

    # -- plumbing ----------------------------------------------------------------------------

    async def _get(
        self,
        account: str,
        what: str,
        client_headers: Mapping[str, str],
        query: list[tuple[str, str]],
    ) -> Any:
        return await get_data(
            self._session,
            f"{self._upstream}/accounts/{account}/{what}",
            client_headers,
            self._timeout,
            label=what,
            query=query,
        )

    async def _set(self, key: str, value: bytes, ttl_seconds: float) -> None:
        try:
            await self._redis.set(key, value, px=max(1, int(ttl_seconds * 1000)))
        except RedisError as error:
            raise self._cache_error(error) from None

    def _broker_error(self, what: str) -> StateUnavailable:
        self._metrics.state_fetch_errors.labels("broker").inc()
        return StateUnavailable(
            f"state_unavailable: the start of the trading day could not be read from the"
            f" broker ({what})"
        )

    def _cache_error(self, error: RedisError) -> CacheUnavailable:
        self._metrics.state_fetch_errors.labels("cache").inc()
        return CacheUnavailable(
            f"cache_unavailable: the start-of-day cache (Redis) failed ({type(error).__name__})"
        )


def _cached_deposits(raw: bytes | str) -> tuple[Decimal, float | None]:
    """A cached deposits entry: ``net|expires_at`` (Unix seconds), or ``net`` alone as
    written before the expiry was (not kept in process then: its expiry is unknown)."""
    text = raw.decode() if isinstance(raw, bytes) else raw
    net, _, expires_at = text.partition("|")
    return Decimal(net), float(expires_at) if expires_at else None


def _remember(memo: dict[K, V], key: K, value: V) -> None:
    """``memo[key] = value``, the memo cleared first when it holds MAX_REMEMBERED entries."""
    if len(memo) >= MAX_REMEMBERED and key not in memo:
        memo.clear()
    memo[key] = value
