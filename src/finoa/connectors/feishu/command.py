"""`finoa sim feishu`: run the Feishu simulator, or print the credentials it accepts."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from finoa.cli_errors import CliError, ExitCode
from finoa.connectors.sim_options import (
    check_approver_options,
    print_credentials,
    sim_data_dir,
)

console = Console(highlight=False, soft_wrap=True)
DEFAULT_PORT = 8712


def sim_feishu(
    port: Annotated[int, typer.Option(min=1, max=65_535, help="Listen port")] = DEFAULT_PORT,
    host: Annotated[str, typer.Option(help="Listen address")] = "127.0.0.1",
    callback_url: Annotated[
        str | None,
        typer.Option(
            help="Request URL for events and quick actions, e.g. "
            "http://127.0.0.1:8700/api/v1/webhooks/feishu"
        ),
    ] = None,
    show_credentials: Annotated[
        bool, typer.Option(help="Print the credentials it accepts (console names) and exit")
    ] = False,
    token_ttl: Annotated[int, typer.Option(min=1, help="Seconds a tenant token lives")] = 7200,
    qps: Annotated[int, typer.Option(min=1, help="Calls per second before code 99991400")] = 50,
    reject_rate: Annotated[float, typer.Option(help="Share the approvers refuse")] = 0.0,
    auto_decide: Annotated[bool, typer.Option(help="Simulated approvers decide")] = True,
    retry_scale: Annotated[
        float, typer.Option(help="Scale of the 15 s/5 min/1 h/6 h event retries")
    ] = 1.0,
    event_schema: Annotated[str, typer.Option(help="Event schema to send: 1.0 or 2.0")] = "1.0",
    data_dir: Annotated[Path | None, typer.Option(help="Where embedded data lives")] = None,
) -> None:
    """Run a Feishu simulator (tenant tokens, 审批, external instances, contacts, events)."""
    from finoa.connectors.feishu.simulator import FeishuSimulator, run_feishu_simulator

    check_approver_options(
        reject_rate=reject_rate, callback_url=callback_url, retry_scale=retry_scale
    )
    if event_schema not in ("1.0", "2.0"):
        raise CliError(ExitCode.BAD_INPUT, "--event-schema: 1.0 or 2.0", "give 1.0 or 2.0")
    sim = FeishuSimulator(
        sim_data_dir(data_dir, "feishu"),
        callback_url=callback_url,
        token_ttl=token_ttl,
        qps=qps,
        reject_rate=reject_rate,
        auto_decide=auto_decide,
        retry_scale=retry_scale,
        event_schema=event_schema,
    )
    if show_credentials:
        sim.conn.close()
        print_credentials(sim.credentials.console())
        return
    console.print(f"Feishu simulator on http://{host}:{port}")
    run_feishu_simulator(host, port, sim)
