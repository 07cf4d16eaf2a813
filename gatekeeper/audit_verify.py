"""Checking one account's audit chain (``gatekeeper audit verify``): pure, over the rows as
read (gatekeeper.adapters.audit_chain), the database's head pointer and an exported anchor.

What each finding means:

- ``edited``: the row's content (with its chain_prev) no longer gives its chain_hash.
- ``deleted``: the row's chain_prev is the hash of no row: the row before it is gone (or was
  rewritten with a new hash); or the chain ends before its recorded or exported head.
- ``inserted``: the row is not linked into the chain: the row after it links past it, or it
  links to an earlier row than the one before it, or it comes after the recorded head.
- ``reordered``: the row sits before the row it links to (their positions were swapped).
- ``renumbered``: the links hold but the position numbers skip or repeat.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from gatekeeper.adapters.audit_chain import GENESIS, ChainRow, Head

Finding = Literal["edited", "deleted", "inserted", "reordered", "renumbered"]


@dataclass(frozen=True)
class Problem:
    account_id: str
    finding: Finding
    table: str | None
    row_id: int | None
    position: int | None
    detail: str

    def line(self) -> str:
        where = f"{self.table} id={self.row_id}" if self.table else "chain"
        position = f" position={self.position}" if self.position is not None else ""
        return f"{self.finding}: {where} account={self.account_id}{position}: {self.detail}"


def _problem(row: ChainRow, finding: Finding, detail: str) -> Problem:
    return Problem(row.account_id, finding, row.table, row.id, row.seq, detail)


def check_chain(
    account: str, rows: Sequence[ChainRow], head: Head | None = None, anchor: Head | None = None
) -> list[Problem]:
    """Every problem of ``account``'s chain; ``rows`` in stored order (position, table, id)."""
    problems: list[Problem] = []
    index = {row.stored: i for i, row in enumerate(rows)}
    # the second row of a reordered pair (reported with the first)
    swapped: set[tuple[str | None, int | None]] = set()
    expected_prev, expected_seq, before = GENESIS, 1, "the start of the chain"
    i = 0
    while i < len(rows):
        row = rows[i]
        following = rows[i + 1] if i + 1 < len(rows) else None
        if row.computed != row.stored:
            problems.append(_problem(row, "edited", "its content does not give its chain_hash"))
        if row.prev == expected_prev:
            if row.seq != expected_seq:
                problems.append(
                    _problem(row, "renumbered", f"position {row.seq}, expected {expected_seq}")
                )
        elif following is not None and following.prev == expected_prev:
            if row.prev == following.stored:
                problems.append(
                    _problem(
                        row,
                        "reordered",
                        f"it comes before {following.label} (position {following.seq}),"
                        " the row it links to: the two were swapped",
                    )
                )
                expected_prev, before = row.stored, row.label
                expected_seq = max(row.seq, following.seq) + 1
                swapped.add((following.table, following.id))
                i += 2
                continue
            problems.append(
                _problem(row, "inserted", f"not in the chain: {following.label} links past it")
            )
            i += 1
            continue
        elif row.prev in index and index[row.prev] > i:
            target = rows[index[row.prev]]
            problems.append(
                _problem(row, "reordered", f"it comes before {target.label}, the row it links to")
            )
        elif row.prev in index or row.prev == GENESIS:
            linked = rows[index[row.prev]].label if row.prev in index else "the chain's start"
            problems.append(
                _problem(row, "inserted", f"it links to {linked}, not to {before} before it")
            )
        else:
            problems.append(
                _problem(
                    row,
                    "deleted",
                    f"its chain_prev matches no row: the row before it (after {before}) was"
                    " deleted or rewritten",
                )
            )
        expected_prev, expected_seq, before = row.stored, row.seq + 1, row.label
        i += 1
    last = rows[-1] if rows else None
    if head is not None:
        # rows after the recorded head not already reported (e.g. the swapped one)
        reported = swapped | {(p.table, p.row_id) for p in problems}
        problems.extend(
            p
            for p in _against(account, rows, last, head, index, "the recorded head")
            if p.finding != "inserted" or (p.table, p.row_id) not in reported
        )
    if anchor is not None:
        problems.extend(_against(account, rows, last, anchor, index, "the exported head"))
    return problems


def _against(
    account: str,
    rows: Sequence[ChainRow],
    last: ChainRow | None,
    head: Head,
    index: dict[bytes, int],
    name: str,
) -> list[Problem]:
    """The chain must still contain ``head``; for the recorded head, end there."""
    where = f"{head.table} id={head.id} position {head.seq}"
    at = index.get(head.hash)
    if at is None or (rows[at].table, rows[at].id) != (head.table, head.id):
        end = f"{last.label} position {last.seq}" if last else "no row"
        return [
            Problem(
                account,
                "deleted",
                head.table,
                head.id,
                head.seq,
                f"{name} ({where}) is not in the chain, which ends at {end}:"
                " rows were deleted from its end (or rewritten)",
            )
        ]
    if name == "the recorded head" and last is not None and at != len(rows) - 1:
        return [
            _problem(row, "inserted", f"it comes after {name} ({where})") for row in rows[at + 1 :]
        ]
    return []
