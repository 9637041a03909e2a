"""`finoa sim sap`: the SAP gateway simulator as its own HTTP server."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from finoa.cli_errors import CliError, ExitCode

EXAMPLE = "Example: finoa sim sap --port 8706"


def sim_sap(
    port: Annotated[int, typer.Option(min=1, max=65_535, help="Listen port")] = 8706,
    host: Annotated[str, typer.Option(help="Listen address")] = "127.0.0.1",
    show_credentials: Annotated[
        bool, typer.Option(help="Print the RFC user and company code it accepts as JSON and exit")
    ] = False,
    session_seconds: Annotated[
        float,
        typer.Option(help="Idle seconds after which a session ends and its LUW is rolled back"),
    ] = 30.0,
    data_dir: Annotated[
        Path | None, typer.Option("--data-dir", help="Where embedded data lives")
    ] = None,
) -> None:
    """Run the SAP gateway simulator (basic auth and CSRF token, BAPI_ACC_DOCUMENT_CHECK /
    POST / REV_POST, BAPI_TRANSACTION_COMMIT / ROLLBACK, RFC_READ_TABLE on BKPF)."""
    from finoa.config import load_settings
    from finoa.connectors.sap.simulator import load_credentials, run_sap_simulator

    if session_seconds < 1:
        raise CliError(
            ExitCode.BAD_INPUT,
            "--session-seconds: at least 1 second",
            "give the idle session lifetime in seconds, e.g. --session-seconds 30",
        )
    directory = (data_dir or load_settings().data_dir) / "sim-sap"
    if show_credentials:
        typer.echo(json.dumps(load_credentials(directory).console(), indent=2))
        return
    typer.echo(f"SAP gateway simulator on http://{host}:{port}/api")
    run_sap_simulator(host, port, directory, session_seconds)
