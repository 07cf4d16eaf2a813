"""The pure core: order model, route classification, valuation, risk rules, ``evaluate()``.

Nothing in this package performs I/O, reads the clock or draws random numbers: time comes in
as an argument and account state as an :class:`AccountSnapshot`.
"""

from __future__ import annotations

from gatekeeper.core import risk as _risk
from gatekeeper.core.classify import Route, RouteKind, classify
from gatekeeper.core.codes import Code, ParseCode
from gatekeeper.core.decision import Decision, Figures, Note, StopTrigger, Verdict, Violation
from gatekeeper.core.errors import (
    AccountStateInvalid,
    BodyTooLarge,
    InvalidJson,
    InvalidOrder,
    OrderParseError,
)
from gatekeeper.core.evaluate import EvaluationContext, evaluate
from gatekeeper.core.order import ComplexOrder, Leg, Order, OrderPatch
from gatekeeper.core.parse import (
    apply_replace,
    parse_complex_order,
    parse_complex_order_bytes,
    parse_order,
    parse_order_bytes,
    parse_replace,
    parse_replace_bytes,
)
from gatekeeper.core.payloads import snapshot_from_payloads
from gatekeeper.core.snapshot import (
    DEFAULT_LIMITS,
    AccountSnapshot,
    Limits,
    Position,
    Quote,
    RiskParameters,
    StopMode,
    WorkingOrder,
)
from gatekeeper.core.tradingday import trading_day

COMPILED: bool = not (_risk.__file__ or "").endswith(".py")
"""Whether this install's core was compiled with mypyc (``GATEKEEPER_COMPILE=1 pip install
.``, ``build_support/core_build.py``): the same code, run as C extensions."""

__all__ = [
    "COMPILED",
    "DEFAULT_LIMITS",
    "AccountSnapshot",
    "AccountStateInvalid",
    "BodyTooLarge",
    "Code",
    "ComplexOrder",
    "Decision",
    "EvaluationContext",
    "Figures",
    "InvalidJson",
    "InvalidOrder",
    "Leg",
    "Limits",
    "Note",
    "Order",
    "OrderParseError",
    "OrderPatch",
    "ParseCode",
    "Position",
    "Quote",
    "RiskParameters",
    "Route",
    "RouteKind",
    "StopMode",
    "StopTrigger",
    "Verdict",
    "Violation",
    "WorkingOrder",
    "apply_replace",
    "classify",
    "evaluate",
    "parse_complex_order",
    "parse_complex_order_bytes",
    "parse_order",
    "parse_order_bytes",
    "parse_replace",
    "parse_replace_bytes",
    "snapshot_from_payloads",
    "trading_day",
]
