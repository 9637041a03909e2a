"""The e-cology simulator's approvers and callbacks: a todo opened by the connector is acted on,
and the decision is posted signed to the callback URL, retried while the receiver answers
503 and given up on a final 4xx; the CLI refuses bad options with a documented exit code."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from fastapi import FastAPI, Request, Response
from support.processes import Server, wait_for
from support.threaded import serve_in_thread
from support.weaver import weaver_config, weaver_simulator

from finoa.connectors.base import OutboundMessage
from finoa.connectors.weaver.client import WeaverConnector
from finoa.connectors.weaver.inbound import callback_signature


class Receiver:
    """Answers 503 to the first two attempts of each event, then 200; `final-` events 422."""

    def __init__(self, secret: str) -> None:
        self.secret = secret
        self.attempts: Counter[str] = Counter()
        self.bad_signatures = 0
        self.app = FastAPI()
        self.app.post("/callback")(self.receive)

    async def receive(self, request: Request) -> Response:
        body = await request.body()
        stamp = request.headers.get("timestamp", "")
        if request.headers.get("sign") != callback_signature(self.secret, stamp, body):
            self.bad_signatures += 1
        flowid = orjson.loads(body)["flowid"]
        self.attempts[flowid] += 1
        if flowid.startswith("final-"):
            return Response(b'{"status": 422}', 422)
        if self.attempts[flowid] <= 2:
            return Response(b"busy", 503)
        return Response(b'{"code": 0, "status": true}', 200)


@pytest.fixture(scope="module")
def receiver_and_sim(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[Receiver, Server, dict[str, str]]]:
    directory = tmp_path_factory.mktemp("weaver-callbacks")
    from support.weaver import weaver_credentials

    receiver = Receiver(weaver_credentials(directory)["callback_secret"])
    with (
        serve_in_thread(receiver.app, "callback receiver") as url,
        weaver_simulator(directory, callback_url=f"{url}/callback") as (server, credentials),
    ):
        yield receiver, server, credentials


def open_todo(server: Server, credentials: dict[str, str], task_id: str, sequence: int) -> None:
    payload = {
        "op": "create", "task_id": task_id, "claim_id": "CL9", "external_id": "OA-9",
        "assignee_id": "E0010", "role": "manager", "title": "报销", "amount_fen": 100,
        "currency": "CNY",
    }  # fmt: skip

    async def push() -> None:
        async with httpx.AsyncClient() as http:
            connector = WeaverConnector(weaver_config(server.url, credentials), http)
            message = OutboundMessage(sequence, "todo.push", "CL9", f"todo:{task_id}", payload)
            (result,) = await connector.deliver([message])
            assert result.ok, result.error

    asyncio.run(push())


def callback(server: Server, eventid: str) -> dict[str, Any] | None:
    rows = httpx.get(server.url + "/_sim/callbacks").json()
    return next((r for r in rows if r["eventid"] == eventid), None)


def test_decisions_are_signed_and_retried_until_the_receiver_takes_them(
    receiver_and_sim: tuple[Receiver, Server, dict[str, str]],
) -> None:
    receiver, server, credentials = receiver_and_sim
    open_todo(server, credentials, "T-CB1", 100)
    done = wait_for(
        lambda: (c := callback(server, "weaver-T-CB1-E0010")) and c["outcome"] == "delivered" and c,
        30,
        "the callback to be delivered",
    )
    assert done["attempts"] == 3 and receiver.attempts["T-CB1"] == 3
    assert done["body"]["operate"] == "submit" and done["body"]["operator"] == "E0010"
    assert receiver.bad_signatures == 0


def test_a_final_refusal_is_not_retried(
    receiver_and_sim: tuple[Receiver, Server, dict[str, str]],
) -> None:
    receiver, server, credentials = receiver_and_sim
    open_todo(server, credentials, "final-T-CB2", 101)
    refused = wait_for(
        lambda: (
            (c := callback(server, "weaver-final-T-CB2-E0010"))
            and c["outcome"].startswith("refused")
            and c
        ),
        30,
        "the callback to be refused",
    )
    assert refused["attempts"] == 1 and refused["last_status"] == 422


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--reject-rate", "3"], "error: --reject-rate: must be between 0 and 1"),
        (["--callback-url", "ftp://x"], "error: --callback-url: must start with http://"),
        (["--token-ttl", "0"], "error: --token-ttl: at least 1 second"),
    ],
)
def test_bad_simulator_options_exit_2_with_a_fix(
    tmp_path: Path, args: list[str], message: str
) -> None:
    answer = subprocess.run(
        [sys.executable, "-m", "finoa", "sim", "weaver", "--data-dir", str(tmp_path), *args],
        capture_output=True, text=True, env=os.environ.copy(), timeout=60,
    )  # fmt: skip
    assert answer.returncode == 2
    lines = answer.stderr.strip().splitlines()
    assert lines[0].startswith(message) and lines[1].startswith("fix: ")
