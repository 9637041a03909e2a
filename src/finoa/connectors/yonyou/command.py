"""`finoa sim yonyou`: the Yonyou U8 OpenAPI or NC exchange simulator as its own HTTP server."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Annotated

import typer

from finoa.cli_errors import CliError, ExitCode

EXAMPLE = "Example: finoa sim yonyou --profile u8 --port 8706"


def sim_yonyou(
    profile: Annotated[str, typer.Option(help="Which Yonyou: u8 (OpenAPI) or nc (NC / NCC)")],
    port: Annotated[int, typer.Option(min=1, max=65_535, help="Listen port")] = 8706,
    host: Annotated[str, typer.Option(help="Listen address")] = "127.0.0.1",
    show_credentials: Annotated[
        bool, typer.Option(help="Print the credentials it accepts as JSON and exit")
    ] = False,
    token_ttl: Annotated[
        float, typer.Option(help="U8: token lifetime in seconds (expiresIn)")
    ] = 7200.0,
    data_dir: Annotated[
        Path | None, typer.Option("--data-dir", help="Where its ledger and credentials live")
    ] = None,
) -> None:
    """Run a Yonyou simulator: U8 OpenAPI (token, voucher/add with tradeid idempotency) or
    NC's XChangeServlet (ufinterface voucher XML), enforcing base data, with a countable
    ledger and injectable faults."""
    from finoa.config import load_settings
    from finoa.connectors.yonyou.simulator import (
        PROFILES,
        load_credentials,
        run_yonyou_simulator,
    )

    if profile not in PROFILES:
        raise CliError(
            ExitCode.BAD_INPUT,
            f"--profile: {profile!r} is not a Yonyou profile",
            "give --profile u8 (U8 OpenAPI) or --profile nc (NC / NCC exchange)",
        )
    if token_ttl < 1:
        raise CliError(
            ExitCode.BAD_INPUT,
            "--token-ttl: at least 1 second",
            "give the token lifetime in seconds, e.g. --token-ttl 7200",
        )
    directory = (data_dir or load_settings().data_dir) / f"sim-yonyou-{profile}"
    if show_credentials:
        typer.echo(json.dumps(asdict(load_credentials(directory, profile)), indent=2))
        return
    typer.echo(f"Yonyou {profile.upper()} simulator on http://{host}:{port}")
    run_yonyou_simulator(host, port, directory, profile, token_ttl=token_ttl)
