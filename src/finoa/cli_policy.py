"""`finoa policy check FILE | show`: the expense policy (费用标准) from the command line."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from finoa.cli_errors import CliError, ExitCode
from finoa.domain.policy import ExpensePolicy, PolicyFileError, read_policy

policy_app = typer.Typer(help="Expense policy (费用标准): check a file, show the one in force.")
console = Console()

ConfigOpt = Annotated[Path | None, typer.Option("--config", help="finoa.yaml to read")]
DataDirOpt = Annotated[Path | None, typer.Option("--data-dir", help="Where embedded data lives")]


@policy_app.command("check", epilog="Example: finoa policy check expense_policy.yaml")
def check(
    file: Annotated[Path, typer.Argument(help="The policy YAML file to validate")],
) -> None:
    """Validate a policy file: each problem on one line, with its path in the file."""
    if not file.is_file():
        raise CliError(
            ExitCode.BAD_INPUT,
            f"{file}: no such policy file",
            "give the path of a policy YAML file (the shipped one: `finoa policy show`)",
        )
    try:
        policy = read_policy(file)
    except PolicyFileError as exc:
        for line in exc.errors:
            typer.echo(f"{file}: {line}", err=True)
        raise CliError(
            ExitCode.BAD_INPUT,
            f"{file}: {len(exc.errors)} problem(s), each on a line above; the file is not usable",
            "correct those places in the file and run `finoa policy check` again",
        ) from None
    versions = ", ".join(v.version for v in policy.file.versions)
    typer.echo(f"{file}: valid; versions {versions}")


@policy_app.command("show", epilog="Example: finoa policy show --config finoa.yaml")
def show(config: ConfigOpt = None, data_dir: DataDirOpt = None) -> None:
    """Show the policy in force: its source, tiers and each version's limits in yuan."""
    from finoa.cli import _settings
    from finoa.services.policy import policy_in_force, policy_source

    settings = _settings(config, data_dir)
    try:
        policy = policy_in_force(settings)
    except PolicyFileError as exc:
        raise CliError(
            ExitCode.CONFIG,
            f"policy_file {exc.source}: " + "; ".join(exc.errors),
            "correct the file (finoa policy check FILE) or point policy_file at another",
        ) from None
    console.print(f"expense policy from {policy_source(settings)}")
    _print(policy)


def _print(policy: ExpensePolicy) -> None:
    tiers = Table("tier", "cities", title="city tiers (城市分级)")
    for tier, cities in policy.file.city_tiers.items():
        default = " (and every city not listed)" if tier == policy.file.default_tier else ""
        tiers.add_row(tier, ", ".join(cities) + default)
    console.print(tiers)
    names = list(policy.file.city_tiers)
    for version in policy.file.versions:
        until = version.effective_to or "open-ended"
        table = Table(
            "rule",
            "category",
            "per",
            "on breach",
            "grade",
            *names,
            title=f"version {version.version}: {version.effective_from} to {until}",
        )
        for rule in version.rules:
            action = (rule.on_breach or policy.file.on_breach).value
            for grade, limits in rule.limits.items():
                amounts = [str(limits[t]) if t in limits else "-" for t in names]
                table.add_row(
                    rule.name, rule.category.value, rule.per.value, action, grade, *amounts
                )
        console.print(table)
