"""`finoa mapping …`: see what a mapping makes of a vendor document before relying on it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from finoa.cli_errors import CliError, ExitCode
from finoa.config import load_settings
from finoa.mapping.catalog import MappingCatalog, MappingConfigError, code_tables, file_ids
from finoa.mapping.engine import apply_mapping
from finoa.mapping.transforms import TransformContext, TransformError, decode_body
from finoa.schemas import ClaimSubmission

mapping_app = typer.Typer(help="Declarative mappings of vendor documents.", no_args_is_help=True)
out = Console(soft_wrap=True, highlight=False)
TARGETS = {"claim": ClaimSubmission}


@mapping_app.command(
    "preview",
    epilog="Example: finoa mapping preview dingtalk expense_claim instance.json",
)
def preview(
    connector: Annotated[str, typer.Argument(help="Connector, e.g. dingtalk")],
    document_type: Annotated[str, typer.Argument(help="Document type, e.g. expense_claim")],
    file: Annotated[Path, typer.Argument(help="The vendor document (JSON; UTF-8 or GBK)")],
    config: Annotated[Path | None, typer.Option("--config", help="finoa.yaml to read")] = None,
    masterdata: Annotated[
        Path | None,
        typer.Option(help="Master data YAML for master-data code tables (default: the sample)"),
    ] = None,
) -> None:
    """Print the canonical document a mapping makes of FILE, or every field error with its
    path (exit code 2)."""
    raw = _read(file, "file")
    try:
        text = decode_body(raw)
    except TransformError as exc:
        raise CliError(
            ExitCode.BAD_INPUT, f"file: {exc}", "save the document as UTF-8 or GBK"
        ) from None
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise CliError(
            ExitCode.BAD_INPUT,
            f"file: {file} is not JSON ({exc.msg} at line {exc.lineno})",
            "give the vendor's JSON document as it arrives",
        ) from None
    if config is not None and not config.exists():
        raise CliError(
            ExitCode.CONFIG, f"--config: {config} does not exist", "give an existing finoa.yaml"
        )
    try:
        settings = load_settings(config)
        catalog = MappingCatalog.from_settings(settings, config)
        loaded = catalog.get(connector, document_type)
        tables = code_tables(loaded, file_ids(_masterdata(masterdata)))
    except MappingConfigError as exc:
        raise CliError(
            ExitCode.CONFIG,
            f"mapping: {exc}",
            "fix the mapping, or its override under mappings: in finoa.yaml",
        ) from None
    target = TARGETS.get(loaded.spec.target) if loaded.spec.target else None
    result = apply_mapping(
        loaded.spec,
        document,
        code_tables=tables,
        context=TransformContext(settings.company_zone),
        target=target,
    )
    heading = f"# {result.mapping} version {result.version} ({loaded.origin})"
    if result.ok:
        out.print(heading)
        out.print(json.dumps(result.value, ensure_ascii=False, indent=2, default=str))
        return
    out.print(heading)
    for error in result.errors:
        out.print(f"error: {error}")
    raise typer.Exit(ExitCode.BAD_INPUT)


def _read(path: Path, name: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise CliError(
            ExitCode.BAD_INPUT,
            f"{name}: cannot read {path}: {exc.strerror}",
            "give an existing file",
        ) from None


def _masterdata(path: Path | None) -> dict[str, Any]:
    import yaml

    from finoa.services.masterdata import sample_masterdata

    if path is None:
        return sample_masterdata()
    data = yaml.safe_load(_read(path, "--masterdata").decode("utf-8"))
    if not isinstance(data, dict):
        raise CliError(
            ExitCode.BAD_INPUT,
            f"--masterdata: {path} is not master data",
            "give a file as `finoa masterdata load` takes",
        )
    return data
