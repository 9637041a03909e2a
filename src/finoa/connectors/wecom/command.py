"""`finoa sim wecom`: run the WeCom simulator, or print the credentials it accepts."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from finoa.connectors.sim_options import (
    check_approver_options,
    print_credentials,
    sim_data_dir,
)

console = Console(highlight=False, soft_wrap=True)
DEFAULT_PORT = 8712


def sim_wecom(
    port: Annotated[int, typer.Option(min=1, max=65_535, help="Listen port")] = DEFAULT_PORT,
    host: Annotated[str, typer.Option(help="Listen address")] = "127.0.0.1",
    callback_url: Annotated[
        str | None,
        typer.Option(help="Where events go, e.g. http://127.0.0.1:8700/api/v1/webhooks/wecom"),
    ] = None,
    show_credentials: Annotated[
        bool, typer.Option(help="Print the credentials it accepts (console names) and exit")
    ] = False,
    token_ttl: Annotated[int, typer.Option(min=1, help="Seconds an access token lives")] = 7200,
    qps: Annotated[int, typer.Option(min=1, help="Calls per second before errcode 45009")] = 50,
    reject_rate: Annotated[float, typer.Option(help="Share the approvers reject")] = 0.0,
    auto_decide: Annotated[bool, typer.Option(help="Simulated approvers decide")] = True,
    retry_scale: Annotated[
        float, typer.Option(help="Scale of the 5 s callback retries (three of them)")
    ] = 1.0,
    data_dir: Annotated[Path | None, typer.Option(help="Where embedded data lives")] = None,
) -> None:
    """Run a WeCom simulator (tokens, 审批, contacts, encrypted XML callbacks)."""
    from finoa.connectors.wecom.simulator import WeComSimulator, run_wecom_simulator

    check_approver_options(
        reject_rate=reject_rate, callback_url=callback_url, retry_scale=retry_scale
    )
    sim = WeComSimulator(
        sim_data_dir(data_dir, "wecom"),
        callback_url=callback_url,
        token_ttl=token_ttl,
        qps=qps,
        reject_rate=reject_rate,
        auto_decide=auto_decide,
        retry_scale=retry_scale,
    )
    if show_credentials:
        sim.conn.close()
        print_credentials(sim.credentials.console())
        return
    console.print(f"WeCom simulator on http://{host}:{port}")
    run_wecom_simulator(host, port, sim)
