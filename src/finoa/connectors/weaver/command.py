"""`finoa sim weaver`: the Weaver e-cology simulator as its own HTTP server."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from finoa.cli_errors import CliError, ExitCode
from finoa.connectors.sim_options import Host, Port

EXAMPLE = (
    "Example: finoa sim weaver --port 8705 "
    "--callback-url http://127.0.0.1:8700/api/v1/webhooks/weaver"
)


def sim_weaver(
    port: Port = 8705,
    host: Host = "127.0.0.1",
    callback_url: Annotated[
        str | None,
        typer.Option(help="Where approvers' decisions are posted (the hub's webhook URL)"),
    ] = None,
    show_credentials: Annotated[
        bool, typer.Option(help="Print the credentials it accepts as JSON and exit")
    ] = False,
    token_ttl: Annotated[
        float, typer.Option(help="Longest token lifetime in seconds (applytoken's time)")
    ] = 1800.0,
    reject_rate: Annotated[float, typer.Option(help="Share of todos the approvers reject")] = 0.0,
    auto_decide: Annotated[bool, typer.Option(help="Simulated approvers act on todos")] = True,
    data_dir: Annotated[
        Path | None, typer.Option("--data-dir", help="Where embedded data lives")
    ] = None,
) -> None:
    """Run the Weaver e-cology simulator (E9 auth, workflow REST and SOAP, unified todo,
    HRM, approvers posting decisions)."""
    from finoa.config import load_settings
    from finoa.connectors.weaver.simulator import load_credentials, run_weaver_simulator

    if not 0 <= reject_rate <= 1:
        raise CliError(
            ExitCode.BAD_INPUT,
            "--reject-rate: must be between 0 and 1",
            "give the share of todos to reject, e.g. --reject-rate 0.1",
        )
    if token_ttl < 1:
        raise CliError(
            ExitCode.BAD_INPUT,
            "--token-ttl: at least 1 second",
            "give the longest token lifetime in seconds, e.g. --token-ttl 1800",
        )
    if callback_url is not None and not callback_url.startswith(("http://", "https://")):
        raise CliError(
            ExitCode.BAD_INPUT,
            "--callback-url: must start with http:// or https://",
            "give the hub's webhook URL, e.g. "
            "--callback-url http://127.0.0.1:8700/api/v1/webhooks/weaver",
        )
    directory = (data_dir or load_settings().data_dir) / "sim-weaver"
    if show_credentials:
        typer.echo(json.dumps(load_credentials(directory).console(), indent=2))
        return
    typer.echo(f"Weaver e-cology simulator on http://{host}:{port}")
    run_weaver_simulator(
        host,
        port,
        directory,
        callback_url,
        token_ttl=token_ttl,
        reject_rate=reject_rate,
        auto_decide=auto_decide,
    )
