"""What ``evaluate()`` returns: the verdict, every violation, notes and the figures."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from enum import StrEnum
from typing import Any

from gatekeeper.core.codes import Code

_CENT = Decimal("0.01")
HUNDRED = Decimal(100)


def money(amount: Decimal) -> str:
    """``150000`` → ``150,000.00`` (half-up)."""
    return f"{amount.quantize(_CENT, rounding=ROUND_HALF_UP):,}"


def percent(amount: Decimal) -> str:
    """``7.265`` → ``7.27%`` (half-up)."""
    return f"{amount.quantize(_CENT, rounding=ROUND_HALF_UP)}%"


class Verdict(StrEnum):
    """Forward the order or reject it."""

    ALLOW = "allow"
    REJECT = "reject"


@dataclass(frozen=True, slots=True)
class Violation:
    """One broken rule: stable code, human message, and the exact inputs it used."""

    code: Code
    message: str
    inputs: Mapping[str, str] = field(default_factory=dict)
    protection_id: str = ""


@dataclass(frozen=True, slots=True)
class Note:
    """A fact recorded with the decision that does not reject (e.g. ``protection_inactive``)."""

    code: Code
    message: str
    protection_id: str = ""


@dataclass(frozen=True, slots=True)
class StopTrigger:
    """Instruction to the caller: activate the emergency stop of these protections."""

    protection_ids: tuple[str, ...]
    reason: str
    actor: str = "system"


@dataclass(frozen=True, slots=True)
class GroupFigures:
    """One touched group: its risk before and after the order and the worst case after."""

    risk_before: Decimal | None
    risk_after: Decimal | None
    unbounded: bool
    worst_case: str | None


@dataclass(frozen=True, slots=True)
class Figures:
    """Computed figures for the audit row and the status route (``None`` = not computable).

    Percentages are exact (not rounded) percentages of NLV. Exposure is Σ Risk(group);
    ``cash_after`` is the free cash after the order; ``concentration_after`` and ``groups``
    cover the groups the order touches (worst alternative of a complex order).
    """

    nlv: Decimal
    cash_balance: Decimal
    order_value: Decimal | None = None
    order_value_pct: Decimal | None = None
    order_debit: Decimal | None = None
    cash_after: Decimal | None = None
    cash_after_pct: Decimal | None = None
    exposure_before: Decimal | None = None
    exposure_after: Decimal | None = None
    exposure_after_pct: Decimal | None = None
    concentration_after: Mapping[str, Decimal] = field(default_factory=dict)
    largest_concentration_underlying: str | None = None
    largest_concentration: Decimal | None = None
    largest_concentration_pct: Decimal | None = None
    day_pnl_pct: Decimal | None = None
    groups: Mapping[str, GroupFigures] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Decision:
    """The outcome of ``evaluate()``.

    ``trade_count`` is what the order adds to today's trade count once the broker accepts it
    (0 for dry-runs). ``strict_position_effect`` asks the caller to forward the order with
    ``advanced-instructions.strict-position-effect-validation: true``. ``trigger_stop`` asks
    the caller to persist an emergency stop.
    """

    verdict: Verdict
    violations: tuple[Violation, ...]
    notes: tuple[Note, ...]
    figures: Figures
    trade_count: int
    risk_reducing: bool
    strict_position_effect: bool
    trigger_stop: StopTrigger | None
    evaluated_at: datetime

    @property
    def allowed(self) -> bool:
        """Whether the order may be forwarded."""
        return self.verdict is Verdict.ALLOW

    @property
    def codes(self) -> tuple[Code, ...]:
        """Violation codes, each once, in the order found."""
        return tuple(dict.fromkeys(v.code for v in self.violations))

    @property
    def note_codes(self) -> tuple[Code, ...]:
        """Note codes, each once, in the order found."""
        return tuple(dict.fromkeys(n.code for n in self.notes))

    @property
    def message(self) -> str:
        """One line for the bot: every violation's message, or ``allowed``."""
        if not self.violations:
            return "allowed"
        return "; ".join(dict.fromkeys(v.message for v in self.violations))

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready view for the audit row and the status route (decimals as strings)."""
        figures = {name: _text(getattr(self.figures, name)) for name in _FIGURES}
        stop = self.trigger_stop
        return {
            "verdict": self.verdict.value,
            "violations": [
                {
                    "code": v.code.value,
                    "message": v.message,
                    "inputs": dict(v.inputs),
                    "protection_id": v.protection_id,
                }
                for v in self.violations
            ],
            "notes": [
                {"code": n.code.value, "message": n.message, "protection_id": n.protection_id}
                for n in self.notes
            ],
            "figures": figures,
            "trade_count": self.trade_count,
            "risk_reducing": self.risk_reducing,
            "strict_position_effect": self.strict_position_effect,
            "trigger_stop": None
            if stop is None
            else {
                "protection_ids": list(stop.protection_ids),
                "reason": stop.reason,
                "actor": stop.actor,
            },
            "evaluated_at": self.evaluated_at.isoformat(),
        }


# The fields, in order, by dataclasses (a compiled core's classes have no ``__slots__``).
_FIGURES = tuple(f.name for f in fields(Figures))
_GROUP_FIGURES = tuple(f.name for f in fields(GroupFigures))


def _text(value: object) -> object:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, Mapping):
        return {str(k): _text(v) for k, v in value.items()}
    if isinstance(value, GroupFigures):
        return {name: _text(getattr(value, name)) for name in _GROUP_FIGURES}
    return value
