"""Today's decisions for the console: the filters a page may ask for, checked, and the rows
from gatekeeper.adapters.decision_log (the one place with that SQL), limited to the accounts
the viewer may see (admins: every account)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, time
from typing import Any
from uuid import UUID

from gatekeeper.adapters import decision_log
from gatekeeper.adapters import decisions as db
from gatekeeper.adapters.pg import Conn
from gatekeeper.auth import Permission, Principal
from gatekeeper.core import trading_day
from gatekeeper.core.tradingday import NEW_YORK
from gatekeeper.errors import BadRequest, NotFound

PAGE_SIZE = 50
VERDICTS = ("allow", "reject", "error")
_ACCOUNT = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
_CODE = re.compile(r"[a-z][a-z0-9_]{0,63}")


class InvalidFilter(BadRequest):
    code = "invalid_filter"


class DecisionNotFound(NotFound):
    code = "decision_not_found"


@dataclass(frozen=True)
class Filters:
    """The table's filters; ``None``: not filtered on."""

    verdict: str | None = None
    code: str | None = None
    account: str | None = None
    before_id: int | None = None

    @classmethod
    def of(cls, query: Mapping[str, str]) -> Filters:
        """Read from a query string; a value of the wrong shape is refused (400)."""
        values = {name: (query.get(name) or "").strip() or None for name in
                  ("verdict", "code", "account", "before")}  # fmt: skip
        if values["verdict"] is not None and values["verdict"] not in VERDICTS:
            raise InvalidFilter("verdict: one of allow, reject, error")
        if values["code"] is not None and _CODE.fullmatch(values["code"]) is None:
            raise InvalidFilter("code: a rejection code such as max_single_trade")
        if values["account"] is not None and _ACCOUNT.fullmatch(values["account"]) is None:
            raise InvalidFilter("account: not an account number")
        before = values["before"]
        if before is not None and not (before.isdigit() and len(before) <= 18):
            raise InvalidFilter("before: a decision row id")
        return cls(values["verdict"], values["code"], values["account"],
                   None if before is None else int(before))  # fmt: skip

    def query(self, before_id: int | None = None) -> dict[str, str]:
        """The filters as a query string's values (for links and the form)."""
        given = {"verdict": self.verdict, "code": self.code, "account": self.account}
        if before_id is not None:
            given["before"] = str(before_id)
        return {name: value for name, value in given.items() if value}


async def start_of_today(conn: Conn) -> datetime:
    """Midnight in New York of the trading day (by the database's clock)."""
    day = trading_day(await db.database_now(conn))
    return datetime.combine(day, time(0), tzinfo=NEW_YORK)


async def todays_decisions(
    conn: Conn, principal: Principal, filters: Filters, visible: list[str]
) -> list[decision_log.DecisionListItem]:
    """A page of today's decisions matching ``filters``, newest first."""
    since = await start_of_today(conn)
    every = principal.can(Permission.READ_ALL)
    if filters.account is not None:
        if not every and filters.account not in visible:
            raise InvalidFilter(f"account {filters.account}: not one of your accounts")
        accounts: list[str | None] = [filters.account]
    else:
        accounts = [None] if every else list(visible)
    found: list[decision_log.DecisionListItem] = []
    for account in accounts:
        found.extend(
            await decision_log.list_decisions(
                conn, account_id=account, since=since, verdict=filters.verdict,
                code=filters.code, limit=PAGE_SIZE, before_id=filters.before_id,
            )
        )  # fmt: skip
    found.sort(key=lambda item: item.id, reverse=True)
    return found[:PAGE_SIZE]


async def one_decision(
    conn: Conn, principal: Principal, decision_id: str, visible: list[str]
) -> dict[str, Any]:
    """One decision in full; 404 if there is none or the viewer may not see its account."""
    try:
        wanted = UUID(decision_id)
    except ValueError:
        raise DecisionNotFound("no such decision") from None
    found = await decision_log.get_decision(conn, wanted)
    if found is None or not (principal.can(Permission.READ_ALL) or found["account_id"] in visible):
        raise DecisionNotFound("no such decision") from None
    return found
