"""`finoa sim archive`: the external archive simulator as an HTTP server."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

EXAMPLE = "Example: finoa sim archive --port 8720"


def sim_archive(
    port: Annotated[int, typer.Option(min=1, max=65_535, help="Listen port")] = 8720,
    host: Annotated[str, typer.Option(help="Listen address")] = "127.0.0.1",
    api_key: Annotated[
        str | None,
        typer.Option(help="The bearer key it accepts (default archive_external_api_key)"),
    ] = None,
    delay_status: Annotated[
        float | None,
        typer.Option(
            "--delay-status",
            min=0,
            max=3600,
            help="Answer `received`, then report the status by callback this many seconds later",
        ),
    ] = None,
    callback_url: Annotated[
        str | None,
        typer.Option(help="The hub's webhook for status callbacks (/api/v1/webhooks/<instance>)"),
    ] = None,
    webhook_secret: Annotated[
        str | None,
        typer.Option(help="Signs the callbacks (default archive_external_webhook_secret)"),
    ] = None,
    data_dir: Annotated[
        Path | None, typer.Option("--data-dir", help="Where embedded data lives")
    ] = None,
) -> None:
    """Run the external archive simulator (packages in, refused when incomplete; status in the
    answer, or later by a signed callback with --delay-status)."""
    from rich.console import Console

    from finoa.cli_errors import CliError, ExitCode
    from finoa.config import load_settings
    from finoa.connectors.generic_archive.simulator import run_archive_simulator
    from finoa.connectors.sim_options import check_approver_options

    settings = load_settings(data_dir=data_dir)
    key = api_key or settings.archive_external_api_key or "archive-key"
    secret = webhook_secret or settings.archive_external_webhook_secret or None
    if delay_status is not None:
        check_approver_options(reject_rate=0, callback_url=callback_url)
        if callback_url is None or secret is None:
            raise CliError(
                ExitCode.BAD_INPUT,
                "--delay-status: needs --callback-url and --webhook-secret",
                "give the hub's webhook URL and the instance's webhook_secret",
            )
        if not secret.startswith("whsec_"):
            raise CliError(ExitCode.BAD_INPUT, "--webhook-secret: `whsec_` + base64 of the key",
                           "use the instance's webhook_secret")  # fmt: skip
    Console().print(f"archive simulator on http://{host}:{port} (bearer key {key})")
    run_archive_simulator(
        host,
        port,
        settings.data_dir / "sim-archive",
        key,
        status_delay=delay_status,
        callback_url=callback_url,
        webhook_secret=secret,
    )
