"""An order's fingerprint: the same for a retry with or without identifiers, and the same
across releases (decision rows keep it: a retry that arrives across an upgrade must still be
recognised), so two fingerprints of earlier releases are pinned here."""

from __future__ import annotations

from uuid import UUID

from gatekeeper.order_identity import dump, identify

PLAIN = (
    b'{"time-in-force":"Day","order-type":"Limit","price":150.10,"price-effect":"Debit",'
    b'"legs":[{"instrument-type":"Equity","symbol":"AAPL","quantity":1,"action":"Buy to Open"}]}'
)
OTOCO = (
    b'{"type":"OTOCO","trigger-order":{"order-type":"Limit","price":150.10,'
    b'"external-identifier":"t1","legs":[{"symbol":"AAPL","quantity":1.0,'
    b'"action":"Buy to Open","instrument-type":"Equity"}]},"orders":[{"order-type":"Stop",'
    b'"stop-trigger":140.00,"legs":[{"symbol":"AAPL","quantity":1,"action":"Sell to Close",'
    b'"instrument-type":"Equity"}]}]}'
)
DECISION = UUID(int=1)


def test_fingerprints_are_those_of_earlier_releases() -> None:
    plain = identify(PLAIN, "order", DECISION, complex_order=False)[1]
    otoco = identify(OTOCO, "complex_order", DECISION, complex_order=True)[1]
    assert plain.fingerprint == "889717cdf9c4ee99691b770abcba12fa3ea9d9fccf91c391e9265790f8adbc2a"
    assert otoco.fingerprint == "4a5085b29c623794d626146838b61c05c14b9018516dae17d48930f42fd097d3"


def test_identifiers_are_assigned_and_left_out_of_the_fingerprint() -> None:
    data, otoco = identify(OTOCO, "complex_order", DECISION, complex_order=True)
    assert otoco.client_identifiers == ("t1",)
    assert otoco.external_identifiers == ("t1", f"gk-{DECISION}-1")
    assert data["orders"][0]["external-identifier"] == f"gk-{DECISION}-1"
    # The body as forwarded, identifiers and all, is the same submission.
    again = identify(dump(data).encode(), "complex_order", UUID(int=2), complex_order=True)[1]
    assert again.fingerprint == otoco.fingerprint
    assert again.external_identifiers == otoco.external_identifiers
    # Another route is another submission.
    assert identify(OTOCO, "order", DECISION, complex_order=True)[1].fingerprint != (
        otoco.fingerprint
    )


def test_numbers_are_forwarded_as_written() -> None:
    data, _ = identify(PLAIN, "order", DECISION, complex_order=False)
    assert '"price":150.10' in dump(data)
