"""`finoa sim feishu`: run the Feishu simulator, or print the credentials it accepts."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from finoa.cli_errors import CliError, ExitCode
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


@vendor_simulator_command("feishu", "Feishu")
def sim_feishu(
    port: Port = DEFAULT_PORT,
    host: Host = "127.0.0.1",
    callback_url: Annotated[
        str | None,
        typer.Option(
            help="Request URL for events and quick actions, e.g. "
            "http://127.0.0.1:8700/api/v1/webhooks/feishu"
        ),
    ] = None,
    show_credentials: ShowCredentials = False,
    token_ttl: Annotated[int, typer.Option(min=1, help="Seconds a tenant token lives")] = 7200,
    qps: Annotated[int, typer.Option(min=1, help="Calls per second before code 99991400")] = 50,
    reject_rate: Annotated[float, typer.Option(help="Share the approvers refuse")] = 0.0,
    auto_decide: AutoDecide = True,
    retry_scale: Annotated[
        float, typer.Option(help="Scale of the 15 s/5 min/1 h/6 h event retries")
    ] = 1.0,
    event_schema: Annotated[str, typer.Option(help="Event schema to send: 1.0 or 2.0")] = "1.0",
    data_dir: DataDir = None,
) -> SimulatorParts:
    """Run a Feishu simulator (tenant tokens, 审批, external instances, contacts, events)."""
    from finoa.connectors.feishu.simulator import FeishuSimulator, run_feishu_simulator

    def make(directory: Path, *, event_schema: str, **options: Any) -> FeishuSimulator:
        if event_schema not in ("1.0", "2.0"):
            raise CliError(ExitCode.BAD_INPUT, "--event-schema: 1.0 or 2.0", "give 1.0 or 2.0")
        return FeishuSimulator(directory, event_schema=event_schema, **options)

    return make, run_feishu_simulator
