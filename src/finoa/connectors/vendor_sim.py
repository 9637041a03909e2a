"""What the DingTalk, Feishu and WeCom simulators share: the console credentials, the
contacts built from master data, access tokens, the per-app rate limit, simulated
approvers, stored callbacks sent with the vendor's retry schedule, stats and the HTTP app's
steering routes.

Each vendor's `simulator.py` keeps its wire format: paths, field names, error codes and
shapes, token lifetimes and how a callback is sealed. A vendor simulator is a
`VendorSimulator` subclass naming its credentials, directory, schema and retry schedule,
and `vendor_app` gives it the app every one of them serves.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from importlib import resources
from pathlib import Path
from typing import Any, ClassVar, Generic, Protocol, Self, TypedDict, TypeVar, cast

import httpx
import orjson
import yaml
from fastapi import FastAPI, Request
from fastapi.responses import Response

from finoa.connectors.simulation import (
    CallbackPlumbing,
    FaultMiddleware,
    FaultState,
    add_sim_routes,
    json_response,
    open_database,
    transaction,
)

DEFAULT_TOKEN_TTL = 7200  # seconds a token lives, at every one of the vendors
DEFAULT_QPS = 50  # calls per second per app before the vendor's rate limit refuses

TOKENS_TABLE = """
CREATE TABLE IF NOT EXISTS tokens (token TEXT PRIMARY KEY, expires_at REAL NOT NULL);
"""
# The callback queue of the simulators whose events are JSON with an id of their own.
EVENT_CALLBACKS_TABLE = """
CREATE TABLE IF NOT EXISTS callbacks (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, event_id TEXT NOT NULL, event TEXT NOT NULL,
    state TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, last_status INTEGER,
    last_error TEXT, url TEXT
);
"""
PRESS_ATTEMPTS = 3  # a simulated approver presses a button up to three times on 5xx


class ErrcodeError(Exception):
    """An error the vendor answers HTTP 200 `{"errcode", "errmsg"}` (DingTalk's topapi,
    WeCom); each vendor's app adds what else its answers carry."""

    def __init__(self, errcode: int, errmsg: str) -> None:
        super().__init__(errmsg)
        self.errcode, self.errmsg = errcode, errmsg


class ConsoleCredentials:
    """What the vendor's console shows an app's developer, kept in `credentials.json` of the
    simulator's data dir under the console's names.

    A subclass is a frozen dataclass; `CONSOLE_NAMES` maps each of its fields to the
    console's name, `constants()` adds the fixed ids the console shows with them, and
    `fresh()` makes new credentials."""

    CONSOLE_NAMES: ClassVar[dict[str, str]]

    def constants(self) -> dict[str, Any]:
        return {}

    def console(self) -> dict[str, Any]:
        named = {name: getattr(self, field) for field, name in self.CONSOLE_NAMES.items()}
        return {**named, **self.constants()}

    @classmethod
    def fresh(cls) -> Self:
        raise NotImplementedError

    @classmethod
    def load_or_create(cls, data_dir: Path) -> Self:
        path = data_dir / "credentials.json"
        if path.exists():
            raw = json.loads(path.read_text(encoding="utf-8"))
            make = cast(Callable[..., Self], cls)
            return make(**{field: raw[name] for field, name in cls.CONSOLE_NAMES.items()})
        made = cls.fresh()
        data_dir.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(made.console(), indent=2), encoding="utf-8")
        path.chmod(0o600)
        return made


class Person(Protocol):
    @property
    def manager(self) -> str | None: ...

    @property
    def active(self) -> bool: ...


U = TypeVar("U", bound=Person)


class SimDirectory(Generic[U]):
    """A vendor's contacts, built from finoa master data and the vendor's department code
    table (`defaults/<vendor>/tables/departments.yaml`): departments by the vendor's key,
    users by employee id; units and employees the table does not number are left out.

    A subclass names `vendor` and builds its own department and user records."""

    vendor: ClassVar[str]

    def __init__(self, masterdata: dict[str, Any]) -> None:
        table = resources.files("finoa.mapping").joinpath(
            f"defaults/{self.vendor}/tables/departments.yaml"
        )
        codes = yaml.safe_load(table.read_text("utf-8"))
        keys = {str(v): self.department_key(k) for k, v in codes.items()}
        self.departments: dict[Any, dict[str, Any]] = {}
        for unit in masterdata.get("org_units") or []:
            key = keys.get(unit["id"])
            if key is not None:
                parent = keys.get(unit.get("parent_id") or "")
                self.departments[key] = self.department_entry(unit, key, parent)
        self.users: dict[str, U] = {}
        for person in masterdata.get("employees") or []:
            key = keys.get(person["department_id"])
            if key is not None:
                self.users[person["id"]] = self.user_entry(person, key)

    @staticmethod
    def department_key(code: Any) -> Any:
        """A department's key as the vendor's API has it (a number unless overridden)."""
        return int(code)

    def department_entry(self, unit: dict[str, Any], key: Any, parent: Any) -> dict[str, Any]:
        raise NotImplementedError

    def user_entry(self, person: dict[str, Any], department: Any) -> U:
        raise NotImplementedError

    def refusal(self, field: str, userid: Any, user: U | None) -> Exception:
        """The vendor's error for an unknown (`user` None) or departed user."""
        raise NotImplementedError

    def active_user(self, userid: Any, field: str) -> U:
        user = self.users.get(userid) if isinstance(userid, str) else None
        if user is None or not user.active:
            raise self.refusal(field, userid, user)
        return user

    def approver_of(self, user: U) -> U:
        """The nearest active manager up the chain, else the user."""
        manager = user.manager
        while manager is not None:
            found = self.users.get(manager)
            if found is not None and found.active:
                return found
            manager = found.manager if found else None
        return user


class RateLimit:
    """At most `qps` calls in any one-second window."""

    def __init__(self, qps: int) -> None:
        self.qps = qps
        self.calls: list[float] = []
        self.refused = 0

    def allow(self) -> bool:
        now = time.monotonic()
        self.calls = [t for t in self.calls if now - t < 1.0]
        if len(self.calls) >= self.qps:
            self.refused += 1
            return False
        self.calls.append(now)
        return True


def now_ms() -> int:
    return int(time.time() * 1000)


async def json_body(request: Request, invalid: Callable[[], Exception]) -> Any:
    """The request body as JSON, None when empty; `invalid()` is raised when it is not JSON."""
    raw = await request.body()
    if not raw:
        return None
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise invalid() from None


class SimOptions(TypedDict, total=False):
    """How a vendor simulator is run (`finoa sim <vendor>` options): where events go, the
    master data behind its contacts (the sample company by default), token lifetime, rate
    limit, the share its approvers refuse, whether they decide at all, the scale of its
    callback retries and the seed of its draws."""

    callback_url: str | None
    masterdata: dict[str, Any] | None
    token_ttl: int
    qps: int
    reject_rate: float
    auto_decide: bool
    retry_scale: float
    seed: int | None


class VendorSimulator(CallbackPlumbing):
    """State and behaviour every vendor OA simulator has.

    A subclass names its `credentials_type`, `directory_type`, SQLite `database` file and
    `schema` (the tokens table is added), `retry_delays` (the vendor's callback retry
    schedule, scaled by `retry_scale`), the extra `counters` of its stats and the
    `stat_queries` its stats start with, and implements `post_callback`."""

    credentials_type: ClassVar[type[ConsoleCredentials]]
    directory_type: ClassVar[type[SimDirectory[Any]]]
    database: ClassVar[str]
    schema: ClassVar[str]
    retry_delays: ClassVar[tuple[float, ...]]
    counters: ClassVar[tuple[str, ...]] = ()
    stat_queries: ClassVar[dict[str, str]] = {}

    credentials: ConsoleCredentials
    directory: SimDirectory[Any]

    def __init__(
        self,
        data_dir: Path,
        *,
        callback_url: str | None = None,
        masterdata: dict[str, Any] | None = None,
        token_ttl: int = DEFAULT_TOKEN_TTL,
        qps: int = DEFAULT_QPS,
        reject_rate: float = 0.0,
        auto_decide: bool = True,
        retry_scale: float = 1.0,
        seed: int | None = None,
    ) -> None:
        self.data_dir = Path(data_dir)
        self.credentials = self.credentials_type.load_or_create(self.data_dir)
        self.conn = open_database(self.data_dir / self.database, TOKENS_TABLE + self.schema)
        if masterdata is None:
            from finoa.services.masterdata import sample_masterdata

            masterdata = sample_masterdata()
        self.directory = self.directory_type(masterdata)
        self.callback_url = callback_url
        self.token_ttl = token_ttl
        self.limit = RateLimit(qps)
        self.reject_rate = reject_rate
        self.auto_decide = auto_decide
        self.retry_scale = retry_scale
        self.rng = random.Random(seed)
        self.faults = FaultState()
        CallbackPlumbing.__init__(self)
        self.counts = dict.fromkeys(("token_refusals", "tokens_issued", *self.counters), 0)
        self.api_calls: dict[str, int] = {}  # calls to the vendor's API, per path

    # -- tokens --------------------------------------------------------------------------

    def store_token(self, token: str) -> None:
        """Keep a newly issued token, valid for `token_ttl` seconds from now."""
        with transaction(self.conn):
            self.conn.execute(
                "INSERT INTO tokens VALUES (?, ?)", (token, time.time() + self.token_ttl)
            )
        self.counts["tokens_issued"] += 1

    def token_state(self, token: str | None) -> str:
        """`ok`, else why a call with `token` is refused (`missing`, `unknown` or `expired`,
        counted as a token refusal)."""
        if not token:
            state = "missing"
        else:
            row = self.conn.execute(
                "SELECT expires_at FROM tokens WHERE token = ?", (token,)
            ).fetchone()
            if row is None:
                state = "unknown"
            else:
                state = "ok" if time.time() < row["expires_at"] else "expired"
        if state != "ok":
            self.counts["token_refusals"] += 1
        return state

    def expire_tokens(self) -> int:
        with transaction(self.conn):
            return self.conn.execute("UPDATE tokens SET expires_at = 0").rowcount

    # -- simulated approvers -------------------------------------------------------------

    def approves(self) -> bool:
        """A simulated approver's draw: True (agree) unless it falls within `reject_rate`."""
        return self.rng.random() >= self.reject_rate

    async def decide_soon(self, decide: Callable[[bool], object]) -> None:
        """A moment later, the approver decides: `decide(agrees)`."""
        await asyncio.sleep(0.05)
        decide(self.approves())

    async def press_button(
        self, key: str, choice: str, url: str, content: bytes, headers: dict[str, str]
    ) -> tuple[int | None, str]:
        """An approver presses a button that posts `content` to `url` (again on a 5xx or a
        transport error); the press is kept in the `presses` table under `key`."""
        status: int | None = None
        answer = ""
        for attempt in range(PRESS_ATTEMPTS):
            try:
                response = await self.client().post(url, content=content, headers=headers)
                status, answer = response.status_code, response.text[:500]
                if response.status_code < 500:
                    break
            except httpx.HTTPError as exc:
                answer = f"{type(exc).__name__}: {exc}"
            await asyncio.sleep(0.2 * (attempt + 1))
        with transaction(self.conn):
            self.conn.execute(
                "INSERT OR REPLACE INTO presses VALUES (?, ?, ?, ?)", (key, choice, status, answer)
            )
        return status, answer

    # -- callbacks -----------------------------------------------------------------------

    def queue_callback(self, columns: dict[str, Any]) -> None:
        """Store a callback (`columns` of the `callbacks` table) and queue it for the
        callback URL; nothing is sent without one."""
        if self.callback_url is None:
            return
        names = ", ".join([*columns, "state", "url"])
        marks = ", ".join("?" * len(columns))
        with transaction(self.conn):
            seq = self.conn.execute(
                f"INSERT INTO callbacks ({names}) VALUES ({marks}, 'pending', ?)",
                (*columns.values(), self.callback_url),
            ).lastrowid
        assert seq is not None
        self.queue.put_nowait(seq)

    async def post_callback(self, row: Any) -> httpx.Response:
        """Send one stored callback (a `callbacks` row) as the vendor does."""
        raise NotImplementedError

    def reply_problem(self, response: httpx.Response) -> str | None:
        """None when the hub's reply acknowledges the callback; else why not."""
        if response.status_code != 200:
            return f"HTTP {response.status_code}: {response.text[:200]}"
        return None

    async def _send_callbacks(self) -> None:
        while True:
            seq = await self.queue.get()
            self.later(self._deliver(seq))

    async def _deliver(self, seq: int) -> None:
        row = self.conn.execute("SELECT * FROM callbacks WHERE seq = ?", (seq,)).fetchone()
        for attempt in range(len(self.retry_delays) + 1):
            problem: str | None
            status: int | None = None
            try:
                async with self.sending:
                    response = await self.post_callback(row)
                status = response.status_code
                problem = self.reply_problem(response)
            except httpx.HTTPError as exc:
                problem = f"{type(exc).__name__}: {exc}"
            last = attempt == len(self.retry_delays)
            state = "delivered" if problem is None else ("failed" if last else "retrying")
            with transaction(self.conn):
                self.conn.execute(
                    "UPDATE callbacks SET state = ?, attempts = ?, last_status = ?, last_error "
                    "= ? WHERE seq = ?",
                    (state, attempt + 1, status, problem, seq),
                )
            if problem is None or last:
                return
            await asyncio.sleep(self.retry_delays[attempt] * self.retry_scale)

    def callback_log(self) -> list[dict[str, Any]]:
        """`/_sim/callbacks`: every stored callback, its JSON event read."""
        rows = self.conn.execute(
            "SELECT seq, event_id, event, state, attempts, last_status, last_error FROM "
            "callbacks ORDER BY seq"
        ).fetchall()
        return [{**dict(r), "event": json.loads(r["event"])} for r in rows]

    # -- stats ---------------------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        def rows(sql: str) -> dict[str, int]:
            return {str(k): int(v) for k, v in self.conn.execute(sql).fetchall()}

        return {
            **{name: rows(sql) for name, sql in self.stat_queries.items()},
            "callbacks": rows("SELECT state, COUNT(*) FROM callbacks GROUP BY state"),
            "rate_limited": self.limit.refused,
            **self.counts,
            "api_calls": dict(self.api_calls),
            "faults": self.faults.snapshot(),
        }


def vendor_app(
    sim: VendorSimulator, title: str, *, fault_prefixes: tuple[str, ...] = ("/api/",)
) -> FastAPI:
    """The app every vendor simulator serves before adding its own paths: the simulator
    started and closed with the app, every call outside `/_sim/` counted per path, faults
    injected on the paths under `fault_prefixes`, and the `/_sim/*` routes for faults,
    stats, credentials, stored callbacks and expiring every token."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        sim.resume()
        yield
        await sim.close()

    app = FastAPI(title=title, lifespan=lifespan)
    app.state.sim = sim

    @app.middleware("http")
    async def count_calls(request: Request, call_next: Any) -> Response:
        """Every call to the vendor's API counts, per path (`/_sim/stats` `api_calls`)."""
        path = request.url.path
        if not path.startswith("/_sim/"):
            sim.api_calls[path] = sim.api_calls.get(path, 0) + 1
        response: Response = await call_next(request)
        return response

    app.add_middleware(FaultMiddleware, state=sim.faults, prefixes=fault_prefixes)
    add_sim_routes(app, sim.faults)

    @app.get("/_sim/stats")
    async def stats() -> Response:
        return json_response(sim.stats())

    @app.get("/_sim/credentials")
    async def credentials() -> Response:
        return json_response(sim.credentials.console())

    @app.get("/_sim/callbacks")
    async def callbacks() -> Response:
        return json_response(sim.callback_log())

    @app.post("/_sim/tokens:expire")
    async def expire() -> Response:
        return json_response({"expired": sim.expire_tokens()})

    return app


def add_press_route(app: FastAPI, sim: VendorSimulator) -> None:
    """`GET /_sim/presses`: the buttons the simulated approvers pressed, and the answers."""

    @app.get("/_sim/presses")
    async def presses() -> Response:
        return json_response(
            [dict(r) for r in sim.conn.execute("SELECT * FROM presses").fetchall()]
        )
