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
    data_dir: Annotated[
        Path | None, typer.Option("--data-dir", help="Where embedded data lives")
    ] = None,
) -> None:
    """Run the external archive simulator (packages in, refused when incomplete; status)."""
    from rich.console import Console

    from finoa.config import load_settings
    from finoa.connectors.generic_archive.simulator import run_archive_simulator

    settings = load_settings(data_dir=data_dir)
    key = api_key or settings.archive_external_api_key or "archive-key"
    Console().print(f"archive simulator on http://{host}:{port} (bearer key {key})")
    run_archive_simulator(host, port, settings.data_dir / "sim-archive", key)
