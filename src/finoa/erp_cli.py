"""`finoa erp …`: ERP setup and base data (the vendor commands live with their connectors)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Annotated, Any

import typer

from finoa.cli_errors import CliError, ExitCode
from finoa.connectors.tryton.cli import tryton_app

erp_app = typer.Typer(help="ERP systems: setup and base data.", no_args_is_help=True)
erp_app.add_typer(tryton_app, name="tryton")


@erp_app.command("base-data", epilog="Example: finoa erp base-data erp-tryton --config finoa.yaml")
def base_data(
    instance: Annotated[str, typer.Argument(help="ERP connector instance (`connectors:`)")],
    config: Annotated[Path | None, typer.Option("--config", help="finoa.yaml to read")] = None,
) -> None:
    """Print the base data an ERP instance reports (accounts, periods, dimension codes) as
    JSON: what finoa checks every voucher against before posting."""
    from finoa.config import load_settings
    from finoa.connectors.basedata import BaseDataSource
    from finoa.connectors.instances import load_instances
    from finoa.connectors.registry import available_connectors
    from finoa.messaging.retry import DeliveryError
    from finoa.runtime import new_http_client

    settings = load_settings(config)
    instances = load_instances(settings).instances
    if instance not in instances:
        raise CliError(
            ExitCode.UNKNOWN_CONNECTOR,
            f"instance: no connector instance named {instance!r}",
            f"use one of {', '.join(sorted(instances))} (`connectors:` in the config file)",
        )
    chosen = instances[instance]
    factory = available_connectors()[chosen.connector]

    async def read() -> dict[str, Any]:
        async with new_http_client(settings) as http:
            connector = factory(dict(chosen.config), http)
            try:
                if not isinstance(connector, BaseDataSource):
                    raise CliError(
                        ExitCode.BAD_INPUT,
                        f"instance: connector {chosen.connector!r} reports no base data",
                        "vouchers to it are posted unchecked; see docs/connectors.md",
                    )
                return (await connector.base_data()).as_dict()
            finally:
                await connector.aclose()

    try:
        data = asyncio.run(read())
    except DeliveryError as exc:
        raise CliError(
            ExitCode.CONNECTOR_UNREACHABLE,
            f"{instance}: {exc.reason}",
            "check that the ERP is running and the instance's config (URL, credentials)",
        ) from exc
    typer.echo(json.dumps(data, ensure_ascii=False, indent=2))
