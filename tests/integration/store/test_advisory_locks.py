"""Advisory lock classes on a real PostgreSQL: locks of different kinds never block each other,
even when their keys are equal (a document whose hash happens to equal a period's yyyymm)."""

from __future__ import annotations

import psycopg
from support.databases import PG_ADMIN_URL

from finoa.store.locks import LockClass

COLLIDING_KEY = 202_612  # a period's key; assume a document hashes to the same int4


def test_each_lock_kind_has_its_own_class() -> None:
    assert len({int(c) for c in LockClass}) == len(LockClass)


def test_a_held_document_lock_does_not_block_its_period_namesake() -> None:
    with (
        psycopg.connect(PG_ADMIN_URL) as submitting,
        psycopg.connect(PG_ADMIN_URL) as closing,
    ):
        submitting.execute(
            "SELECT pg_advisory_xact_lock(%s, %s)", (int(LockClass.DOCUMENT), COLLIDING_KEY)
        )
        got = closing.execute(
            "SELECT pg_try_advisory_xact_lock(%s, %s)",
            (int(LockClass.PERIOD_STATUS), COLLIDING_KEY),
        ).fetchone()
        assert got == (True,), "closing a period waited on a claim submission's document lock"
        # and the same class with the same key does block, so the check above means something
        again = closing.execute(
            "SELECT pg_try_advisory_xact_lock(%s, %s)", (int(LockClass.DOCUMENT), COLLIDING_KEY)
        ).fetchone()
        assert again == (False,)
