"""Prepared statements store and read values exactly as SQLAlchemy does, on both databases."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import bindparam, insert, select, update

from finoa.store.prepared import Prepared
from finoa.store.tables import inbox, outbox
from finoa.store.uow import Database

NOW = datetime(2026, 11, 22, 9, 30, 15, 123456, tzinfo=UTC)


def test_rows_written_by_either_path_read_back_the_same(db_url: str) -> None:
    db = Database.connect(db_url)
    row = {
        "source": "oa",
        "message_id": "m-1",
        "kind": "claim",
        "business_key": None,
        "digest": "d" * 64,
        "result": {"claim_id": "CL1", "nested": [1, "二"]},
        "received_at": NOW,
    }
    try:
        with db.uow("t") as uow:
            Prepared(insert(inbox)).run(uow.conn, row)
            uow.conn.execute(insert(inbox), {**row, "message_id": "m-2"})
            uow.commit()
        by_id = Prepared(
            select(inbox.c.message_id, inbox.c.result, inbox.c.received_at).where(
                inbox.c.source == bindparam("source")
            )
        )
        with db.engine.connect() as conn:
            mine = sorted(by_id.all(conn, {"source": "oa"}))
            theirs = sorted(
                tuple(r)
                for r in conn.execute(
                    select(inbox.c.message_id, inbox.c.result, inbox.c.received_at).where(
                        inbox.c.source == "oa"
                    )
                )
            )
        assert [tuple(r) for r in mine] == theirs
        assert mine[0].result == {"claim_id": "CL1", "nested": [1, "二"]}
        assert mine[0].received_at.replace(tzinfo=UTC) == NOW
        assert theirs[0][2] == theirs[1][2]  # the same stored form from both paths
    finally:
        db.dispose()


def test_run_many_update_and_first(db_url: str) -> None:
    db = Database.connect(db_url)
    rows = [
        {
            "aggregate_type": "claim",
            "aggregate_id": f"CL{n}",
            "destination": "oa",
            "action": "status.writeback",
            "ordering_key": f"oa:status.writeback:CL{n}",
            "payload": {"n": n, "名": "报销"},
            "idempotency_key": f"k-{n}",
            "digest": "d",
            "status": "pending",
            "attempts": 0,
            "next_attempt_at": 1.5,
            "created_epoch": 1.0,
        }
        for n in (1, 2, 3)
    ]
    mark = Prepared(
        update(outbox)
        .where(outbox.c.idempotency_key == bindparam("b_key"))
        .values(status=bindparam("b_status"), response=bindparam("b_response"))
    )
    by_key = Prepared(
        select(outbox.c.status, outbox.c.payload, outbox.c.response).where(
            outbox.c.idempotency_key == bindparam("key")
        )
    )
    try:
        with db.uow("t") as uow:
            Prepared(insert(outbox)).run_many(uow.conn, rows)
            changed = mark.run(uow.conn, {"b_key": "k-2", "b_status": "done", "b_response": [7]})
            assert changed.rowcount == 1
            row = by_key.first(uow.conn, {"key": "k-2"})
            assert by_key.first(uow.conn, {"key": "nope"}) is None
            uow.commit()
        assert tuple(row) == ("done", {"n": 2, "名": "报销"}, [7])
        assert (row.status, row.response) == ("done", [7])
        with db.engine.connect() as conn:
            stored = conn.execute(select(outbox.c.status).order_by(outbox.c.id)).scalars().all()
        assert stored == ["pending", "done", "pending"]
    finally:
        db.dispose()
