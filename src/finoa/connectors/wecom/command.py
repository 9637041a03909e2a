"""`finoa sim wecom`: run the WeCom simulator, or print the credentials it accepts."""

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

DEFAULT_PORT = 8712


@vendor_simulator_command("wecom", "WeCom")
def sim_wecom(
    port: Port = DEFAULT_PORT,
    host: Host = "127.0.0.1",
    callback_url: Annotated[
        str | None,
        typer.Option(help="Where events go, e.g. http://127.0.0.1:8700/api/v1/webhooks/wecom"),
    ] = None,
    show_credentials: ShowCredentials = False,
    token_ttl: Annotated[int, typer.Option(min=1, help="Seconds an access token lives")] = 7200,
    qps: Annotated[int, typer.Option(min=1, help="Calls per second before errcode 45009")] = 50,
    reject_rate: Annotated[float, typer.Option(help="Share the approvers reject")] = 0.0,
    auto_decide: AutoDecide = True,
    retry_scale: Annotated[
        float, typer.Option(help="Scale of the 5 s callback retries (three of them)")
    ] = 1.0,
    data_dir: DataDir = None,
) -> SimulatorParts:
    """Run a WeCom simulator (tokens, 审批, contacts, encrypted XML callbacks)."""
    from finoa.connectors.wecom.simulator import WeComSimulator, run_wecom_simulator

    return WeComSimulator, run_wecom_simulator
