"""The trading day: America/New_York calendar date of an instant (trade counts, start-of-day
NLV). ``now`` always comes from the caller."""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

NEW_YORK = ZoneInfo("America/New_York")


def trading_day(now: datetime) -> date:
    """The America/New_York date of ``now`` (which must be timezone-aware)."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    return now.astimezone(NEW_YORK).date()
