"""An order's fingerprint: the same for a retry with or without identifiers, and the same
across releases (decision rows keep it: a retry that arrives across an upgrade must still be
recognised), so two fingerprints of earlier releases are pinned here."""

from __future__ import annotations

import hashlib
import json
from decimal import Decimal
from uuid import UUID

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gatekeeper.order_identity import _dump, _fast_dump, dump, identify, plain_text
from gatekeeper.orderpath.request import forwarded_body

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


# -- the fast writer (orjson) writes what the reference writer (Python's json) writes --------

_NUMBER = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    st.decimals(allow_nan=False, allow_infinity=False, places=4).map(str),
    st.sampled_from(["1.0", "150.10", "-0.0", "1E+2", "2.5e-3", "0.000"]),
)
_SCALAR = st.one_of(st.none(), st.booleans(), st.text(max_size=12), _NUMBER)
_VALUE = st.recursive(
    _SCALAR,
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)


def _text_of(value: object, ascii_only: bool) -> bytes:
    """A JSON text of ``value``; numbers given as strings are written as bare numbers."""

    def write(v: object) -> str:
        if isinstance(v, dict):
            items = ",".join(
                f"{json.dumps(k, ensure_ascii=ascii_only)}:{write(x)}" for k, x in v.items()
            )
            return "{" + items + "}"
        if isinstance(v, list):
            return "[" + ",".join(write(x) for x in v) + "]"
        if isinstance(v, str) and v and (v[0].isdigit() or v[0] == "-") and _is_number(v):
            return v
        return json.dumps(v, ensure_ascii=ascii_only)

    return write(value).encode()


def _is_number(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


@settings(max_examples=300, deadline=None)
@given(value=_VALUE, ascii_only=st.booleans(), sort_keys=st.booleans())
def test_the_fast_writer_writes_what_the_reference_writes(
    value: object, ascii_only: bool, sort_keys: bool
) -> None:
    raw = _text_of(value, ascii_only)
    parsed = json.loads(raw, parse_float=Decimal)
    expected = _dump(parsed, sort_keys, frozenset())
    assert dump(parsed, sort_keys=sort_keys, plain=plain_text(raw)) == expected
    assert dump(parsed, sort_keys=sort_keys) == expected


@pytest.mark.parametrize(
    "raw",
    [
        PLAIN,
        OTOCO,
        PLAIN.replace(b'"AAPL"', b'"A\\u00e9PL"'),  # an escape: the reference writer
        PLAIN.replace(b'"AAPL"', '"AéPL"'.encode()),  # not ASCII: the reference writer
        PLAIN.replace(b'"AAPL"', b'"AA\x7fPL"'),  # DEL, which json escapes
        PLAIN.replace(b"150.10", b"123456789012345678901234567890"),  # beyond 64 bits
        OTOCO.replace(b'"type":"OTOCO",', b'"type":"OTOCO","external-identifier":"top",'),
    ],
)
def test_fingerprints_and_bodies_are_those_of_the_reference_writer(raw: bytes) -> None:
    complex_order = b"OTOCO" in raw
    data, identity = identify(raw, "order", DECISION, complex_order=complex_order)
    reference = json.loads(raw, parse_float=Decimal)
    orders = (
        [reference] if not complex_order else [reference["trigger-order"], *reference["orders"]]
    )
    bare = _dump(reference, True, frozenset(id(o) for o in orders))
    assert identity.fingerprint == hashlib.sha256(f"order\n{bare}".encode()).hexdigest()
    assert forwarded_body(raw, data, strict=True) == _dump(data, False, frozenset()).encode()
    assert json.loads(forwarded_body(raw, data, strict=False), parse_float=Decimal) == data


def test_plain_orders_take_the_fast_writer() -> None:
    for raw in (PLAIN, OTOCO):
        assert plain_text(raw)
        assert _fast_dump(json.loads(raw, parse_float=Decimal), True) is not None
    assert not plain_text(PLAIN.replace(b'"AAPL"', b'"A\\"PL"'))
