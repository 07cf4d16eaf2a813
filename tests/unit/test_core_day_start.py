"""The day's P&L excludes its deposits and withdrawals; a first-sight start of day is noted."""

from __future__ import annotations

from gatekeeper.core.codes import Code
from gatekeeper.core.snapshot import StartOfDaySource
from tests.unit.builders import D, account_a, bto, decide, protection_p

P = protection_p()


def test_a_deposit_does_not_mask_a_trading_loss() -> None:
    # Start 100,000.00, +10,000.00 deposited, -5,800.00 traded: NLV 104,200.00.
    snapshot = account_a(nlv=D("104200.00"), day_net_deposits=D("10000.00"))

    decision = decide(bto("AAPL", 1, "150.00"), snapshot, [P])

    assert decision.codes == (Code.MAX_DAILY_LOSS,)
    assert decision.figures.day_pnl_pct == D("-5.8")
    (violation,) = decision.violations
    assert violation.inputs["net_deposits"] == "10000.00"
    assert "net deposits today 10,000.00" in violation.message
    assert decision.trigger_stop is not None
    assert decision.trigger_stop.reason == (
        "max_daily_loss: day P&L -5.80% reached the -5.00% limit "
        "(NLV 104,200.00, start of day 100,000.00, net deposits today 10,000.00)"
    )


def test_a_withdrawal_is_not_a_loss() -> None:
    snapshot = account_a(nlv=D("90000.00"), day_net_deposits=D("-10000.00"))

    decision = decide(bto("AAPL", 1, "150.00"), snapshot, [P])

    assert decision.allowed
    assert decision.figures.day_pnl_pct == 0
    assert decision.trigger_stop is None


def test_the_day_pnl_is_measured_on_the_start_of_day_not_on_the_deposits() -> None:
    # (NLV - deposits - start) / start: -5.00 % exactly is a breach (at or below the limit).
    snapshot = account_a(nlv=D("105000.00"), day_net_deposits=D("10000.00"))

    decision = decide(bto("AAPL", 1, "150.00"), snapshot, [P])

    assert decision.figures.day_pnl_pct == D(-5)
    assert decision.codes == (Code.MAX_DAILY_LOSS,)


def test_a_first_sight_start_of_day_is_noted() -> None:
    snapshot = account_a(start_of_day_source=StartOfDaySource.FIRST_SIGHT)

    decision = decide(bto("AAPL", 1, "150.00"), snapshot, [P])

    assert decision.allowed
    assert decision.note_codes == (Code.START_OF_DAY_FIRST_SIGHT,)
    assert "start of day 100,000.00 is the NLV at the day's first decision" in (
        decision.notes[0].message
    )


def test_the_brokers_start_of_day_needs_no_note() -> None:
    for source in (StartOfDaySource.BROKER_BOD, None):
        decision = decide(bto("AAPL", 1, "150.00"), account_a(start_of_day_source=source), [P])

        assert decision.note_codes == ()
