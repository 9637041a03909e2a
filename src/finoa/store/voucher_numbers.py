"""Voucher numbers (凭证号), allocated at commit.

A period's numbers are gap-free and contiguous, so they come from one counter row per
(period, word) in `voucher_sequences`, and whoever increments it holds that row's lock until
COMMIT. Taken when a voucher is generated, the lock would be held across the rest of the
transaction (the rest of a group commit's batch), and concurrent writers would queue on it.
So a unit of work only queues its vouchers (`UnitOfWork.add_voucher`) and numbers them all
right before COMMIT, as it writes its audit events: one UPDATE … RETURNING per (period, word)
reserves a block of numbers for all of the transaction's vouchers of that period, the
vouchers and their entries are inserted with their numbers, and whatever carries a voucher's
number (the posting's outbox payload, audit event data) is filled in before it is written.
The reservation is part of the transaction, so a rollback takes it back and leaves no gap.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, bindparam, insert, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from finoa.domain.voucher import format_voucher_no
from finoa.store.prepared import Prepared
from finoa.store.tables import voucher_entries, voucher_sequences, vouchers

INSERT_VOUCHERS = Prepared(insert(vouchers))
INSERT_ENTRIES = Prepared(insert(voucher_entries))
RESERVE_NUMBERS = Prepared(
    update(voucher_sequences)
    .where(
        voucher_sequences.c.period == bindparam("b_period"),
        voucher_sequences.c.word == bindparam("b_word"),
    )
    .values(last_number=voucher_sequences.c.last_number + bindparam("b_count"))
    .returning(voucher_sequences.c.last_number)
)

Numbered = Callable[[int, str], None]  # told (number, voucher_no) once the voucher has them


@dataclass
class PendingVoucher:
    """A voucher generated in this transaction, written with its number at commit.

    `row` is its `vouchers` row without `number` and `voucher_no`; `entries` its
    `voucher_entries` rows. `on_numbered` callbacks fill the number in wherever it is
    carried (an outbox payload, audit data) before those are written.
    """

    period: str
    word: str
    row: dict[str, Any]
    entries: list[dict[str, Any]]
    on_numbered: list[Numbered] = field(default_factory=list)

    def when_numbered(self, callback: Numbered) -> None:
        self.on_numbered.append(callback)


def reserve_numbers(conn: Connection, period: str, word: str, count: int) -> int:
    """Reserve `count` consecutive numbers of a period's sequence; returns the first."""
    params = {"b_period": period, "b_word": word, "b_count": count}
    row = RESERVE_NUMBERS.first(conn, params)
    if row is None:  # the period's first voucher: its counter starts at 0
        dialect_insert = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
        conn.execute(
            dialect_insert(voucher_sequences)
            .values(period=period, word=word, last_number=0)
            .on_conflict_do_nothing()
        )
        row = RESERVE_NUMBERS.first(conn, params)
    return int(row[0]) - count + 1


def write_vouchers(conn: Connection, pending: list[PendingVoucher]) -> None:
    """Number the transaction's vouchers (in the order they were generated within each
    period and word) and insert them with their entries."""
    if not pending:
        return
    by_sequence: dict[tuple[str, str], list[PendingVoucher]] = {}
    for voucher in pending:
        by_sequence.setdefault((voucher.period, voucher.word), []).append(voucher)
    # counters are locked in one order by every transaction, so two never deadlock on them
    for (period, word), group in sorted(by_sequence.items()):
        first = reserve_numbers(conn, period, word, len(group))
        for number, voucher in enumerate(group, start=first):
            voucher_no = format_voucher_no(word, number)
            voucher.row["number"] = number
            voucher.row["voucher_no"] = voucher_no
            for callback in voucher.on_numbered:
                callback(number, voucher_no)
    INSERT_VOUCHERS.run_many(conn, [v.row for v in pending])
    entries = [entry for v in pending for entry in v.entries]
    INSERT_ENTRIES.run_many(conn, entries)
