"""The systems `finoa demo` runs beside the hub: one OA and one ERP, each described by the
*demo profile* its connector contributes.

A connector takes part in the demo by having a `demo` module in its package (next to its
`client`) with a function `demo_profile(connector: str) -> DemoProfile`, where `connector` is
its entry-point name in `finoa.connectors` (one package may serve several, as `yonyou` serves
`yonyou-u8` and `yonyou-nc`). The profile says how to start the connector's simulator or
server, how to tell it is ready, how to read the credentials it accepts, the `finoa.yaml`
instance entry that points the hub at it, and, for an ERP, how to count the vouchers that
arrived. Nothing else needs registering: the demo finds profiles through the connectors'
entry points.
"""

from __future__ import annotations

import importlib
import json
import os
import socket
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from finoa.connectors.instances import HUB_LED, OA_LED
from finoa.connectors.registry import available_connectors

GENERIC = "generic"
# `--oa generic` / `--erp generic` name these connectors
GENERIC_CONNECTORS = {"oa": "generic-oa", "erp": "generic-erp"}
APPROVAL_MODES = (HUB_LED, OA_LED)


class DemoProfileError(Exception):
    """A name or combination the demo cannot run; `fix` says what to give instead."""

    def __init__(self, message: str, fix: str) -> None:
        super().__init__(message)
        self.fix = fix


@dataclass(frozen=True)
class DemoContext:
    """What a profile needs to know about this run."""

    data_dir: Path  # the demo's data dir; a profile keeps its own files under it
    hub_url: str
    port: int  # the port the profile's system listens on
    approvals: str = HUB_LED  # how the OA runs approvals (OA profiles)
    reject_rate: float = 0.06  # share of claims the simulated approvers refuse
    secrets: dict[str, str] = field(default_factory=dict)  # the hub's secrets.json

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def finoa(self, *args: str) -> subprocess.CompletedProcess[str]:
        """Run `finoa ARGS` to completion (a setup step); raises with its output on failure."""
        done = subprocess.run(
            [sys.executable, "-m", "finoa", *args],
            env={**os.environ, "FINOA_DATA_DIR": str(self.data_dir)},
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"finoa {' '.join(args)} failed: {done.stderr.strip()[-500:]}")
        return done


class DemoProfile:
    """How the demo runs one connector's system. Subclasses set the attributes and
    override what differs; every method gets the run's `DemoContext`."""

    connector: str = ""  # entry-point name, e.g. "dingtalk"
    title: str = ""  # shown in the demo's output, e.g. "DingTalk simulator"
    ready_path: str = "/_sim/stats"
    # OA profiles: approval modes the connector supports (oa-led needs `approval.create`)
    approval_modes: tuple[str, ...] = (HUB_LED,)
    # The instance name in finoa.yaml
    instance_name: str = ""

    def prepare(self, ctx: DemoContext) -> None:
        """One-off setup before the system starts (e.g. create a database)."""

    def command(self, ctx: DemoContext) -> list[str]:
        """The `finoa …` arguments that serve the system on `ctx.port`."""
        raise NotImplementedError

    def credentials(self, ctx: DemoContext) -> dict[str, Any]:
        """What the system accepts (e.g. what `finoa sim … --show-credentials` prints)."""
        return {}

    def instance(self, ctx: DemoContext, credentials: dict[str, Any]) -> dict[str, Any]:
        """The `finoa.yaml` `connectors:` entry pointing the hub at the system."""
        raise NotImplementedError

    async def submit(
        self, client: httpx.AsyncClient, ctx: DemoContext, body: dict[str, Any]
    ) -> tuple[int, Any, bool] | None:
        """OA profiles: submit a claim through the OA as an employee would: (HTTP status
        the hub answered, its body, whether it was a duplicate); None when the OA has no
        such way and the claim goes through the hub's API instead."""
        return None

    def vouchers(self, ctx: DemoContext, credentials: dict[str, Any]) -> int:
        """ERP profiles: how many vouchers the ERP holds."""
        raise NotImplementedError


def free_port(preferred: int = 0) -> int:
    """`preferred` when it is free, else any free port."""
    for port in dict.fromkeys((preferred, 0)):
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return int(sock.getsockname()[1])
    raise RuntimeError("no free port")


def sim_credentials(args: Sequence[str], env: dict[str, str] | None = None) -> dict[str, Any]:
    """The JSON a `finoa sim … --show-credentials` command prints."""
    answer = subprocess.run(
        [sys.executable, "-m", "finoa", *args, "--show-credentials"],
        capture_output=True,
        check=True,
        env={**os.environ, **(env or {})},
    )
    credentials: dict[str, Any] = json.loads(answer.stdout)
    return credentials


def sim_stats(url: str) -> dict[str, Any]:
    """A simulator's `/_sim/stats`."""
    answer = httpx.get(f"{url}/_sim/stats", timeout=10)
    answer.raise_for_status()
    stats: dict[str, Any] = answer.json()
    return stats


def connector_name(kind: str, name: str) -> str:
    """`generic` → the generic connector of `kind` (oa / erp); other names as given."""
    return GENERIC_CONNECTORS[kind] if name == GENERIC else name


def demo_names(kind: str) -> list[str]:
    """The names `--oa` / `--erp` accept: connectors of that kind with a demo profile."""
    names = []
    for name, factory in sorted(available_connectors().items()):
        manifest = getattr(factory, "manifest", None)
        if manifest is None or manifest.kind.value != kind or _profile_module(factory) is None:
            continue
        names.append(GENERIC if name == GENERIC_CONNECTORS[kind] else name)
    return sorted(names, key=lambda n: (n != GENERIC, n))


def _profile_module(factory: Any) -> Any:
    package = factory.__module__.rpartition(".")[0]
    try:
        return importlib.import_module(f"{package}.demo")
    except ModuleNotFoundError as exc:
        if exc.name != f"{package}.demo":
            raise
        return None


def demo_profile(kind: str, name: str) -> DemoProfile:
    """The demo profile of the OA or ERP called `name` (`--oa` / `--erp`)."""
    option = f"--{kind}"
    connector = connector_name(kind, name)
    factory = available_connectors().get(connector)
    choices = ", ".join(demo_names(kind))
    if factory is None or factory.manifest.kind.value != kind:
        raise DemoProfileError(
            f"{option} {name}: not an {kind.upper()} the demo knows", f"give one of: {choices}"
        )
    module = _profile_module(factory)
    if module is None:
        raise DemoProfileError(
            f"{option} {name}: this connector has no demo profile", f"give one of: {choices}"
        )
    profile: DemoProfile = module.demo_profile(connector)
    return profile


def demo_profiles(oa: str, erp: str, approvals: str) -> tuple[DemoProfile, DemoProfile]:
    """The OA and ERP profiles for a run, checked: raises DemoProfileError for an unknown
    name or an approval mode the OA does not run."""
    if approvals not in APPROVAL_MODES:
        raise DemoProfileError(
            f"--approval {approvals}: not a mode", f"give one of {', '.join(APPROVAL_MODES)}"
        )
    oa_profile, erp_profile = demo_profile("oa", oa), demo_profile("erp", erp)
    if approvals not in oa_profile.approval_modes:
        able = [n for n in demo_names("oa") if approvals in demo_profile("oa", n).approval_modes]
        raise DemoProfileError(
            f"--approval {approvals}: the {oa} OA does not run approvals that way "
            f"(it supports {', '.join(oa_profile.approval_modes)})",
            f"use --approval {oa_profile.approval_modes[0]}, or an OA that supports "
            f"{approvals}: {', '.join(able)}",
        )
    return oa_profile, erp_profile


def approval_modes_of(connector: str) -> tuple[str, ...]:
    """The modes an OA connector supports, read from its manifest."""
    manifest = available_connectors()[connector].manifest
    return (HUB_LED, OA_LED) if "approval.create" in manifest.actions else (HUB_LED,)
