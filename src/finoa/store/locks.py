"""PostgreSQL advisory lock classes: one number per kind of thing locked, never shared.

A two-key advisory lock is (class, key); two kinds of lock under one class would block each
other whenever their keys happen to be equal (a document's hash and a period's number, say).
`unique` makes a repeated number an import error rather than a rare stall. (SQLite needs none
of these: it has one writer at a time.)
"""

from __future__ import annotations

from enum import IntEnum, unique


@unique
class LockClass(IntEnum):
    AUDIT_CHAIN = 727_001  # single-key lock serializing appends to the audit chain
    PERIOD_STATUS = 727_002  # (class, yyyymm): shared to place a voucher, exclusive to close
    DOCUMENT = 727_003  # (class, hashtext(source|external id)): one submission per document
