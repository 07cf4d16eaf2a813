"""The pure core: order model, route classification, valuation, risk rules, ``evaluate()``.

Nothing in this package performs I/O, reads the clock or draws random numbers: time comes in
as an argument and account state as an :class:`~gatekeeper.core.snapshot.AccountSnapshot`.
"""
