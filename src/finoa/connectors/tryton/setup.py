"""A Tryton site for finoa: its configuration file, its database, its server process.

`init_site` writes `trytond.conf` into a directory, creates the database with Tryton's own
admin command (modules `account`, `company`, `currency`, `party`), and fills it with finoa's
company, fiscal years, chart of accounts, employee parties and login (`populate`). `serve_args`
is the command line of the server process (`finoa erp tryton serve`).

SQLite is the default backend (the database is a file in the directory); a PostgreSQL URI
(`postgresql://user@host:5432/`) puts the database on that server instead.
"""

from __future__ import annotations

import configparser
import json
import os
import secrets
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from finoa.connectors.basedata import chart_kind
from finoa.services.masterdata import chart_of_accounts, sample_masterdata

CONFIG_NAME = "trytond.conf"
SITE_NAME = "finoa-tryton.yaml"
PASSWORD_NAME = "finoa-tryton.password"
MODULES = ("account", "company", "currency", "party")
# Accounts whose lines name a party (the employee): advances and other payables.
PARTY_ACCOUNTS = ("1221", "2241", "2202")
TRYTON_ADMIN = (
    "import sys; from trytond.cli.admin import main; sys.argv[0] = 'trytond-admin'; main()"
)
TRYTON_SERVER = "import sys; from trytond.cli import main; sys.argv[0] = 'trytond'; main()"


class TrytonSetupError(Exception):
    """Creating or serving the Tryton site failed; the message says where."""


@dataclass(frozen=True)
class TrytonSite:
    """Where a Tryton site lives and how finoa reaches it (read back from `finoa-tryton.yaml`)."""

    directory: Path
    database: str
    backend_uri: str
    host: str
    port: int
    login: str
    password: str

    @property
    def config_file(self) -> Path:
        return self.directory / CONFIG_NAME

    @property
    def password_file(self) -> Path:
        return self.directory / PASSWORD_NAME

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def connector_config(self) -> dict[str, Any]:
        """The `config:` of a `tryton` connector instance pointed at this site."""
        return {
            "base_url": self.base_url,
            "database": self.database,
            "login": self.login,
            "password": self.password,
        }

    def __repr__(self) -> str:
        return (
            f"TrytonSite(directory={str(self.directory)!r}, database={self.database!r}, "
            f"url={self.base_url!r}, login={self.login!r}, password='***')"
        )

    @classmethod
    def load(cls, directory: Path) -> TrytonSite:
        path = Path(directory) / SITE_NAME
        if not path.is_file():
            raise TrytonSetupError(f"{path} does not exist: run `finoa erp tryton init` first")
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        return cls(
            directory=Path(directory),
            database=str(raw["database"]),
            backend_uri=str(raw["backend_uri"]),
            host=str(raw["host"]),
            port=int(raw["port"]),
            login=str(raw["login"]),
            password=(Path(directory) / PASSWORD_NAME).read_text(encoding="utf-8").strip(),
        )


def backend_uri(uri: str | None) -> str:
    """`sqlite://` unless a PostgreSQL URI is given (without a database name)."""
    if not uri:
        return "sqlite://"
    if not uri.startswith(("sqlite://", "postgresql://")):
        raise TrytonSetupError(f"backend {uri!r}: use sqlite:// or postgresql://user@host:port/")
    return uri


def write_config(site: TrytonSite, *, session_timeout_seconds: int = 600) -> None:
    parser = configparser.ConfigParser(interpolation=None)
    parser["database"] = {
        "uri": site.backend_uri,
        "path": str(site.directory),
        "language": "en",
        "retry": "10",
    }
    parser["web"] = {"listen": f"{site.host}:{site.port}"}
    parser["session"] = {"timeout": str(session_timeout_seconds)}
    parser["password"] = {"length": "12"}
    with site.config_file.open("w", encoding="utf-8") as handle:
        parser.write(handle)


def plan_for(year_list: list[int], company_name: str, timezone: str, site: TrytonSite) -> dict:
    """What `populate` creates: finoa's chart with kinds, the employees as parties."""
    accounts = []
    for row in chart_of_accounts():
        code = row["code"]
        accounts.append(
            {
                "code": code,
                "name": row["name_zh"],
                "kind": chart_kind(code),
                "party_required": code.split(".")[0] in PARTY_ACCOUNTS,
            }
        )
    employees = sample_masterdata().get("employees") or []
    return {
        "company_name": company_name,
        "timezone": timezone,
        "login": site.login,
        "password": site.password,
        "years": year_list,
        "word": "记",
        "accounts": accounts,
        "parties": [{"code": str(e["id"]), "name": str(e["name"])} for e in employees],
    }


def init_site(
    directory: Path,
    *,
    database: str = "finoa",
    backend: str | None = None,
    host: str = "127.0.0.1",
    port: int = 8000,
    years: list[int],
    company_name: str = "finoa 示例公司 Example Co.",
    timezone: str = "Asia/Shanghai",
    admin_password: str | None = None,
    login: str = "finoa",
    password: str | None = None,
    session_timeout_seconds: int = 600,
) -> TrytonSite:
    """Create (or complete) the Tryton database of a site; returns how to reach it."""
    directory = Path(directory).resolve()
    directory.mkdir(parents=True, exist_ok=True)
    existing = directory / SITE_NAME
    if existing.is_file():
        previous = TrytonSite.load(directory)
        password = password or previous.password
    site = TrytonSite(
        directory=directory,
        database=database,
        backend_uri=backend_uri(backend),
        host=host,
        port=port,
        login=login,
        password=password or secrets.token_urlsafe(18),
    )
    write_config(site, session_timeout_seconds=session_timeout_seconds)
    pass_file = directory / ".admin-password"  # read by trytond-admin when it creates admin
    if admin_password or not pass_file.exists():
        pass_file.write_text(admin_password or secrets.token_urlsafe(18), encoding="utf-8")
        pass_file.chmod(0o600)
    env = {**os.environ, "TRYTONPASSFILE": str(pass_file)}
    create_database(site)
    _run(
        [
            sys.executable,
            "-c",
            TRYTON_ADMIN,
            "-c",
            str(site.config_file),
            "-d",
            database,
            "-u",
            *MODULES,
            "--activate-dependencies",
            "--email",
            "admin@example.com",
        ],
        env,
        "creating the Tryton database",
    )
    plan = plan_for(years, company_name, timezone, site)
    output = _run(
        [
            sys.executable,
            "-m",
            "finoa.connectors.tryton.populate",
            str(site.config_file),
            database,
        ],
        env,
        "filling the Tryton database",
        stdin=json.dumps(plan),
    )
    site_file = {
        "database": site.database,
        "backend_uri": site.backend_uri,
        "host": site.host,
        "port": site.port,
        "login": site.login,
        "summary": json.loads(output.strip().splitlines()[-1]),
    }
    site.password_file.write_text(site.password, encoding="utf-8")
    site.password_file.chmod(0o600)
    existing.write_text(yaml.safe_dump(site_file, allow_unicode=True), encoding="utf-8")
    return site


def create_database(site: TrytonSite) -> None:
    """An empty database for Tryton to initialise: a file for SQLite, a database on the
    PostgreSQL server otherwise (kept when it exists)."""
    if site.backend_uri.startswith("sqlite"):
        (site.directory / f"{site.database}.sqlite").touch()
        return
    import psycopg
    from psycopg import sql

    target = site.backend_uri.rstrip("/") + "/postgres"
    try:
        with psycopg.connect(target, autocommit=True) as conn:
            exists = conn.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", (site.database,)
            ).fetchone()
            if not exists:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(site.database)))
    except psycopg.Error as exc:
        raise TrytonSetupError(f"backend {site.backend_uri}: {exc}".strip()) from exc


def _run(args: list[str], env: dict[str, str], what: str, stdin: str | None = None) -> str:
    done = subprocess.run(args, env=env, input=stdin, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        lines = (done.stderr or done.stdout).strip().splitlines()
        raise TrytonSetupError(f"{what} failed: {lines[-1] if lines else done.returncode}")
    return done.stdout


def serve_args(site: TrytonSite) -> list[str]:
    """The command line of the trytond server process for the site."""
    return [
        sys.executable,
        "-c",
        TRYTON_SERVER,
        "-c",
        str(site.config_file),
        "-d",
        site.database,
    ]
