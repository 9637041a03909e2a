"""Command-line parts for invoices: `finoa invoices read FILE` and `finoa sim tax-platform`."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from finoa.cli_errors import CliError, ExitCode
from finoa.config import DEFAULT_DATA_DIR
from finoa.domain.claim import ExpenseCategory
from finoa.domain.errors import DomainError
from finoa.domain.money import format_fen

invoices_app = typer.Typer(
    help="E-invoices (电子发票): read and check files.", no_args_is_help=True
)
console = Console()
API_KEY_ENV = "FINOA_TAX_PLATFORM_API_KEY"


@invoices_app.command(
    "read", epilog="Example: finoa invoices read 25312000000012345678.xml --category travel"
)
def read_file(
    path: Annotated[Path, typer.Argument(help="An invoice file: XML, OFD or PDF")],
    category: Annotated[
        ExpenseCategory, typer.Option(help="The claim line's category (for deductible VAT)")
    ] = ExpenseCategory.TRAVEL,
    company_tax_id: Annotated[
        str | None,
        typer.Option(help="The company's 统一社会信用代码: also run the buyer and number checks"),
    ] = None,
) -> None:
    """Read an invoice file and show its data, its checks and its deductible input VAT."""
    from finoa.invoices.parsing import read_invoice
    from finoa.invoices.validation import check_company_tax_id, validate_invoice
    from finoa.invoices.vat import deductible_vat

    try:
        data = path.read_bytes()
    except OSError as exc:
        raise CliError(
            ExitCode.BAD_INPUT, f"{path}: {exc.strerror}", "give a readable file"
        ) from None
    try:
        read = read_invoice(data)
        if read.invoice is not None and company_tax_id is not None:
            check_company_tax_id(company_tax_id, field="--company-tax-id")
            validate_invoice(read.invoice, company_tax_id)
    except DomainError as exc:
        raise CliError(
            ExitCode.CHECK_FAILED if "invoice." in (exc.field or "") else ExitCode.BAD_INPUT,
            f"{path.name}: {exc}",
            "the file is not an invoice finoa can book; see the field named above",
        ) from None
    table = Table("field", "value")
    table.add_row("format", read.source_format.value)
    if read.invoice is None:
        table.add_row("manual entry", read.manual_entry_reason)
        console.print(table)
        return
    invoice = read.invoice
    vat, rule = deductible_vat(invoice, category)
    for name, value in (
        ("number", invoice.number),
        ("kind", invoice.kind.value),
        ("issued", invoice.issue_date.isoformat()),
        ("seller", f"{invoice.seller_name} {invoice.seller_tax_id}".strip()),
        ("buyer", f"{invoice.buyer_name} {invoice.buyer_tax_id}".strip()),
        ("金额", format_fen(invoice.amount_fen)),
        ("税额", format_fen(invoice.tax_fen)),
        ("价税合计", format_fen(invoice.total_fen)),
        ("deductible VAT", f"{format_fen(vat)} ({rule})"),
        ("data in", read.data_path or "the file itself"),
    ):
        table.add_row(name, value)
    console.print(table)


def sim_tax_platform(
    port: Annotated[int, typer.Option(min=1, max=65_535, help="Listen port")] = 8703,
    host: Annotated[str, typer.Option(help="Listen address")] = "127.0.0.1",
    data_dir: Annotated[
        Path | None, typer.Option("--data-dir", help="Where embedded data lives")
    ] = None,
    api_key: Annotated[
        str | None,
        typer.Option("--api-key", help=f"The key the simulator accepts (default: ${API_KEY_ENV})"),
    ] = None,
) -> None:
    """Run the tax platform simulator (invoice verification by four elements)."""
    from finoa.invoices.simulator import run_tax_platform_simulator

    api_key = api_key or os.environ.get(API_KEY_ENV, "")
    if not api_key:
        raise CliError(
            ExitCode.MISSING_SECRET,
            f"{API_KEY_ENV} is not set",
            f"give --api-key KEY, or export {API_KEY_ENV}=<the key the hub sends as"
            " tax_platform_api_key>",
        )
    directory = (data_dir or Path(os.environ.get("FINOA_DATA_DIR", DEFAULT_DATA_DIR))) / "sim-tax"
    console.print(f"tax platform simulator on http://{host}:{port}")
    run_tax_platform_simulator(host, port, directory, api_key)


SIM_TAX_PLATFORM_EPILOG = "Example: finoa sim tax-platform --port 8703 --api-key dev-key"
