"""A small HTTP client for a running stack: the hub's API and the simulators' test endpoints."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from decimal import Decimal
from typing import Any

import httpx
import orjson
import pytest
from support.processes import Stack, wait_for

from finoa.security.signatures import signed_headers

PROBLEM_JSON = "application/problem+json"
FINAL = ("posted", "rejected")
VOUCHER_NO = r"^记-\d{4}$"


def new_external_id(prefix: str = "OA") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def claim_body(
    *, external_id: str | None = None, amount: str = "1280.50", **overrides: Any
) -> dict[str, Any]:
    """A valid claim for E0011 (Sales, reports to E0010): a travel line and a lodging line."""
    body: dict[str, Any] = {
        "external_id": external_id or new_external_id(),
        "applicant_id": "E0011",
        "department_id": "D02",
        "cost_center_id": "CC02",
        "project_id": "P001",
        "currency": "CNY",
        "title": "上海客户拜访 Shanghai client visit",
        "lines": [
            {
                "category": "travel",
                "amount": amount,
                "expense_date": "2025-11-03",
                "description": "高铁 high-speed rail",
                "invoice_refs": ["25312000000012345678"],
            },
            {
                "category": "lodging",
                "amount": "530.00",
                "tax": "30.00",
                "expense_date": "2025-11-03",
                "description": "酒店 hotel",
            },
        ],
    }
    body.update(overrides)
    return body


def claim_total_fen(body: dict[str, Any]) -> int:
    return sum(int(Decimal(str(line["amount"])) * 100) for line in body["lines"])


class HubClient:
    """Talks to one stack. Tokens carry every scope unless asked otherwise."""

    def __init__(self, stack: Stack) -> None:
        assert stack.hub is not None
        self.stack = stack
        self.url = stack.hub.url
        self.oa_url = stack.oa.url
        self.erp_url = stack.erp.url
        self.http = httpx.Client(timeout=30.0)
        self._token: str | None = None

    def __enter__(self) -> HubClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.http.close()

    # -- auth -------------------------------------------------------------------------------
    @property
    def token(self) -> str:
        if self._token is None:
            self._token = self.stack.token()
        return self._token

    def token_with(self, scope: str) -> str:
        response = self.http.post(
            f"{self.url}/api/v1/oauth/token",
            data={
                "grant_type": "client_credentials",
                "client_id": self.stack.secrets.client_id,
                "client_secret": self.stack.secrets.client_secret,
                "scope": scope,
            },
        )
        assert response.status_code == 200, response.text
        assert response.json()["scope"] == scope
        return str(response.json()["access_token"])

    def auth(self, token: str | None = None) -> dict[str, str]:
        return {"authorization": f"Bearer {token or self.token}"}

    # -- hub API ----------------------------------------------------------------------------
    def post_claim(
        self, body: Any, *, token: str | None = None, raw: bytes | None = None
    ) -> httpx.Response:
        headers = {**self.auth(token), "content-type": "application/json"}
        content = raw if raw is not None else orjson.dumps(body)
        return self.http.post(f"{self.url}/api/v1/claims", content=content, headers=headers)

    def submit(self, body: dict[str, Any]) -> dict[str, Any]:
        response = self.post_claim(body)
        assert response.status_code == 201, response.text
        claim: dict[str, Any] = response.json()
        return claim

    def claim(self, claim_id: str) -> dict[str, Any]:
        response = self.http.get(f"{self.url}/api/v1/claims/{claim_id}", headers=self.auth())
        assert response.status_code == 200, response.text
        claim: dict[str, Any] = response.json()
        return claim

    def decide(self, task_id: str, body: Any) -> httpx.Response:
        return self.http.post(
            f"{self.url}/api/v1/tasks/{task_id}/decision", json=body, headers=self.auth()
        )

    def stats(self) -> dict[str, Any]:
        response = self.http.get(f"{self.url}/api/v1/stats", headers=self.auth())
        assert response.status_code == 200, response.text
        stats: dict[str, Any] = response.json()
        return stats

    def dead_letters(self) -> list[dict[str, Any]]:
        response = self.http.get(f"{self.url}/api/v1/dead-letters", headers=self.auth())
        assert response.status_code == 200, response.text
        letters: list[dict[str, Any]] = response.json()["items"]
        return letters

    def webhook(self, event: dict[str, Any], *, msg_id: str | None = None) -> httpx.Response:
        """A claim.submitted / task.decided webhook, signed as the OA signs it."""
        body = orjson.dumps(event)
        headers = signed_headers(
            self.stack.secrets.oa_webhook_secret, msg_id or f"msg-{uuid.uuid4().hex}", body
        )
        return self.send_webhook(body, headers)

    def send_webhook(self, body: bytes, headers: dict[str, str]) -> httpx.Response:
        return self.http.post(
            f"{self.url}/api/v1/webhooks/generic-oa", content=body, headers=headers
        )

    # -- simulators -------------------------------------------------------------------------
    def _get(self, url: str, **params: Any) -> Any:
        response = self.http.get(url, params=params or None)
        assert response.status_code == 200, response.text
        return response.json()

    def oa_stats(self) -> dict[str, Any]:
        stats: dict[str, Any] = self._get(f"{self.oa_url}/_sim/stats")
        return stats

    def erp_stats(self) -> dict[str, Any]:
        stats: dict[str, Any] = self._get(f"{self.erp_url}/_sim/stats")
        return stats

    def erp_vouchers(self, claim_id: str | None = None) -> list[dict[str, Any]]:
        vouchers: list[dict[str, Any]] = self._get(f"{self.erp_url}/_sim/vouchers")
        if claim_id is None:
            return vouchers
        return [v for v in vouchers if v["source_ref"] == f"finoa:{claim_id}"]

    def oa_history(self, external_id: str) -> list[dict[str, Any]]:
        history: list[dict[str, Any]] = self._get(f"{self.oa_url}/_sim/claims/{external_id}")
        return history

    def oa_todos(self, claim_id: str) -> list[dict[str, Any]]:
        todos: list[dict[str, Any]] = self._get(f"{self.oa_url}/_sim/todos")
        return [t for t in todos if t["claim_id"] == claim_id]

    def oa_submit(self, claim: dict[str, Any]) -> dict[str, Any]:
        """Have the OA simulator send a signed claim.submitted webhook; its report."""
        response = self.http.post(f"{self.oa_url}/_sim/claims", json=claim)
        assert response.status_code == 200, response.text
        report: dict[str, Any] = response.json()
        return report

    def erp_faults(self, **spec: Any) -> None:
        response = self.http.post(f"{self.erp_url}/_sim/faults", json=spec)
        assert response.status_code == 200, response.text

    def clear_erp_faults(self) -> None:
        response = self.http.delete(f"{self.erp_url}/_sim/faults")
        assert response.status_code == 200, response.text

    # -- waiting ----------------------------------------------------------------------------
    def wait_claim(self, claim_id: str, status: str, timeout_s: float = 30.0) -> dict[str, Any]:
        """Poll the claim until it reaches `status`; fail at once if it ends elsewhere."""
        last: dict[str, Any] = {}

        def reached() -> dict[str, Any] | None:
            nonlocal last
            last = self.claim(claim_id)
            if last["status"] != status and last["status"] in FINAL:
                raise AssertionError(
                    f"claim {claim_id} ended {last['status']} (reason {last['reason']!r}), "
                    f"expected {status}"
                )
            return last if last["status"] == status else None

        try:
            return wait_for(reached, timeout_s, f"claim {claim_id} to be {status}")
        except AssertionError as exc:
            raise AssertionError(
                f"{exc}; last status {last.get('status')!r}; hub stats {self.stats()}; "
                f"dead letters {self.dead_letters()}"
            ) from None

    def wait_history(self, external_id: str, final: str, timeout_s: float = 30.0) -> list[Any]:
        """The OA's status history for a claim once its final status has been written back."""
        return wait_for(
            lambda: (h := self.oa_history(external_id)) and h[-1]["status"] == final and h,
            timeout_s,
            f"the OA to hear that {external_id} is {final}",
        )

    def quiesce(self, timeout_s: float = 30.0) -> None:
        """Wait until nothing is left to deliver: the outbox is settled and the simulated
        approvers have sent every decision they took."""

        def settled_outbox() -> dict[str, int] | None:
            outbox: dict[str, int] = self.stats()["outbox"]
            return None if set(outbox) - {"done", "dead"} else outbox

        def settled() -> bool:
            # outbox, OA, outbox again: a delivery or decision in flight during the first
            # read shows as a pending decision or as new outbox rows by the last one
            before = settled_outbox()
            if before is None or self.oa_stats()["decisions_pending"] != 0:
                return False
            return settled_outbox() == before

        wait_for(settled, timeout_s, "the outbox to settle")

    def snapshot(self) -> dict[str, Any]:
        """What a request could have written, once the stack is quiet."""
        self.quiesce()
        stats = self.stats()
        return {
            "claims": stats["claims"],
            "outbox": stats["outbox"],
            "written_back_final": stats["written_back_final"],
            "erp": self.erp_stats(),
            "oa": self.oa_stats(),
        }

    @contextmanager
    def writes_nothing(self) -> Iterator[None]:
        """Assert that the block changes no claim, outbox row, ERP voucher or OA record."""
        before = self.snapshot()
        yield
        after = self.snapshot()
        assert after == before


StackFactory = Callable[..., AbstractContextManager[HubClient]]


def assert_problem(
    response: httpx.Response,
    status: int,
    *,
    field: str | None = None,
    kind: str | None = None,
    detail_contains: str | None = None,
    prefixed: bool = True,
) -> dict[str, Any]:
    """A problem+json answer with `status`, naming `field` and mentioning `detail_contains`;
    `prefixed`: the detail reads "field: reason"."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM_JSON), response.headers
    problem: dict[str, Any] = response.json()
    assert problem["status"] == status
    assert problem["type"].startswith("https://finoa.dev/problems/")
    assert problem["title"]
    assert problem["detail"]
    if kind is not None:
        assert problem["type"] == f"https://finoa.dev/problems/{kind}", problem
    if field is not None:
        assert problem.get("field") == field, problem
        if prefixed:
            assert problem["detail"].startswith(f"{field}:"), problem
    if detail_contains is not None:
        assert detail_contains in problem["detail"], problem
    return problem


def pending_task(hub: HubClient) -> dict[str, Any]:
    """A fresh claim waiting for its manager (E0010) while nobody decides in the OA: its one
    task, with `claim_id` and the claim's `external_id`, once its todo is open in the OA."""
    claim = hub.submit(claim_body())
    task: dict[str, Any]
    (task,) = claim["tasks"]
    assert (task["assignee_id"], task["status"]) == ("E0010", "pending")
    wait_for(
        lambda: [t["state"] for t in hub.oa_todos(claim["id"])] == ["open"],
        15,
        "the todo in the OA",
    )
    task["external_id"] = claim["external_id"]
    return task


def assert_still_pending(hub: HubClient, task: dict[str, Any]) -> None:
    """Nothing happened to `task`: undecided, its claim in approval, its todo open, no voucher."""
    claim = hub.claim(task["claim_id"])
    assert claim["status"] == "in_approval"
    (now,) = claim["tasks"]
    assert (now["id"], now["status"], now["comment"], now["decided_at"]) == (
        task["id"],
        "pending",
        None,
        None,
    )
    assert [t["state"] for t in hub.oa_todos(task["claim_id"])] == ["open"]
    assert hub.erp_vouchers(task["claim_id"]) == []


def mode_fixtures(
    vendor: str, stack_of: Callable[..., AbstractContextManager[Any]]
) -> tuple[Any, Any]:
    """The module-scoped `oa_led` and `hub_led` fixtures of a vendor's e2e tests: the
    stack with the vendor running the approvals (decided by each test, its approvers not
    deciding), and with finoa running them (the simulated approvers deciding its tasks)."""
    from e2e.conftest import _database

    def one(mode: str, sim_args: tuple[str, ...]) -> Any:
        def fixture(
            backend: str, request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
        ) -> Iterator[Any]:
            directory = tmp_path_factory.mktemp(f"{vendor}-{mode}-{backend}")
            with (
                _database(backend, directory, request) as url,
                stack_of(directory / "data", url, approvals=mode, sim_args=sim_args) as stack,
            ):
                yield stack

        fixture.__name__ = mode.replace("-", "_")
        return pytest.fixture(scope="module", name=fixture.__name__)(fixture)

    return one("oa-led", ("--no-auto-decide",)), one("hub-led", ())
