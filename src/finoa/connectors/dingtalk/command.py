"""`finoa sim dingtalk`: run the DingTalk simulator, or print the credentials it accepts."""

from __future__ import annotations

from typing import Annotated

import typer

from finoa.connectors.sim_options import (
    AutoDecide,
    DataDir,
    Host,
    Port,
    ShowCredentials,
    SimulatorParts,
    vendor_simulator_command,
)

DEFAULT_PORT = 8711


@vendor_simulator_command("dingtalk", "DingTalk")
def sim_dingtalk(
    port: Port = DEFAULT_PORT,
    host: Host = "127.0.0.1",
    callback_url: Annotated[
        str | None,
        typer.Option(help="Where events go, e.g. http://127.0.0.1:8700/api/v1/webhooks/dingtalk"),
    ] = None,
    show_credentials: ShowCredentials = False,
    token_ttl: Annotated[int, typer.Option(min=1, help="Seconds an access token lives")] = 7200,
    qps: Annotated[int, typer.Option(min=1, help="Calls per second before 403 QpsLimit")] = 50,
    reject_rate: Annotated[float, typer.Option(help="Share the approvers refuse")] = 0.0,
    auto_decide: AutoDecide = True,
    retry_scale: Annotated[
        float, typer.Option(help="Scale of the 10/30/60/120 s callback retries")
    ] = 1.0,
    data_dir: DataDir = None,
) -> SimulatorParts:
    """Run a DingTalk simulator (tokens, 审批, 待办, contacts, encrypted callbacks)."""
    from finoa.connectors.dingtalk.simulator import DingTalkSimulator, run_dingtalk_simulator

    return DingTalkSimulator, run_dingtalk_simulator
