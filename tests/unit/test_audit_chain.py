"""The audit chain's canonical form and the chain checks (issue 11, item 5), without I/O."""

from __future__ import annotations

import hashlib
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any
from uuid import UUID

import pytest

from gatekeeper.adapters.audit_chain import (
    COLUMNS,
    GENESIS,
    ChainRow,
    Head,
    canonical,
    row_hash,
    text_of,
)
from gatekeeper.audit_verify import check_chain

AT = datetime(2026, 3, 9, 14, 30, 0, 120000, tzinfo=UTC)


def outcome(row_id: int, **values: Any) -> dict[str, Any]:
    return {
        "id": row_id,
        "decision_id": UUID("00000000-0000-4000-8000-000000000001"),
        "account_id": "5WT00001",
        "outcome": "accepted",
        "http_status": 201,
        "broker_order_id": None,
        "recorded_at": AT,
        **values,
    }


# -- the canonical form -----------------------------------------------------------------------


def test_canonical_form_names_table_link_and_each_non_null_column_in_order() -> None:
    prev = bytes(range(32))

    text = canonical("order_outcomes", prev, outcome(7)).decode()

    assert text == (
        "table:14:order_outcomes\n"
        f"chain_prev:64:{prev.hex()}\n"
        "id:1:7\n"
        "decision_id:36:00000000-0000-4000-8000-000000000001\n"
        "account_id:8:5WT00001\n"
        "outcome:8:accepted\n"
        "http_status:3:201\n"
        "recorded_at:27:2026-03-09T14:30:00.120000Z\n"
    )
    assert row_hash("order_outcomes", prev, outcome(7)) == hashlib.sha256(text.encode()).digest()


@pytest.mark.parametrize(
    ("kind", "value", "text"),
    [
        ("numeric", Decimal("1.500"), "1.500"),  # the stored scale is kept
        ("numeric", Decimal("0E-3"), "0.000"),
        ("numeric", Decimal("1E-7"), "0.0000001"),  # never an exponent (numeric_out)
        ("numeric", Decimal("12345678901234567890.1234"), "12345678901234567890.1234"),
        (
            "timestamptz",
            datetime(2026, 3, 9, 9, 30, tzinfo=timezone(timedelta(hours=-5))),
            "2026-03-09T14:30:00.000000Z",
        ),
        ("date", date(2026, 1, 2), "2026-01-02"),
        (
            "uuid",
            UUID("ABCDEF00-0000-4000-8000-000000000001"),
            "abcdef00-0000-4000-8000-000000000001",
        ),
        ("text[]", [], "0"),
        ("text[]", ["a", "b,c", "é", None, ""], "5,1:a,3:b,c,2:é,-,0:"),
        ("int", 0, "0"),
        ("text", "", ""),
        ("jsonb", '{"a": 1.50}', '{"a": 1.50}'),
    ],
)
def test_values_take_one_fixed_text_form(kind: Any, value: object, text: str) -> None:
    assert text_of(kind, value) == text


def test_null_and_empty_differ_and_lengths_are_bytes() -> None:
    empty = canonical("order_outcomes", GENESIS, outcome(1, broker_order_id=""))
    null = canonical("order_outcomes", GENESIS, outcome(1))
    unicode = canonical("order_outcomes", GENESIS, outcome(1, broker_order_id="é"))

    assert empty != null
    assert b"broker_order_id:0:\n" in empty
    assert b"broker_order_id:2:\xc3\xa9\n" in unicode


def test_a_naive_timestamp_is_refused() -> None:
    with pytest.raises(TypeError, match="aware"):
        text_of("timestamptz", datetime(2026, 3, 9))  # noqa: DTZ001 - the point of the test


def test_every_chained_table_names_its_id_account_and_time() -> None:
    for columns in COLUMNS.values():
        names = [name for name, _ in columns]
        assert names[0] == "id"
        assert "account_id" in names


# -- the chain checks -------------------------------------------------------------------------


def chain(count: int, account: str = "5WT00001") -> list[ChainRow]:
    rows: list[ChainRow] = []
    prev = GENESIS
    for n in range(1, count + 1):
        values = outcome(n, account_id=account)
        digest = row_hash("order_outcomes", prev, values)
        rows.append(ChainRow("order_outcomes", n, account, n, prev, digest, digest, AT))
        prev = digest
    return rows


def head_of(row: ChainRow) -> Head:
    return Head(row.account_id, row.table, row.id, row.seq, row.stored)


def findings(rows: list[ChainRow], **kwargs: Any) -> list[tuple[str, int | None]]:
    return [(p.finding, p.row_id) for p in check_chain("5WT00001", rows, **kwargs)]


def test_an_intact_chain_has_no_problem() -> None:
    rows = chain(5)
    assert findings(rows, head=head_of(rows[-1]), anchor=head_of(rows[2])) == []


def test_an_edited_row_is_named() -> None:
    rows = chain(5)
    rows[2] = replace(rows[2], computed=b"\x01" * 32)

    assert findings(rows) == [("edited", 3)]


def test_a_deleted_row_is_named_by_the_row_after_it() -> None:
    rows = chain(5)
    del rows[2]

    assert findings(rows) == [("deleted", 4)]


def test_a_forged_row_in_the_middle_is_inserted() -> None:
    rows = chain(5)
    forged = ChainRow("order_outcomes", 99, "5WT00001", 3, rows[1].stored, b"f" * 32,
                      b"f" * 32, AT)  # fmt: skip
    rows.insert(3, forged)  # after row 3, same position

    assert findings(rows) == [("inserted", 99)]


def test_a_swapped_pair_is_reordered() -> None:
    rows = chain(5)
    rows[2], rows[3] = replace(rows[3], seq=3), replace(rows[2], seq=4)

    assert findings(rows) == [("reordered", 4)]


def test_a_truncated_tail_shows_against_the_recorded_and_the_exported_head() -> None:
    rows = chain(5)
    recorded, exported = head_of(rows[-1]), head_of(rows[-2])

    assert findings(rows[:3], head=recorded, anchor=exported) == [("deleted", 5), ("deleted", 4)]
    # an export of an earlier day is still in a longer chain
    assert findings(rows, anchor=head_of(rows[0])) == []
