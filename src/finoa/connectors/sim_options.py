"""What the `finoa sim …` commands of the OA simulators check and do alike: the options
every one of them takes, where its data lives, printing the credentials it accepts, and
(`vendor_simulator_command`) the whole run of a DingTalk, Feishu or WeCom simulator, each
vendor's command stating only its own options, their help, and which simulator it runs."""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console

from finoa.cli_errors import CliError, ExitCode

if TYPE_CHECKING:
    from finoa.connectors.vendor_sim import VendorSimulator

console = Console(highlight=False, soft_wrap=True)

# The options every vendor OA simulator's command takes with the same meaning.
Port = Annotated[int, typer.Option(min=1, max=65_535, help="Listen port")]
Host = Annotated[str, typer.Option(help="Listen address")]
ShowCredentials = Annotated[
    bool, typer.Option(help="Print the credentials it accepts (console names) and exit")
]
AutoDecide = Annotated[bool, typer.Option(help="Simulated approvers decide")]
DataDir = Annotated[Path | None, typer.Option(help="Where embedded data lives")]


def check_approver_options(
    *, reject_rate: float, callback_url: str | None, retry_scale: float | None = None
) -> None:
    """Refuse a share outside 0–1, a retry scale that is not positive and a callback URL
    that is not http(s), each as one `error:`/`fix:` pair."""
    if not 0 <= reject_rate <= 1:
        raise CliError(ExitCode.BAD_INPUT, "--reject-rate: must be between 0 and 1", "give 0-1")
    if retry_scale is not None and retry_scale <= 0:
        raise CliError(ExitCode.BAD_INPUT, "--retry-scale: must be positive", "give e.g. 1")
    if callback_url is not None and not callback_url.startswith(("http://", "https://")):
        raise CliError(
            ExitCode.BAD_INPUT, "--callback-url: an http(s) URL", "give the hub's webhook URL"
        )


def sim_data_dir(data_dir: Path | None, name: str) -> Path:
    """`<data dir>/sim-<name>`: the option, else FINOA_DATA_DIR, else ./finoa-data."""
    root = data_dir or Path(os.environ.get("FINOA_DATA_DIR") or "finoa-data")
    return root / f"sim-{name}"


def print_credentials(console_names: dict[str, Any]) -> None:
    """The credentials a simulator accepts, as JSON under the vendor console's names."""
    print(json.dumps(console_names, indent=2))


# How a vendor's command makes its simulator (`make(data dir, **options)`, a
# `VendorSimulator`) and serves it (`serve(host, port, sim)`). Typer reads the commands'
# annotations at run time, so this names no type that is imported only for checking.
SimulatorParts = tuple[Callable[..., Any], Callable[[str, int, Any], None]]


def vendor_simulator_command(
    vendor: str, label: str
) -> Callable[[Callable[..., SimulatorParts]], Callable[..., None]]:
    """`finoa sim <vendor>` from the function that declares its options (its parameters,
    with their help, as Typer reads them) and answers, given them, how its simulator is made
    and served; the command runs it all through `run_vendor_simulator`."""

    def command_of(parts: Callable[..., SimulatorParts]) -> Callable[..., None]:
        @functools.wraps(parts)
        def command(**options: Any) -> None:
            make, serve = parts(**options)
            run_vendor_simulator(vendor, label, make, serve, **options)

        return command

    return command_of


def run_vendor_simulator(
    vendor: str,
    label: str,
    make: Callable[..., VendorSimulator],
    serve: Callable[[str, int, Any], None],
    *,
    host: str,
    port: int,
    data_dir: Path | None,
    show_credentials: bool,
    **options: Any,
) -> None:
    """`finoa sim <vendor>`: check the options, make the simulator (`make(data dir,
    **options)`, its data under `<data dir>/sim-<vendor>`), then print the credentials it
    accepts, or serve it (`serve(host, port, sim)`) until interrupted."""
    check_approver_options(
        reject_rate=options["reject_rate"],
        callback_url=options["callback_url"],
        retry_scale=options["retry_scale"],
    )
    sim = make(sim_data_dir(data_dir, vendor), **options)
    if show_credentials:
        sim.conn.close()
        print_credentials(sim.credentials.console())
        return
    console.print(f"{label} simulator on http://{host}:{port}")
    serve(host, port, sim)
