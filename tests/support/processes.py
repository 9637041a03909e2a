"""Real processes for tests: the hub and the simulators, each its own server on 127.0.0.1."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml

from finoa import demo_stack
from finoa.security.signatures import new_secret


def free_port() -> int:
    return demo_stack.free_port()


@dataclass
class Server:
    name: str
    url: str
    process: subprocess.Popen[bytes]
    log_path: Path
    env: dict[str, str] | None = None  # what it was started with beside os.environ

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)


@dataclass(frozen=True)
class Secrets:
    """Shared secrets, passed to every process through the environment."""

    token_secret: str
    oa_webhook_secret: str
    oa_api_key: str
    erp_api_key: str
    client_id: str = "test-client"
    client_secret: str = "test-client-secret"

    @classmethod
    def fresh(cls) -> Secrets:
        return cls(
            token_secret=os.urandom(24).hex(),
            oa_webhook_secret=new_secret(),
            oa_api_key=os.urandom(12).hex(),
            erp_api_key=os.urandom(12).hex(),
        )

    def env(self) -> dict[str, str]:
        return {
            "FINOA_TOKEN_SECRET": self.token_secret,
            "FINOA_OA_WEBHOOK_SECRET": self.oa_webhook_secret,
            "FINOA_OA_API_KEY": self.oa_api_key,
            "FINOA_ERP_API_KEY": self.erp_api_key,
            "FINOA_CLIENTS": f"{self.client_id}:{self.client_secret}:*",
        }


def start(
    name: str,
    args: list[str],
    env: dict[str, str],
    ready_path: str,
    port: int,
    log_dir: Path,
    deadline_s: float = 60.0,
) -> Server:
    """Run `python -m finoa ARGS` and wait until GET ready_path answers below 500."""
    log_path = log_dir / f"{name}.log"
    full_env = {**os.environ, **env}
    process = subprocess.Popen(
        [sys.executable, "-m", "finoa", *args],
        env=full_env,
        stdout=log_path.open("wb"),
        stderr=subprocess.STDOUT,
        cwd=log_dir,
    )
    url = f"http://127.0.0.1:{port}"
    server = Server(name, url, process, log_path, env)
    deadline = time.monotonic() + deadline_s
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"{name} exited early:\n{server.log()}")
        try:
            if httpx.get(url + ready_path, timeout=1.0).status_code < 500:
                return server
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            server.stop()
            raise RuntimeError(f"{name} not ready in {deadline_s}s:\n{server.log()}")
        time.sleep(0.05)  # readiness polling with a deadline


def hub_token(
    hub_url: str,
    client_id: str,
    client_secret: str,
    scope: str | None = None,
    http: httpx.Client | None = None,
) -> str:
    """An access token from the hub's client-credentials endpoint."""
    data = {"grant_type": "client_credentials", "client_id": client_id,
            "client_secret": client_secret}  # fmt: skip
    if scope is not None:
        data["scope"] = scope
    post = http.post if http is not None else httpx.post
    response = post(f"{hub_url}/api/v1/oauth/token", data=data, timeout=10)
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"])


def read_claim(
    hub_url: str, token: str, claim_id: str, http: httpx.Client | None = None
) -> dict[str, Any]:
    """The hub's representation of one claim."""
    get = http.get if http is not None else httpx.get
    response = get(
        f"{hub_url}/api/v1/claims/{claim_id}",
        headers={"authorization": f"Bearer {token}"},
        timeout=10,
    )
    assert response.status_code == 200, response.text
    return dict(response.json())


@dataclass
class Stack:
    """The hub with its OA and ERP simulators."""

    hub: Server | None
    oa: Server
    erp: Server
    secrets: Secrets
    data_dir: Path

    def token(self) -> str:
        assert self.hub is not None
        return hub_token(self.hub.url, self.secrets.client_id, self.secrets.client_secret)


@contextmanager
def simulators(
    data_dir: Path,
    secrets: Secrets,
    hub_port: int,
    *,
    auto_decide: bool,
    reject_rate: float = 0,
    decision_batch: int | None = None,
) -> Iterator[tuple[Server, Server]]:
    """The ERP and OA simulators as real processes."""
    data_dir.mkdir(parents=True, exist_ok=True)
    env = {**secrets.env(), "FINOA_DATA_DIR": str(data_dir)}
    erp_port, oa_port = free_port(), free_port()
    erp = start(
        "erp", ["sim", "erp", "--port", str(erp_port)], env, "/_sim/stats", erp_port, data_dir
    )
    try:
        oa_args = [
            "sim",
            "oa",
            "--port",
            str(oa_port),
            "--hub-url",
            f"http://127.0.0.1:{hub_port}",
            "--reject-rate",
            str(reject_rate),
        ]
        if not auto_decide:
            oa_args.append("--no-auto-decide")
        if decision_batch is not None:
            oa_args += ["--decision-batch", str(decision_batch)]
        oa = start("oa", oa_args, env, "/_sim/stats", oa_port, data_dir)
        try:
            yield oa, erp
        finally:
            oa.stop()
    finally:
        erp.stop()


@contextmanager
def stack(
    data_dir: Path,
    database_url: str,
    *,
    auto_decide: bool = True,
    reject_rate: float = 0.0,
    decision_batch: int | None = None,
    extra_env: dict[str, str] | None = None,
) -> Iterator[Stack]:
    """Hub + simulators, all real processes; the hub uses `database_url`."""
    secrets = Secrets.fresh()
    hub_port = free_port()
    with simulators(
        data_dir,
        secrets,
        hub_port,
        auto_decide=auto_decide,
        reject_rate=reject_rate,
        decision_batch=decision_batch,
    ) as (oa, erp):
        env = {
            **secrets.env(),
            "FINOA_DATA_DIR": str(data_dir),
            "FINOA_DATABASE_URL": database_url,
            "FINOA_OA_BASE_URL": oa.url,
            "FINOA_ERP_BASE_URL": erp.url,
            "FINOA_CONNECTOR_TIMEOUT_SECONDS": "2",
            **(extra_env or {}),
        }
        subprocess.run(
            [sys.executable, "-m", "finoa", "masterdata", "load"],
            env={**os.environ, **env},
            check=True,
            capture_output=True,
        )
        hub = start("hub", ["serve", "--port", str(hub_port)], env, "/ready", hub_port, data_dir)
        try:
            yield Stack(hub, oa, erp, secrets, data_dir)
        finally:
            hub.stop()


def wait_for(predicate, timeout_s: float = 30.0, what: str = "condition"):  # type: ignore[no-untyped-def]
    """Poll `predicate` until it returns a truthy value or the deadline passes."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")
        time.sleep(0.05)


def sim_credentials(args: list[str]) -> dict[str, Any]:
    """The JSON a `finoa sim … --show-credentials` command prints."""
    return demo_stack.sim_credentials(args)


def configured_env(
    env: dict[str, str],
    connectors: dict[str, Any],
    database_url: str,
    directory: Path,
    *,
    connector_timeout: str = "2",
) -> dict[str, str]:
    """The environment of a hub with `connectors` as its finoa.yaml, the sample master data
    loaded first; its calls to the connectors time out after `connector_timeout` seconds."""
    config = directory / "finoa.yaml"
    config.write_text(
        yaml.safe_dump({"connectors": connectors}, allow_unicode=True), encoding="utf-8"
    )
    hub_env = {**env, "FINOA_CONFIG": str(config), "FINOA_DATABASE_URL": database_url,
               "FINOA_CONNECTOR_TIMEOUT_SECONDS": connector_timeout}  # fmt: skip
    subprocess.run(
        [sys.executable, "-m", "finoa", "masterdata", "load"],
        env={**os.environ, **hub_env}, check=True, capture_output=True,
    )  # fmt: skip
    return hub_env


def start_configured_hub(
    env: dict[str, str],
    connectors: dict[str, Any],
    database_url: str,
    port: int,
    directory: Path,
    *,
    dispatch: bool = True,
    connector_timeout: str = "2",
) -> Server:
    """The hub with `connectors` as its finoa.yaml, the sample master data loaded first;
    `dispatch=False` serves the API only (`--no-dispatch`), for a `start_worker` beside it."""
    hub_env = configured_env(
        env, connectors, database_url, directory, connector_timeout=connector_timeout
    )
    args = ["serve", "--port", str(port)] + ([] if dispatch else ["--no-dispatch"])
    return start("hub", args, hub_env, "/ready", port, directory)


def start_worker(
    env: dict[str, str], directory: Path, *, nice: int = 0, deadline_s: float = 60.0
) -> Server:
    """`finoa worker` with a hub's environment (see `configured_env`), at `nice`; returns once
    it says it is delivering."""
    log_path = directory / "worker.log"
    process = subprocess.Popen(
        ["nice", "-n", str(nice), sys.executable, "-m", "finoa", "worker"],
        env={**os.environ, **env},
        stdout=log_path.open("wb"),
        stderr=subprocess.STDOUT,
        cwd=directory,
    )
    server = Server("worker", "", process, log_path, env)
    deadline = time.monotonic() + deadline_s
    while "delivering the outbox" not in server.log():
        if process.poll() is not None:
            raise RuntimeError(f"worker exited early:\n{server.log()}")
        if time.monotonic() > deadline:
            server.stop()
            raise RuntimeError(f"worker not ready in {deadline_s}s:\n{server.log()}")
        time.sleep(0.05)  # readiness polling with a deadline
    return server
