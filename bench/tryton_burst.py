"""Benchmark: the month-end burst into a real Tryton (`make bench BENCH_ARGS="--erp tryton"`).

Everything runs on PostgreSQL, as a deployment would: the hub's database and the Tryton
databases, created through ADMIN_URL and dropped at the end.

1. A Tryton database is made once with `finoa erp tryton init` (`tryton_bench_<pid>`); every
   run below gets a fresh copy of it (`CREATE DATABASE … TEMPLATE`) and its own trytond.
2. The burst: N claims (default 10,000) are submitted and approved in the hub's database
   before the hub starts, so all their vouchers are queued at once, as at month end.
3. finoa's drain: the hub starts, its ERP instance a trytond on a fresh copy, and posts them.
   Figure: vouchers/s from the first to the last posted (the outbox's done times). While it
   runs, a steady generator submits claims to the hub (open loop, `--webhook-rate`/s; the OA
   simulator does not approve them, so the vouchers stay the burst's) and the latency of
   every answer is kept: p50/p99 of the requests sent while the drain ran.
4. Tryton's own batch ceiling: the same moves (the vouchers' payloads, from the hub's outbox)
   created and posted directly over JSON-RPC, one `create` and one `post` per batch, batch
   after batch, on a fresh copy per batch size; the best of the sizes.
5. Nothing lost, nothing doubled: finoa's moves counted in Tryton by reference.

Usage: python bench/loop.py --erp tryton [--claims 10000] [--batch 25 --batch 50 …]
       [--webhook-rate 20] [--admin-url postgresql://postgres@127.0.0.1:5432/postgres]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from cpu import CpuShares  # noqa: E402  (bench/, the script's folder, is on the path)
from support.claims import one_line_claim  # noqa: E402
from support.processes import (  # noqa: E402
    Secrets,
    free_port,
    simulators,
    start_configured_hub,
    start_worker,
)
from support.tryton import TrytonAdmin  # noqa: E402

from finoa.connectors.tryton.manifest import MANIFEST  # noqa: E402

ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
ERP_INSTANCE = "erp-tryton"
WORKER_NICE = 5  # the drain yields the CPU to the API answering the OA
APPLICANTS = [("E0011", "D02"), ("E0021", "D03"), ("E0031", "D04"), ("E0041", "D05")]
CATEGORIES = ["travel", "lodging", "transport", "office", "communication", "meeting"]


def pg(admin_url: str, sql: str) -> None:
    import psycopg

    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql)  # type: ignore[arg-type]


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered) + 0.5) - 1))]


def make_template(work: Path, admin_url: str, name: str) -> Any:
    """`finoa erp tryton init` on PostgreSQL, as a user runs it."""
    from finoa.connectors.tryton.setup import TrytonSite

    backend = admin_url.rpartition("/")[0] + "/"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "finoa",
            "erp",
            "tryton",
            "init",
            "--dir",
            str(work / "tryton"),
            "--year",
            "2026",
            "--port",
            str(free_port()),
            "--database",
            name,
            "--backend",
            backend,
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"finoa erp tryton init failed:\n{done.stdout}{done.stderr}")
    return TrytonSite.load(work / "tryton")


@contextmanager
def trytond_on_copy(
    template: Any, admin_url: str, copy: str, log_dir: Path
) -> Iterator[tuple[Any, int]]:
    """A fresh copy of the template database and a trytond serving it (the site and the
    server's pid); both gone after."""
    from finoa.connectors.tryton.setup import serve_args

    pg(admin_url, f'CREATE DATABASE "{copy}" TEMPLATE "{template.database}"')
    site = replace(template, database=copy)
    log = (log_dir / f"trytond-{copy}.log").open("wb")
    process = subprocess.Popen(serve_args(site), stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"trytond exited: see {log.name}")
            try:
                if httpx.get(site.base_url + "/", timeout=1).status_code < 500:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("trytond not ready in 60 s")
            time.sleep(0.05)  # readiness polling with a deadline
        yield site, process.pid
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)
        log.close()
        pg(admin_url, f'DROP DATABASE IF EXISTS "{copy}" WITH (FORCE)')


def burst_claims(settings: Any, count: int) -> float:
    """Submit and approve `count` claims in the hub's database (every approval level);
    returns the seconds it took."""
    from finoa.services.approvals import decide_task
    from finoa.services.claims import submit_claim
    from finoa.services.context import Hub
    from finoa.services.masterdata import load_masterdata
    from finoa.services.queries import get_claim
    from finoa.store.db import upgrade

    rng = random.Random(8)
    upgrade(settings.database_url)
    hub = Hub.create(settings)
    bodies = []
    for index in range(count):
        applicant, department = APPLICANTS[index % len(APPLICANTS)]
        amount = f"{rng.randint(5_000, 80_000) / 100:.2f}"
        bodies.append((index, applicant, department, rng.choice(CATEGORIES), amount))

    def one(spec: tuple[int, str, str, str, str]) -> None:
        index, applicant, department, category, amount = spec
        submission = one_line_claim(
            f"M-{index}",
            applicant_id=applicant,
            department_id=department,
            category=category,
            amount=amount,
            expense_date="2026-11-20",
        )
        claim_id = submit_claim(hub, submission, source="bench", actor="bench").claim_id
        for _ in range(5):  # every approval level
            pending = [t for t in get_claim(hub.db, claim_id).tasks if t.status == "pending"]
            if not pending:
                return
            for task in pending:
                decide_task(hub, task.id, task.assignee_id, True, "同意", actor="bench")

    started = time.monotonic()
    try:
        load_masterdata(hub.db)
        with ThreadPoolExecutor(4) as pool:  # four writers, as the hub's group commit has
            for done, _ in enumerate(pool.map(one, bodies), 1):
                if done % 1000 == 0:
                    print(f"  {done} claims approved", flush=True)
    finally:
        hub.close()
    return time.monotonic() - started


def voucher_rows(database_url: str) -> list[Any]:
    from sqlalchemy import select

    from finoa.store.tables import outbox
    from finoa.store.uow import Database

    db = Database.connect(database_url)
    try:
        with db.engine.connect() as conn:
            return list(
                conn.execute(
                    select(
                        outbox.c.aggregate_id,
                        outbox.c.status,
                        outbox.c.done_epoch,
                        outbox.c.payload,
                        outbox.c.last_error,
                    ).where(outbox.c.action == "voucher.post")
                )
            )
    finally:
        db.dispose()


class UnsettledPostings:
    """How many voucher postings are still to settle (pending or in flight), cheap enough to
    ask twice a second beside the drain: it reads the ERP lane's open rows (`ix_outbox_lane`),
    not the table, so it does not cost the database what finoa is measured on."""

    def __init__(self, database_url: str) -> None:
        from sqlalchemy import func, select

        from finoa.store.tables import outbox
        from finoa.store.uow import Database

        self.db = Database.connect(database_url, pool_size=1)
        self.query = select(func.count()).where(
            outbox.c.destination == ERP_INSTANCE,
            outbox.c.status != "done",
            outbox.c.status != "dead",
        )

    def count(self) -> int:
        with self.db.engine.connect() as conn:
            return int(conn.execute(self.query).scalar_one())

    def close(self) -> None:
        self.db.dispose()


async def drain_with_load(
    hub_url: str, token: str, database_url: str, rate: float, timeout_s: float
) -> list[tuple[float, float, int]]:
    """Offer claim submissions at `rate` until every voucher is settled; returns (epoch sent,
    seconds to the answer, status) of each."""
    headers = {"authorization": f"Bearer {token}", "content-type": "application/json"}
    answers: list[tuple[float, float, int]] = []
    done = asyncio.Event()
    limits = httpx.Limits(max_connections=256, max_keepalive_connections=64)

    async def watch() -> None:
        deadline = time.monotonic() + timeout_s
        unsettled = UnsettledPostings(database_url)
        try:
            while time.monotonic() < deadline:
                if await asyncio.to_thread(unsettled.count) == 0:
                    break
                await asyncio.sleep(0.5)  # polling the outbox, with a deadline
        finally:
            unsettled.close()
        done.set()

    async with httpx.AsyncClient(timeout=httpx.Timeout(60, pool=None), limits=limits) as client:

        async def one(index: int) -> None:
            applicant, department = APPLICANTS[index % len(APPLICANTS)]
            body = {
                "external_id": f"W-{index}",
                "applicant_id": applicant,
                "department_id": department,
                "title": f"webhook claim {index}",
                "lines": [{"category": "travel", "amount": "66.00", "expense_date": "2026-11-21"}],
            }
            sent, clock = time.time(), time.monotonic()
            response = await client.post(
                f"{hub_url}/api/v1/claims", content=json.dumps(body), headers=headers
            )
            answers.append((sent, time.monotonic() - clock, response.status_code))

        watcher = asyncio.create_task(watch())
        tasks = []
        started = time.monotonic()
        index = 0
        while not done.is_set():
            due = started + index / rate
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)  # pacing the offered load
            tasks.append(asyncio.create_task(one(index)))
            index += 1
        await watcher
        await asyncio.gather(*tasks)
    return answers


def finoa_drain(
    template: Any, args: argparse.Namespace, work: Path, pid: int
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The burst, drained by finoa into a fresh copy; the figures and the vouchers' payloads."""
    from finoa.config import load_settings

    hub_db = f"finoa_bench_tryton_{pid}"
    pg(args.admin_url, f'CREATE DATABASE "{hub_db}"')
    database_url = args.admin_url.rpartition("/")[0] + f"/{hub_db}"
    secrets = Secrets.fresh()
    hub_port = free_port()
    data_dir = work / "hub"
    data_dir.mkdir()
    try:
        with (
            simulators(work / "sims", secrets, hub_port, auto_decide=False) as (oa, _erp),
            trytond_on_copy(template, args.admin_url, f"{template.database}_finoa", work) as (
                site,
                trytond_pid,
            ),
        ):
            connectors = {
                "hq-oa": {
                    "connector": "generic-oa",
                    "config": {
                        "base_url": oa.url,
                        "api_key": secrets.oa_api_key,
                        "webhook_secret": secrets.oa_webhook_secret,
                    },
                },
                ERP_INSTANCE: {
                    "connector": "tryton",
                    "config": {**site.connector_config(), "timeout_seconds": 120},
                },
            }
            config = data_dir / "finoa.yaml"
            import yaml

            config.write_text(yaml.safe_dump({"connectors": connectors}, allow_unicode=True))
            settings = load_settings(config, data_dir=data_dir, database_url=database_url)
            print(f"burst: submitting and approving {args.claims} claims …", flush=True)
            approve_s = burst_claims(settings, args.claims)
            env = {**secrets.env(), "FINOA_DATA_DIR": str(data_dir)}
            apart = not args.one_process
            hub = start_configured_hub(
                env, connectors, database_url, hub_port, data_dir, dispatch=not apart
            )
            worker = None
            try:
                if apart:  # the API alone; the drain in `finoa worker`, at its own priority
                    assert hub.env is not None
                    worker = start_worker(hub.env, data_dir, nice=args.worker_nice)
                token = httpx.post(
                    f"{hub.url}/api/v1/oauth/token",
                    data={
                        "grant_type": "client_credentials",
                        "client_id": secrets.client_id,
                        "client_secret": secrets.client_secret,
                    },
                ).json()["access_token"]
                roles = {
                    "trytond": [trytond_pid],
                    "api": [hub.process.pid],
                    "oa simulator": [oa.process.pid],
                }
                if worker is not None:
                    roles["worker"] = [worker.process.pid]
                shares = CpuShares(roles)
                answers = asyncio.run(
                    drain_with_load(hub.url, token, database_url, args.webhook_rate, 3600)
                )
                cpu = shares.cores()
            finally:
                if worker is not None:
                    worker.stop()
                hub.stop()
            rows = voucher_rows(database_url)
            admin = TrytonAdmin(site)
            references = [f"finoa:{row.aggregate_id}" for row in rows]
            moves: list[dict[str, Any]] = []
            for start in range(0, len(references), 1000):
                moves.extend(admin.moves(references[start : start + 1000]))
    finally:
        pg(args.admin_url, f'DROP DATABASE IF EXISTS "{hub_db}" WITH (FORCE)')
    posted = [row.done_epoch for row in rows if row.status == "done"]
    first, last = min(posted), max(posted)
    during = [(s, lat, code) for s, lat, code in answers if first <= s <= last]
    latencies = [lat for _, lat, _ in during]
    per_reference = Counter(m["description"] for m in moves)
    figures = {
        "claims": args.claims,
        "approve_seconds": round(approve_s, 1),
        "vouchers": len(rows),
        "posted": len(posted),
        "dead_letters": [row.last_error for row in rows if row.status == "dead"][:5],
        "drain_seconds": round(last - first, 2),
        "vouchers_per_s": round((len(posted) - 1) / (last - first), 1) if last > first else 0.0,
        "moves_in_tryton": len(moves),
        "duplicates": sum(1 for n in per_reference.values() if n > 1),
        "missing": len(set(references) - set(per_reference)),
        "moves_not_posted": sum(1 for m in moves if m["state"] != "posted"),
        "webhook_requests_during_drain": len(during),
        "webhook_errors": sum(1 for _, _, code in during if code != 201),
        "webhook_p50_ms": round(pct(latencies, 50) * 1000, 1) if latencies else None,
        "webhook_p99_ms": round(pct(latencies, 99) * 1000, 1) if latencies else None,
        "webhook_max_ms": round(max(latencies) * 1000, 1) if latencies else None,
        "cores": cpu,
    }
    return figures, [dict(row.payload) for row in rows]


async def direct_posting(site: Any, payloads: list[dict[str, Any]], batch: int) -> dict[str, Any]:
    """The moves created and posted straight over trytond's JSON-RPC, batch after batch."""
    from finoa.connectors.tryton.client import TrytonConnector
    from finoa.connectors.tryton.mapping import move_values

    async with httpx.AsyncClient() as http:
        connector = TrytonConnector({**site.connector_config(), "timeout_seconds": 300}, http)
        ids, party_accounts = await connector.posting_ids()  # ids of accounts, parties, periods
        assert connector.codes is not None
        values = [move_values(connector.codes.apply(p), ids, party_accounts) for p in payloads]
        rpc = connector.rpc
        started = time.monotonic()
        for start in range(0, len(values), batch):
            move_ids = await rpc.call("model.account.move.create", values[start : start + batch])
            await rpc.call("model.account.move.post", move_ids)
        elapsed = time.monotonic() - started
    rate = round(len(values) / elapsed, 1)
    return {"batch": batch, "seconds": round(elapsed, 2), "moves_per_s": rate}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--claims", type=int, default=10_000, help="claims in the burst")
    parser.add_argument(
        "--batch",
        type=int,
        action="append",
        help=f"batch sizes of the direct ceiling (default {MANIFEST.max_batch // 2}, "
        f"{MANIFEST.max_batch} (the connector's), {MANIFEST.max_batch * 2})",
    )
    parser.add_argument("--webhook-rate", type=float, default=20.0, help="claims/s offered")
    parser.add_argument("--admin-url", default=ADMIN_URL, help="PostgreSQL to create databases on")
    parser.add_argument(
        "--worker-nice",
        type=int,
        default=WORKER_NICE,
        help="the drain runs in a `finoa worker` at this nice, the API apart with "
        f"--no-dispatch, as docs/operations.md advises for month end (default {WORKER_NICE})",
    )
    parser.add_argument(
        "--one-process",
        action="store_true",
        help="the API and the drain in one `finoa serve` instead",
    )
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    batches = args.batch or [MANIFEST.max_batch // 2, MANIFEST.max_batch, MANIFEST.max_batch * 2]
    try:
        import trytond  # noqa: F401
    except ImportError:
        print("error: trytond is not installed\nfix: pip install -e '.[tryton]'")
        return 2
    pid = os.getpid()
    work = Path(tempfile.mkdtemp(prefix="finoa-tryton-bench-"))
    template_name = f"tryton_bench_{pid}"
    results: dict[str, Any] = {
        "tryton_backend": "postgresql",
        "hub_database": "postgresql",
        "cores": os.cpu_count(),
        "connector_batch": MANIFEST.max_batch,
    }
    try:
        print("making the Tryton database (finoa erp tryton init) …", flush=True)
        template = make_template(work, args.admin_url, template_name)
        figures, payloads = finoa_drain(template, args, work, pid)
        results["finoa"] = figures
        print(f"finoa: {figures}", flush=True)
        ceilings = []
        for batch in batches:
            copy = f"{template_name}_b{batch}"
            with trytond_on_copy(template, args.admin_url, copy, work) as (site, pid):
                shares = CpuShares({"trytond": [pid]})
                ceilings.append(asyncio.run(direct_posting(site, payloads, batch)))
                ceilings[-1]["cores"] = shares.cores()
            print(f"direct: {ceilings[-1]}", flush=True)
        results["direct"] = ceilings
        best = max(ceilings, key=lambda c: c["moves_per_s"])
        results["ceiling_moves_per_s"] = best["moves_per_s"]
        results["finoa_over_ceiling"] = round(figures["vouchers_per_s"] / best["moves_per_s"], 3)
    finally:
        pg(args.admin_url, f'DROP DATABASE IF EXISTS "{template_name}" WITH (FORCE)')
        shutil.rmtree(work, ignore_errors=True)
    print_table(results)
    print(json.dumps(results, indent=2, ensure_ascii=False))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, ensure_ascii=False))
    return 0


def print_table(results: dict[str, Any]) -> None:
    finoa = results["finoa"]
    rows = [
        ("vouchers in the burst", f"{finoa['vouchers']:,}"),
        ("finoa → trytond, first to last posted", f"{finoa['vouchers_per_s']} vouchers/s"),
    ]
    rows += [
        (f"direct JSON-RPC create+post, batch {c['batch']}", f"{c['moves_per_s']} moves/s")
        for c in results["direct"]
    ]
    rows += [
        ("finoa / best direct", f"{results['finoa_over_ceiling']}"),
        (
            "claims answered during the drain",
            f"{finoa['webhook_requests_during_drain']} (errors {finoa['webhook_errors']}): "
            f"p50 {finoa['webhook_p50_ms']} ms, p99 {finoa['webhook_p99_ms']} ms",
        ),
        (
            "cores used while finoa drained",
            ", ".join(f"{role} {n}" for role, n in finoa["cores"].items()),
        ),
        *(
            (
                f"cores used by direct batch {c['batch']}",
                ", ".join(f"{role} {n}" for role, n in c["cores"].items()),
            )
            for c in results["direct"]
        ),
        (
            "moves in Tryton (by reference)",
            f"{finoa['moves_in_tryton']:,}: duplicates {finoa['duplicates']}, "
            f"missing {finoa['missing']}, not posted {finoa['moves_not_posted']}",
        ),
    ]
    width = max(len(name) for name, _ in rows)
    print()
    for name, value in rows:
        print(f"{name:<{width}}  {value}")
    print()


if __name__ == "__main__":
    sys.exit(main())
