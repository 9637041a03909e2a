"""Exit codes of the `finoa` command line, and the expected failures behind them.

An expected failure (a database never migrated, PostgreSQL down, a broken config file, a
missing secret, …) is told in one or two lines on stderr: what is wrong, then what to run.
Anything else is a bug: a one-line note, and `finoa --debug …` shows the traceback.
"""

from __future__ import annotations

from enum import IntEnum

import httpx
import yaml
from sqlalchemy import exc as sa_exc

from finoa.connectors.instances import ConnectorConfigError


class ExitCode(IntEnum):
    """What a non-zero exit of `finoa` means; scripts may rely on these numbers."""

    CHECK_FAILED = 1  # the command ran and found a problem (a broken audit chain)
    BAD_INPUT = 2  # a bad option or argument value, or a request the hub refuses
    CONFIG = 3  # the config file is missing, unreadable or invalid
    NOT_MIGRATED = 4  # the database was never initialised or is behind the code
    DATABASE_UNREACHABLE = 5  # the database server cannot be reached
    UNKNOWN_CONNECTOR = 6  # a connector or connector instance that does not exist
    CONNECTOR_UNREACHABLE = 7  # a connector's endpoint cannot be reached
    MISSING_SECRET = 8  # a secret named in the config is not set or not readable
    WARNINGS = 9  # `finoa doctor` found only warnings: finoa runs, with the risks they name
    BUG = 70  # an unexpected error: rerun with --debug and report it


class CliError(Exception):
    """An expected failure: what is wrong, what to run about it, and the exit code."""

    def __init__(self, code: ExitCode, problem: str, fix: str) -> None:
        super().__init__(problem)
        self.code = code
        self.problem = problem
        self.fix = fix


SECRET_PROBLEMS = ("is not set", "cannot read", "is empty")
DATABASE_FIX = "check database_url (or FINOA_DATABASE_URL) and that the database server is running"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def explain(exc: BaseException) -> CliError | None:
    """The expected failure `exc` stands for, or None when it is a bug."""
    if isinstance(exc, CliError):
        return exc
    if isinstance(exc, ConnectorConfigError):
        message = str(exc)
        if any(problem in message for problem in SECRET_PROBLEMS):
            return CliError(
                ExitCode.MISSING_SECRET,
                f"missing secret: {message}",
                "set the variable or write the file it names, then run the command again",
            )
        if ".connector: no connector named" in message:
            return CliError(
                ExitCode.UNKNOWN_CONNECTOR,
                f"configuration: {message}",
                "run `finoa connectors` for the installed ones and fix the config file",
            )
        return CliError(ExitCode.CONFIG, f"configuration: {message}", "fix the config file")
    if isinstance(exc, yaml.YAMLError):
        return CliError(
            ExitCode.CONFIG,
            f"configuration: the config file is not valid YAML ({_first_line(exc)})",
            "fix the config file",
        )
    if isinstance(exc, (sa_exc.OperationalError, sa_exc.ProgrammingError)):
        reason = _first_line(exc.orig) if exc.orig is not None else _first_line(exc)
        if "no such table" in reason or "does not exist" in reason and "relation" in reason:
            return CliError(
                ExitCode.NOT_MIGRATED,
                f"the database is not initialised ({reason})",
                "run `finoa db upgrade` with the same --config / --data-dir",
            )
        if isinstance(exc, sa_exc.OperationalError):
            return CliError(
                ExitCode.DATABASE_UNREACHABLE,
                f"cannot reach the database: {reason}",
                DATABASE_FIX,
            )
    if isinstance(exc, (sa_exc.ArgumentError, sa_exc.NoSuchModuleError)):
        return CliError(
            ExitCode.CONFIG,
            f"configuration: database_url: {_first_line(exc)}",
            "give a URL such as postgresql://user@host/finoa or sqlite:///path/finoa.db",
        )
    if isinstance(exc, httpx.TransportError):
        try:
            where = f" {exc.request.url}"
        except RuntimeError:
            where = ""
        return CliError(
            ExitCode.CONNECTOR_UNREACHABLE,
            f"cannot reach the connector endpoint{where}: {_first_line(exc)}",
            "check its base_url in the config and that the system is up",
        )
    return None
