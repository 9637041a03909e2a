"""Benchmark: the reimbursement loop end to end through the simulators.

Starts the ERP simulator, the OA simulator (its simulated approvers approve every todo) and
the hub as separate processes on a fresh embedded database, then:

1. measures the load generator's own ceiling (GET /health, no business work);
2. throughput: submits claims as fast as the hub takes them (closed loop, fixed concurrency)
   and reports claims/s completed end to end (submit → approvals → posted → written back);
3. latency: offers claims at a fixed rate (open loop, default 50/s) and reports p50/p99 from
   the moment each claim was due to be sent to its final status written back to the OA (the
   hub's clock; generator and hub share the machine's clock);
4. sustained: offers claims at the target rate (open loop, default 200/s) and reports whether
   the loop kept up — claims completed per second over the run and the latency percentiles
   (a loop that falls behind shows it as latency growing with the run's length).

`--erp tryton` runs the month-end burst into a real Tryton instead (bench/tryton_burst.py).

Usage: python bench/loop.py [--seconds 20] [--rate 50] [--rate-seconds 20]
       [--sustain-rate 200] [--sustain-seconds 20] [--postgres [ADMIN_URL]] [--writers-ratio]
       [--budgets]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from support.processes import stack  # noqa: E402

from finoa.connectors.base import KEEPALIVE_EXPIRY_SECONDS as KEEPALIVE_EXPIRY  # noqa: E402

CATEGORIES = ["travel", "lodging", "transport", "office", "communication", "meeting"]
APPLICANTS = [
    ("E0011", "D02"),
    ("E0012", "D02"),
    ("E0021", "D03"),
    ("E0022", "D03"),
    ("E0031", "D04"),
    ("E0041", "D05"),
    ("E0004", "D01"),
]


# The loop alone: the hub's archive keeper, a background job, is measured apart
# (--archive-ratio turns it on for a run of its own).
LOOP_ALONE = {"FINOA_ARCHIVE_EVERY_SECONDS": "0"}


def claim(i: int, tag: str, rng: random.Random) -> dict[str, Any]:
    applicant, department = rng.choice(APPLICANTS)
    amount = rng.choice(
        [rng.randint(5_000, 400_000), rng.randint(500_000, 2_000_000), rng.randint(100, 3_000)]
    )
    return {
        "external_id": f"{tag}-{i}",
        "applicant_id": applicant,
        "department_id": department,
        "title": f"bench claim {i}",
        "lines": [
            {
                "category": rng.choice(CATEGORIES),
                "amount": f"{amount / 100:.2f}",
                "expense_date": "2026-11-02",
            }
        ],
    }


async def generator_ceiling(url: str, seconds: float, concurrency: int) -> float:
    done = 0
    stop = time.monotonic() + seconds
    async with httpx.AsyncClient(limits=httpx.Limits(max_connections=concurrency)) as client:

        async def worker() -> None:
            nonlocal done
            while time.monotonic() < stop:
                (await client.get(f"{url}/health")).raise_for_status()
                done += 1

        started = time.monotonic()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return done / (time.monotonic() - started)


async def submit_closed_loop(url: str, token: str, n: int, tag: str, concurrency: int) -> float:
    rng = random.Random(1)
    bodies = [claim(i, tag, rng) for i in range(n)]
    headers = {"authorization": f"Bearer {token}"}
    queue = list(reversed(bodies))
    async with httpx.AsyncClient(
        timeout=60, limits=httpx.Limits(max_connections=concurrency)
    ) as client:

        async def worker() -> None:
            while queue:
                body = queue.pop()
                response = await client.post(f"{url}/api/v1/claims", json=body, headers=headers)
                if response.status_code != 201:
                    raise RuntimeError(f"submit failed: {response.status_code} {response.text}")

        started = time.monotonic()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return time.monotonic() - started


def submit_with_wrk(
    url: str, token: str, seconds: float, concurrency: int, tag: str
) -> dict[str, float]:
    """Closed-loop submission with wrk (native, so the generator is not the bottleneck)."""
    script = Path(__file__).with_name("submit_claims.lua")
    out = subprocess.run(
        [
            "wrk",
            "-t1",
            f"-c{concurrency}",
            f"-d{seconds:.0f}s",
            "--timeout",
            "30s",
            "-s",
            str(script),
            url,
            "--",
            token,
            tag,
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    match = re.search(r"WRK_RESULT (.*)", out)
    if match is None:
        raise RuntimeError(f"wrk gave no result:\n{out}")
    return {k: float(v) for k, v in (kv.split("=") for kv in match.group(1).split())}


def wrk_ceiling(url: str, concurrency: int) -> float:
    out = subprocess.run(
        ["wrk", "-t1", f"-c{concurrency}", "-d3s", f"{url}/health"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    match = re.search(r"Requests/sec:\s+([\d.]+)", out)
    return float(match.group(1)) if match else 0.0


async def submit_open_loop(
    url: str, token: str, rate: float, seconds: float, tag: str
) -> tuple[dict[str, float], list[float]]:
    """Offer claims at `rate` whatever the answers. Returns each claim's external id with the
    epoch it was due to be sent (latency counts from then, so a hub that answers late cannot
    hide requests queueing at the generator), and how late the generator itself sent each
    one (when that grows, the figures are the generator's, not the hub's)."""
    rng = random.Random(2)
    headers = {"authorization": f"Bearer {token}", "content-type": "application/json"}
    total = int(rate * seconds)
    bodies = [claim(i, tag, rng) for i in range(total)]
    encoded = [json.dumps(body).encode() for body in bodies]
    intended: dict[str, float] = {}
    lags: list[float] = []
    # A loop that falls behind must show it as latency, so requests wait for a connection as
    # long as it takes rather than failing the run.
    limits = httpx.Limits(
        max_connections=256, max_keepalive_connections=256, keepalive_expiry=KEEPALIVE_EXPIRY
    )
    async with httpx.AsyncClient(timeout=httpx.Timeout(60, pool=None), limits=limits) as client:
        tasks = []
        started, started_epoch = time.monotonic(), time.time()
        for i in range(total):
            due = started + i / rate
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)  # pacing the offered load
            lags.append(max(0.0, time.monotonic() - due))
            intended[bodies[i]["external_id"]] = started_epoch + i / rate
            tasks.append(
                asyncio.create_task(
                    client.post(f"{url}/api/v1/claims", content=encoded[i], headers=headers)
                )
            )
        for response in await asyncio.gather(*tasks):
            if response.status_code != 201:
                raise RuntimeError(f"submit failed: {response.status_code} {response.text}")
    return intended, lags


def paced_figures(
    rate: float,
    offered: tuple[dict[str, float], list[float]],
    times: list[tuple[str, float, float]],
) -> dict[str, Any]:
    """Figures of an open-loop run from the hub's clocks and the generator's schedule."""
    intended, lags = offered
    runs = [(intended[e], s, d) for e, s, d in times if e in intended]
    waits = [d - due for due, _, d in runs]
    accepted = [s for _, s, _ in runs]
    return {
        "offered_claims_per_s": rate,
        "claims": len(intended),
        "completed": len(runs),
        # below the offered rate when the hub could not take claims as fast as offered
        "accepted_claims_per_s": round(len(runs) / (max(accepted) - min(accepted)), 1),
        # how far the loop trailed the offered load when the offering stopped
        "last_done_after_offer_ended_ms": round(
            (max(d for _, _, d in runs) - max(intended.values())) * 1000, 1
        ),
        "p50_ms": round(pct(waits, 50) * 1000, 1),
        "p99_ms": round(pct(waits, 99) * 1000, 1),
        "max_ms": round(max(waits) * 1000, 1),
        # the generator's own lateness; when it is large the run measured the generator
        "generator_lag_p99_ms": round(pct(lags, 99) * 1000, 1),
    }


async def wait_final(url: str, token: str, timeout_s: float) -> dict[str, Any]:
    """Wait until every claim the hub holds has its final status written back."""
    headers = {"authorization": f"Bearer {token}"}
    deadline = time.monotonic() + timeout_s
    async with httpx.AsyncClient(timeout=30) as client:
        while True:
            stats: dict[str, Any] = (
                await client.get(f"{url}/api/v1/stats", headers=headers)
            ).json()
            total = sum(stats["claims"].values())
            busy = stats["outbox"].get("pending", 0) + stats["outbox"].get("inflight", 0)
            if (stats["written_back_final"] >= total and not busy) or time.monotonic() > deadline:
                return stats
            await asyncio.sleep(0.05)


def final_times(data_dir: Path, database_url: str) -> list[tuple[str, float, float]]:
    """(external id, submitted, written back) of claims whose final status reached the OA."""
    from sqlalchemy import String, cast, literal, select

    from finoa.store.tables import claims, outbox
    from finoa.store.uow import Database

    db = Database.connect(database_url)
    key = literal("status:") + claims.c.id + literal(":") + cast(claims.c.status_seq, String)
    with db.engine.connect() as conn:
        rows = conn.execute(
            select(claims.c.external_id, claims.c.submitted_epoch, outbox.c.done_epoch)
            .select_from(claims.join(outbox, outbox.c.idempotency_key == key))
            .where(outbox.c.status == "done", claims.c.status.in_(["posted", "rejected"]))
        ).all()
    db.dispose()
    return [(r.external_id, r.submitted_epoch, r.done_epoch) for r in rows]


def _pg(admin_url: str, sql: str) -> None:
    import psycopg

    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql)  # type: ignore[arg-type]


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered) + 0.5) - 1))]


def throughput(
    hub: str, token: str, args: argparse.Namespace, have_wrk: bool, work: Path, database_url: str
) -> dict[str, Any]:
    """Closed loop: claims submitted as fast as the hub takes them, completed end to end."""
    if have_wrk:
        wrk = submit_with_wrk(hub, token, args.seconds, args.concurrency, "B-T")
        submit_rate = wrk["requests"] / wrk["seconds"]
        if wrk["failures"]:
            raise RuntimeError(f"{wrk['failures']:.0f} submissions failed")
    else:
        submit_s = asyncio.run(submit_closed_loop(hub, token, args.claims, "B-T", args.concurrency))
        submit_rate = args.claims / submit_s
    stats = asyncio.run(wait_final(hub, token, 600))
    times = [t for t in final_times(work, database_url) if t[0].startswith("B-T")]
    first = min(s for _, s, _ in times)
    last = max(d for _, _, d in times)
    return {
        "generator": "wrk" if have_wrk else "python",
        "claims": len(times),
        "submit_claims_per_s": round(submit_rate, 1),
        "end_to_end_claims_per_s": round(len(times) / (last - first), 1),
        "dead_letters": stats["outbox"].get("dead", 0),
        "archived": archived_packages(database_url),  # by the hub's keeper, so far
    }


def archived_packages(database_url: str) -> int:
    from sqlalchemy import func, select

    from finoa.store.tables import archive_packages
    from finoa.store.uow import Database

    db = Database.connect(database_url)
    with db.engine.connect() as conn:
        count = conn.execute(select(func.count()).select_from(archive_packages)).scalar_one()
    db.dispose()
    return int(count)


BUDGET_DEPARTMENTS = sorted({department for _, department in APPLICANTS})
BUDGET_YUAN = 1_000_000_000  # far more than any run submits: no claim is refused


def import_bench_budgets(data_dir: Path, database_url: str) -> None:
    """`block` budgets for every department the bench's claims come from, all categories,
    this year (in company time), through `finoa budget import`."""
    from finoa.domain.periods import company_date

    year = company_date(datetime.now(UTC), ZoneInfo("Asia/Shanghai")).year
    rows = [f"org_unit,{d},all,{year},{BUDGET_YUAN},block" for d in BUDGET_DEPARTMENTS]
    csv_file = data_dir / "bench-budgets.csv"
    csv_file.write_text("node_kind,node_id,category,period,amount,mode\n" + "\n".join(rows) + "\n")
    env = {**os.environ, "FINOA_DATA_DIR": str(data_dir), "FINOA_DATABASE_URL": database_url}
    subprocess.run(
        [sys.executable, "-m", "finoa", "budget", "import", str(csv_file)],
        env=env,
        check=True,
        capture_output=True,
    )


async def wait_budgets_apply(url: str, token: str, timeout_s: float) -> None:
    """Submit probe claims until the hub's budget cache has the new budgets (a claim then
    occupies some), so that the measured run has every check on."""
    headers = {"Authorization": f"Bearer {token}"}
    deadline = time.monotonic() + timeout_s
    rng = random.Random(7)
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=30) as client:
        n = 0
        while True:
            answer = await client.post("/api/v1/claims", json=claim(n, "B-P", rng))
            answer.raise_for_status()
            n += 1
            budgets = (await client.get("/api/v1/budgets")).json()
            if any(b["occupied_fen"] or b["consumed_fen"] for b in budgets):
                return
            if time.monotonic() > deadline:
                raise RuntimeError("the hub never applied the imported budgets")
            await asyncio.sleep(0.5)


def budgets_ratio(
    args: argparse.Namespace, have_wrk: bool, work: Path, database_url: str, without: float
) -> dict[str, Any]:
    """The closed loop again on a fresh database of the same kind, with budgets covering
    every claim: each submission occupies its department's budget (a conditional UPDATE
    and a ledger row), each posting consumes it. The ratio is with budgets / without."""
    data = work / "budgets"
    data.mkdir()
    if args.postgres:
        name = f"{database_url.rpartition('/')[2]}_budgets"
        _pg(args.postgres, f'CREATE DATABASE "{name}"')
        url = args.postgres.rpartition("/")[0] + f"/{name}"
    else:
        url = f"sqlite:///{data / 'hub.db'}"
    try:
        env = {**LOOP_ALONE, "FINOA_SQLITE_SYNCHRONOUS": args.sqlite_synchronous}
        with stack(
            data, url, auto_decide=True, decision_batch=args.decision_batch, extra_env=env
        ) as running:
            assert running.hub is not None
            token = running.token()
            import_bench_budgets(data, url)
            asyncio.run(wait_budgets_apply(running.hub.url, token, 60))
            asyncio.run(wait_final(running.hub.url, token, 120))
            figures = throughput(running.hub.url, token, args, have_wrk, data, url)
            budgets = httpx.get(
                f"{running.hub.url}/api/v1/budgets",
                headers={"Authorization": f"Bearer {token}"},
            ).json()
    finally:
        if args.postgres:
            _pg(args.postgres, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    return {
        "with_budgets_end_to_end_claims_per_s": figures["end_to_end_claims_per_s"],
        "without_budgets_end_to_end_claims_per_s": without,
        "with_over_without": round(figures["end_to_end_claims_per_s"] / without, 3),
        "budgets": len(budgets),
        "consumed_fen": sum(b["consumed_fen"] for b in budgets),
        "dead_letters": figures["dead_letters"],
    }


def fresh_sqlite_throughput(
    args: argparse.Namespace, have_wrk: bool, data: Path, env: dict[str, str]
) -> dict[str, Any]:
    """The closed loop again on a fresh SQLite database, the hub started with `env`."""
    data.mkdir()
    url = f"sqlite:///{data / 'hub.db'}"
    with stack(
        data, url, auto_decide=True, decision_batch=args.decision_batch,
        extra_env={**LOOP_ALONE, **env},
    ) as running:  # fmt: skip
        assert running.hub is not None
        return throughput(running.hub.url, running.token(), args, have_wrk, data, url)


def writers_ratio(
    args: argparse.Namespace, have_wrk: bool, work: Path, bench_db: str
) -> dict[str, Any]:
    """The closed loop on fresh PostgreSQL databases with 1 and 4 group-commit writers,
    alternating (1, 4, 1, 4) so that both see the same machine; the ratio of the means."""
    rates: dict[int, list[float]] = {1: [], 4: []}
    for run, writers in enumerate((1, 4, 1, 4)):
        name = f"{bench_db}_w{run}"
        _pg(args.postgres, f'CREATE DATABASE "{name}"')
        url = args.postgres.rpartition("/")[0] + f"/{name}"
        data = work / f"writers-{run}"
        data.mkdir()
        try:
            with stack(
                data,
                url,
                auto_decide=True,
                decision_batch=args.decision_batch,
                extra_env={**LOOP_ALONE, "FINOA_GROUP_COMMIT_WRITERS": str(writers)},
            ) as running:
                assert running.hub is not None
                figures = throughput(running.hub.url, running.token(), args, have_wrk, data, url)
        finally:
            _pg(args.postgres, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        rates[writers].append(figures["end_to_end_claims_per_s"])
        print(f"  {writers} writer(s): {figures}")
    one, four = (sum(rates[w]) / len(rates[w]) for w in (1, 4))
    return {
        "one_writer_claims_per_s": rates[1],
        "four_writers_claims_per_s": rates[4],
        "four_over_one": round(four / one, 3),
    }


def main() -> int:
    erp = argparse.ArgumentParser(add_help=False)
    erp.add_argument("--erp", choices=["generic", "tryton"], default="generic")
    chosen, rest = erp.parse_known_args()
    if chosen.erp == "tryton":  # the month-end burst into a real trytond: its own arguments
        from tryton_burst import main as tryton_burst

        return tryton_burst(rest)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--seconds", type=float, default=20.0, help="length of the throughput run (wrk)"
    )
    parser.add_argument(
        "--claims",
        type=int,
        default=2000,
        help="claims for the throughput run when wrk is not installed",
    )
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--rate", type=float, default=50.0, help="0 skips the latency run")
    parser.add_argument("--rate-seconds", type=float, default=20.0)
    parser.add_argument("--sustain-rate", type=float, default=200.0, help="0 skips this run")
    parser.add_argument("--sustain-seconds", type=float, default=20.0)
    parser.add_argument(
        "--postgres",
        metavar="ADMIN_URL",
        nargs="?",
        const="postgresql://postgres@127.0.0.1:5432/postgres",
        help="run on a fresh PostgreSQL database created (and dropped) through ADMIN_URL",
    )
    parser.add_argument(
        "--decision-batch",
        type=int,
        default=100,
        help="decisions per webhook from the OA simulator (1: one webhook per decision)",
    )
    parser.add_argument(
        "--sqlite-synchronous",
        choices=["full", "normal"],
        default="full",
        help="the hub's SQLite durability (full: every acknowledged commit survives power loss)",
    )
    parser.add_argument(
        "--durability-ratio",
        action="store_true",
        help="also run the throughput phase with synchronous=normal and report the ratio",
    )
    parser.add_argument(
        "--archive-ratio",
        action="store_true",
        help="also run the throughput phase with the hub's archive keeper on (ratio)",
    )
    parser.add_argument(
        "--budgets",
        action="store_true",
        help="also run the throughput phase with block budgets covering every claim (ratio)",
    )
    parser.add_argument(
        "--writers-ratio",
        action="store_true",
        help="also run the throughput phase with 1 group-commit writer and with 4 (PostgreSQL)",
    )
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument(
        "--erp", choices=["generic", "tryton"], default="generic", help="tryton: the burst"
    )
    args = parser.parse_args()

    have_wrk = shutil.which("wrk") is not None
    work = Path(tempfile.mkdtemp(prefix="finoa-bench-"))
    bench_db = f"finoa_bench_{os.getpid()}"
    if args.postgres:
        _pg(args.postgres, f'CREATE DATABASE "{bench_db}"')
        database_url = args.postgres.rpartition("/")[0] + f"/{bench_db}"
    else:
        database_url = f"sqlite:///{work / 'hub.db'}"
    results: dict[str, Any] = {
        "database": database_url.split(":")[0],
        "cores": os.cpu_count(),
        "decision_batch": args.decision_batch,
    }
    try:
        env = {**LOOP_ALONE, "FINOA_SQLITE_SYNCHRONOUS": args.sqlite_synchronous}
        results["sqlite_synchronous"] = args.sqlite_synchronous
        with stack(
            work,
            database_url,
            auto_decide=True,
            decision_batch=args.decision_batch,
            extra_env=env,
        ) as running:
            assert running.hub is not None
            hub = running.hub.url
            token = running.token()
            results["generator_ceiling_rps"] = {
                "python_httpx": round(asyncio.run(generator_ceiling(hub, 3.0, 16))),
                "wrk": round(wrk_ceiling(hub, args.concurrency)) if have_wrk else None,
            }
            print(f"load generator ceilings (GET /health): {results['generator_ceiling_rps']}")

            results["throughput"] = throughput(hub, token, args, have_wrk, work, database_url)
            print(f"throughput: {results['throughput']}")

            if args.rate > 0:
                offered = asyncio.run(
                    submit_open_loop(hub, token, args.rate, args.rate_seconds, "B-R")
                )
                asyncio.run(wait_final(hub, token, 300))
                times = final_times(work, database_url)
                results["latency_at_rate"] = paced_figures(args.rate, offered, times)
                print(f"latency: {results['latency_at_rate']}")

            if args.sustain_rate > 0:
                offered = asyncio.run(
                    submit_open_loop(hub, token, args.sustain_rate, args.sustain_seconds, "B-S")
                )
                asyncio.run(wait_final(hub, token, 600))
                times = final_times(work, database_url)
                results["sustained"] = paced_figures(args.sustain_rate, offered, times)
                print(f"sustained: {results['sustained']}")
        if args.durability_ratio and not args.postgres:
            normal = fresh_sqlite_throughput(
                args, have_wrk, work / "normal", {"FINOA_SQLITE_SYNCHRONOUS": "normal"}
            )
            durable = results["throughput"]["end_to_end_claims_per_s"]
            results["durability"] = {
                "normal_end_to_end_claims_per_s": normal["end_to_end_claims_per_s"],
                "full_over_normal": round(durable / normal["end_to_end_claims_per_s"], 3),
            }
            print(f"durability cost: {results['durability']}")
        if args.archive_ratio and not args.postgres:
            keeping = fresh_sqlite_throughput(
                args, have_wrk, work / "archiving", {**env, "FINOA_ARCHIVE_EVERY_SECONDS": "15"}
            )
            off = results["throughput"]["end_to_end_claims_per_s"]
            results["archive"] = {
                "archived_during_the_run": keeping["archived"],
                "with_archiving_end_to_end_claims_per_s": keeping["end_to_end_claims_per_s"],
                "with_over_without": round(keeping["end_to_end_claims_per_s"] / off, 3),
            }
            print(f"archiving while the loop runs: {results['archive']}")
        if args.budgets:
            without = results["throughput"]["end_to_end_claims_per_s"]
            results["budgets"] = budgets_ratio(args, have_wrk, work, database_url, without)
            print(f"budget checks: {results['budgets']}")
        if args.writers_ratio and args.postgres:
            results["writers"] = writers_ratio(args, have_wrk, work, bench_db)
            print(f"group-commit writers: {results['writers']}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
        if args.postgres:
            _pg(args.postgres, f'DROP DATABASE IF EXISTS "{bench_db}" WITH (FORCE)')
    print(json.dumps(results, indent=2))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
