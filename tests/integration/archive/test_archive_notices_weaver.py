"""Archive notices through a Weaver e-cology OA instance, on both databases, with the
e-cology simulator as a real process: a package archived sends its applicant a message of
the hub's message source (消息中心) that e-cology keeps; a notice to a departed employee is
refused by e-cology and dead-lettered naming them; without the message source's code the
notice is refused as a configuration error naming `message_code`."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from sqlalchemy import select
from support import invoices as build
from support.processes import Server, free_port
from support.weaver import weaver_config, weaver_simulator

from finoa.archive.notices import send_notice
from finoa.archive.service import Archive, build_packages
from finoa.config import load_settings
from finoa.runtime import build_dispatcher, new_http_client
from finoa.services.context import Hub
from finoa.services.masterdata import load_masterdata
from finoa.store.tables import outbox


@pytest.fixture(scope="module")
def weaver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, dict[str, str]]]:
    with weaver_simulator(tmp_path_factory.mktemp("weaver"), auto_decide=False) as running:
        yield running


@contextmanager
def weaver_hub(db_url: str, directory: Path, oa: dict[str, Any]) -> Iterator[Hub]:
    """A hub whose OA is the Weaver instance `oa` (its ERP is not reached here: the vouchers
    are recorded posted in-process, and a retry far off keeps the dispatcher from waiting)."""
    config = directory / "finoa.yaml"
    connectors = {
        "weaver": {"connector": "weaver", "default": True, "config": oa},
        "ledger": {"connector": "generic-erp", "default": True,
                   "config": {"base_url": f"http://127.0.0.1:{free_port()}", "api_key": "k"}},
    }  # fmt: skip
    config.write_text(yaml.safe_dump({"connectors": connectors}, allow_unicode=True))
    settings = load_settings(
        config, data_dir=directory / "data", database_url=db_url,
        company_tax_id=build.COMPANY_TAX_ID, retry_base_seconds=600, retry_cap_seconds=600,
        connector_timeout_seconds=2,
    )  # fmt: skip
    made = Hub.create(settings)
    try:
        load_masterdata(made.db)
        yield made
    finally:
        made.close()


@pytest.fixture
def hub(db_url: str, tmp_path: Path, weaver: tuple[Server, dict[str, str]]) -> Iterator[Hub]:
    """The archive's hub (conftest's `posted` uses it) with the Weaver instance as its OA."""
    server, credentials = weaver
    with weaver_hub(db_url, tmp_path, weaver_config(server.url, credentials)) as made:
        yield made


def deliver(hub: Hub) -> dict[str, Any]:
    async def run() -> dict[str, Any]:
        http = new_http_client(hub.settings)
        try:
            dispatcher = build_dispatcher(hub, http)
            await dispatcher.run_until_idle(20)
            return dispatcher.figures()
        finally:
            await http.aclose()

    return asyncio.run(run())


def notices(hub: Hub) -> dict[str, Any]:
    with hub.db.engine.connect() as conn:
        rows = conn.execute(select(outbox).where(outbox.c.action == "notice.send")).all()
    return {r.payload["recipient_id"]: r for r in rows}


def messages(server: Server, receiver: str) -> list[dict[str, Any]]:
    return list(httpx.get(f"{server.url}/_sim/messages", params={"receiver": receiver}).json())


def test_a_package_archived_sends_the_applicant_a_message_ecology_keeps(
    hub: Hub, posted: Callable[..., str], weaver: tuple[Server, dict[str, str]], tmp_path: Path
) -> None:
    server, credentials = weaver
    posted(f"WN-{tmp_path.name[-8:]}")
    (archive_no,) = build_packages(hub.db, Archive.from_settings(hub.settings)).built
    deliver(hub)
    row = notices(hub)["E0011"]
    assert row.status == "done" and row.destination == "oa", row.last_error
    target = f"{credentials['message_code']}|{row.payload['notice_id']}"
    assert row.response == {"status": "sent", "target_id": target}
    (kept,) = [m for m in messages(server, "E0011") if m["targetId"] == target]
    assert archive_no in kept["title"] and kept["code"] == credentials["message_code"]
    assert kept["context"] == row.payload["body"]

    # An employee who left: e-cology refuses the message, which is dead-lettered naming them.
    with hub.db.uow("t") as uow:
        send_notice(uow, f"left:{tmp_path.name}", "E0099", "凭证已归档", "…",
                    subject_type="archive_package", subject_id=row.aggregate_id)  # fmt: skip
        uow.commit()
    deliver(hub)
    left = notices(hub)["E0099"]
    assert left.status == "dead" and left.error_class == "permanent"
    assert "USER_EXCEPTION: 接收人[E0099]不存在或已离职" in left.last_error
    assert messages(server, "E0099") == []


def test_without_the_message_source_a_notice_is_a_config_error_naming_it(
    db_url: str, tmp_path: Path, weaver: tuple[Server, dict[str, str]]
) -> None:
    server, credentials = weaver
    before = len(messages(server, "E0011"))
    config = {k: v for k, v in weaver_config(server.url, credentials).items()
              if k != "message_code"}  # fmt: skip
    with weaver_hub(db_url, tmp_path, config) as plain:
        with plain.db.uow("t") as uow:
            send_notice(uow, f"n:{tmp_path.name}", "E0011", "凭证已归档", "…",
                        subject_type="archive_package", subject_id="PK-X")  # fmt: skip
            uow.commit()
        deliver(plain)
        row = notices(plain)["E0011"]
    assert row.status != "done" and row.error_class == "config"
    assert "message_code: required for notices" in row.last_error
    assert len(messages(server, "E0011")) == before
