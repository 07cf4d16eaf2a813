"""The pure pieces of the admin side: ranges in words, TTLs, tokens, roles, migrate's lines."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest

from gatekeeper.auth import (
    InsufficientRole,
    InvalidTtl,
    Permission,
    Principal,
    Role,
    digests_match,
    looks_like_token,
    new_token,
    parse_ttl,
    token_digest,
)
from gatekeeper.limits import LIMITS_BY_FIELD
from gatekeeper.migrate import describe


def test_ranges_in_words() -> None:
    cash = LIMITS_BY_FIELD["cash_reserve_percentage"]
    assert cash.message(Decimal("10.0")) == (
        "cash_reserve_percentage must be between 20 and 50 (cash_reserve_range_check); got 10.0"
    )
    loss = LIMITS_BY_FIELD["max_daily_loss_percentage"]
    assert loss.describe() == "greater than 0 and at most 15"
    assert not loss.allows(Decimal(0))
    assert loss.allows(Decimal("0.01"))
    assert loss.allows(Decimal(15))
    assert not loss.allows(Decimal("15.01"))


@pytest.mark.parametrize(
    ("text", "expected"),
    [("24h", timedelta(hours=24)), ("30m", timedelta(minutes=30)), ("7d", timedelta(days=7)),
     ("90", timedelta(seconds=90)), (" 1h ", timedelta(hours=1))],
)  # fmt: skip
def test_ttl(text: str, expected: timedelta) -> None:
    assert parse_ttl(text) == expected


@pytest.mark.parametrize("text", ["", "0h", "-1h", "1w", "24 h", "367d", "1.5h", "forever"])
def test_bad_ttl(text: str) -> None:
    with pytest.raises(InvalidTtl):
        parse_ttl(text)


def test_tokens_are_random_and_only_their_digest_is_compared() -> None:
    first, second = new_token(), new_token()
    assert first != second
    assert looks_like_token(first)
    assert not looks_like_token(first.upper())
    assert not looks_like_token(first + "0")
    assert len(token_digest(first)) == 32
    assert digests_match(token_digest(first), token_digest(first))
    assert not digests_match(token_digest(first), token_digest(second))


@pytest.mark.parametrize(
    ("role", "allowed"),
    [
        (Role.VIEWER, {Permission.READ}),
        (Role.OPERATOR, {Permission.READ, Permission.STOP}),
        (Role.ADMIN, set(Permission)),
    ],
)
def test_roles(role: Role, allowed: set[Permission]) -> None:
    principal = Principal(1, "a@example.com", 1, role)
    for permission in Permission:
        assert principal.can(permission) == (permission in allowed)
        if permission not in allowed:
            with pytest.raises(InsufficientRole):
                principal.require(permission)
    assert principal.owner_scope == (None if role is Role.ADMIN else 1)


def test_describe_ignores_comments_and_reads_multiline_checks() -> None:
    sql = """
    -- CREATE TABLE commented_out (id int);
    CREATE TABLE t (id int);
    CREATE UNIQUE INDEX i ON t (a, b);
    ALTER TABLE t ADD CONSTRAINT c_check
        CHECK (a >= 1 AND
               a <= 2);
    """
    assert describe(sql) == [
        "-- create_table(:t)",
        "-- add_index(:t, [:a, :b], {:unique=>true})",
        '-- add_check_constraint(:t, "a >= 1 AND a <= 2", {:name=>"c_check"})',
    ]
