"""Process definitions (流程定义): deploy, list, export, and which one a new document starts on.

A deploy is one BPMN file and at most one DMN file (the decisions its business rule tasks
name). Without a DMN file, the decisions of the process's latest version are used (at first
the shipped ``approval_levels.dmn``). Everything is checked before anything is stored
(``finoa.workflow.definitions``): a refusal names each element and its line. The key of a
process is its executable process's id; versions count up per key, and deploying the same
bytes again is the version they already are. A new document starts on the latest version of
its type's process, or the shipped default; a running one keeps the definition it started
with (its state carries it).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from pydantic import BaseModel, Field
from sqlalchemy import Connection, bindparam, func, insert, select
from sqlalchemy.exc import IntegrityError

from finoa.domain.claim import DocumentType
from finoa.domain.errors import Conflict, InvalidInput, NotFound
from finoa.schemas import UtcDatetime
from finoa.store.prepared import Prepared
from finoa.store.tables import employees, process_definitions
from finoa.store.uow import Database, UnitOfWork
from finoa.workflow.definitions import (
    BPMN_NS,
    CAMUNDA_NS,
    DMN_NS,
    DefinitionProblem,
    DefinitionRefused,
    executable_process_id,
    parse_xml,
)
from finoa.workflow.specs import (
    DEFAULT_DMN,
    PROCESSES_DIR,
    LoadedSpec,
    load_files,
    load_sources,
    parse_definitions,
)

__all__ = [
    "PROCESS_KEYS",
    "SHIPPED",
    "DeployResult",
    "ProcessOut",
    "definition_for",
    "deploy_process",
    "export_process",
    "list_processes",
]

PROCESS_KEYS: Final = {
    DocumentType.EXPENSE_CLAIM: "claim_approval",
    DocumentType.ADVANCE: "advance_approval",
    DocumentType.PAYMENT_REQUEST: "payment_approval",
    DocumentType.REQUISITION: "requisition_approval",
}
"""The process each document type starts."""

SHIPPED: Final = {key: PROCESSES_DIR / f"{key}.bpmn" for key in PROCESS_KEYS.values()}
"""The default BPMN of each process key (all use ``approval_levels.dmn``)."""

LATEST = Prepared(
    select(process_definitions.c.version, process_definitions.c.spec_version)
    .where(process_definitions.c.process_key == bindparam("key"))
    .order_by(process_definitions.c.version.desc())
    .limit(1)
)
SOURCES = Prepared(
    select(process_definitions.c.bpmn, process_definitions.c.dmn).where(
        process_definitions.c.process_key == bindparam("key"),
        process_definitions.c.version == bindparam("version"),
    )
)
_DEPLOYED: dict[str, LoadedSpec] = {}  # spec_version -> parsed spec of a deployed version
_DEPLOYED_LOCK: Final = threading.Lock()


class ProcessOut(BaseModel):
    """A version of a process definition (流程定义版本)."""

    process_key: str = Field(title="流程标识", description="the executable process's id")
    version: int = Field(title="版本", description="0: the default shipped with finoa")
    name: str = Field(title="名称")
    document_types: list[DocumentType] = Field(title="单据类型", description="who starts it")
    spec_version: str = Field(title="定义摘要", description="SHA-256 of BPMN and DMN")
    deployed_at: UtcDatetime | None = Field(default=None, title="部署时间")
    deployed_by: str | None = Field(default=None, title="部署人")
    latest: bool = Field(title="当前版本", description="what new documents start on")


@dataclass(frozen=True)
class DeployResult:
    process_key: str
    version: int
    spec_version: str
    created: bool  # False: these bytes were that version already


def _refusal(exc: DefinitionRefused) -> InvalidInput:
    """The refusal, naming the first problem's file as the field; each problem in `errors`
    with its file, element and line."""
    file = exc.problems[0].file

    def where(p: DefinitionProblem) -> str:
        text = str(p)
        return text.removeprefix(f"{file}, ") if p.file == file else text

    error = InvalidInput(file, "; ".join(where(p) for p in exc.problems))
    error.extensions["errors"] = [
        {
            "field": p.file,
            "message": where(p),
            "file": p.file,
            "element": p.element,
            "line": p.line,
            "problem": p.message,
        }
        for p in exc.problems
    ]
    return error


def _classify(files: Sequence[tuple[str, bytes]]) -> tuple[tuple[str, bytes], Any, Any]:
    """(the BPMN file, its root, the DMN file and root or None), refusing anything else."""
    bpmn: list[tuple[tuple[str, bytes], Any]] = []
    dmn: list[tuple[tuple[str, bytes], Any]] = []
    for name, data in files:
        root = parse_xml(data, name)
        namespace = root.nsmap.get(root.prefix)
        if namespace == BPMN_NS:
            bpmn.append(((name, data), root))
        elif namespace in DMN_NS:
            dmn.append(((name, data), root))
        else:
            raise DefinitionRefused(
                [
                    DefinitionProblem(
                        name, root.tag, root.sourceline, "neither BPMN 2.0 nor DMN definitions"
                    )
                ]
            )
    if len(bpmn) != 1 or len(dmn) > 1:
        raise InvalidInput(
            "files",
            f"deploy one BPMN file and at most one DMN file; got {len(bpmn)} BPMN and "
            f"{len(dmn)} DMN",
        )
    return bpmn[0][0], bpmn[0][1], (dmn[0] if dmn else None)


def _check_users(conn: Connection, root: Any, file: str) -> list[DefinitionProblem]:
    """`users` steps must name known, active employees."""
    known = {r.id for r in conn.execute(select(employees.c.id).where(employees.c.active))}
    problems = []
    for task in root.iter(f"{{{BPMN_NS}}}userTask"):
        for prop in task.iter(f"{{{CAMUNDA_NS}}}property"):
            if prop.get("name") != "users":
                continue
            unknown = [u.strip() for u in prop.get("value", "").split(",") if u.strip()]
            unknown = [u for u in unknown if u not in known]
            if unknown:
                problems.append(
                    DefinitionProblem(
                        file,
                        task.get("id") or "userTask",
                        prop.sourceline,
                        f"users {unknown} are not active employees",
                    )
                )
    return problems


def deploy_process(db: Database, files: Sequence[tuple[str, bytes]], *, actor: str) -> DeployResult:
    """Check and store a process definition; the same bytes again change nothing."""
    for name, data in files:
        try:
            data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InvalidInput(name, f"is not UTF-8 (byte {exc.start}); save it as UTF-8") from None
    try:
        (bpmn_name, bpmn), bpmn_root, dmn_file = _classify(files)
        with db.uow(actor) as uow:
            key = _process_key(bpmn_root, bpmn_name)
            if dmn_file is not None:
                dmn_name, dmn = dmn_file[0]
            else:
                dmn_name, dmn = "approval_levels.dmn", _latest_dmn(uow.conn, key)
            loaded = parse_definitions(bpmn, dmn, bpmn_name, dmn_name)
            problems = _check_users(uow.conn, bpmn_root, bpmn_name)
            if problems:
                raise DefinitionRefused(problems)
            result = _store(uow, key, bpmn_root, bpmn, dmn, loaded)
            uow.commit()
            return result
    except DefinitionRefused as exc:
        raise _refusal(exc) from None
    except IntegrityError:
        raise Conflict(
            "process_key", "another deploy of this process was stored meanwhile; deploy again"
        ) from None
    except ValueError as exc:  # the engine's own conventions (end events, …)
        raise InvalidInput(files[0][0] if files else "files", str(exc)) from None


def _process_key(root: Any, file: str) -> str:
    key = executable_process_id(root, file)
    if len(key) > 64:
        raise InvalidInput(file, f"process id {key[:20]}… is longer than 64 characters")
    return key


def _latest_dmn(conn: Connection, key: str) -> bytes:
    latest = LATEST.first(conn, {"key": key})
    if latest is None:
        return DEFAULT_DMN.read_bytes()
    row = SOURCES.first(conn, {"key": key, "version": latest.version})
    return str(row.dmn).encode("utf-8")


def _store(
    uow: UnitOfWork, key: str, root: Any, bpmn: bytes, dmn: bytes, loaded: LoadedSpec
) -> DeployResult:
    conn = uow.conn
    same = conn.execute(
        select(process_definitions.c.version).where(
            process_definitions.c.process_key == key,
            process_definitions.c.spec_version == loaded.version,
        )
    ).first()
    if same is not None:
        return DeployResult(key, same.version, loaded.version, created=False)
    latest = conn.execute(
        select(func.max(process_definitions.c.version)).where(
            process_definitions.c.process_key == key
        )
    ).scalar()
    version = int(latest or 0) + 1
    process = next(root.iter(f"{{{BPMN_NS}}}process"))
    name = (process.get("name") or key)[:200]
    conn.execute(
        insert(process_definitions),
        {
            "process_key": key,
            "version": version,
            "spec_version": loaded.version,
            "name": name,
            "bpmn": bpmn.decode("utf-8"),
            "dmn": dmn.decode("utf-8"),
            "deployed_at": uow.now,
            "deployed_by": uow.actor,
        },
    )
    uow.audit(
        "process.deployed",
        "process",
        key,
        {"version": version, "spec_version": loaded.version, "name": name},
    )
    return DeployResult(key, version, loaded.version, created=True)


def _types_of(key: str) -> list[DocumentType]:
    return [t for t, k in PROCESS_KEYS.items() if k == key]


def list_processes(db: Database) -> list[ProcessOut]:
    """Every deployed version, and the shipped default of each process (version 0)."""
    with db.engine.connect() as conn:
        rows = conn.execute(
            select(
                process_definitions.c.process_key,
                process_definitions.c.version,
                process_definitions.c.name,
                process_definitions.c.spec_version,
                process_definitions.c.deployed_at,
                process_definitions.c.deployed_by,
            ).order_by(process_definitions.c.process_key, process_definitions.c.version)
        ).all()
    latest: dict[str, int] = {}
    for row in rows:
        latest[row.process_key] = row.version
    out = []
    for key, path in SHIPPED.items():
        shipped = load_files(path, DEFAULT_DMN)
        out.append(
            ProcessOut(
                process_key=key,
                version=0,
                name=str(shipped.spec.description or key),
                document_types=_types_of(key),
                spec_version=shipped.version,
                latest=key not in latest,
            )
        )
    for row in rows:
        out.append(
            ProcessOut(
                process_key=row.process_key,
                version=row.version,
                name=row.name,
                document_types=_types_of(row.process_key),
                spec_version=row.spec_version,
                deployed_at=_aware(row.deployed_at),
                deployed_by=row.deployed_by,
                latest=latest[row.process_key] == row.version,
            )
        )
    return sorted(out, key=lambda p: (p.process_key, p.version))


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def export_process(db: Database, key: str, version: int | None = None) -> tuple[int, str, str]:
    """(version, BPMN, DMN) of a process: the latest unless `version` (0: the shipped one)."""
    with db.engine.connect() as conn:
        if version is None:
            latest = LATEST.first(conn, {"key": key})
            version = latest.version if latest is not None else 0
        if version != 0:
            row = SOURCES.first(conn, {"key": key, "version": version})
            if row is None:
                raise NotFound("version", f"process {key} has no version {version}")
            return version, str(row.bpmn), str(row.dmn)
    path = SHIPPED.get(key)
    if path is None:
        raise NotFound("process_key", f"no process {key!r} (known: {sorted(SHIPPED)})")
    return 0, path.read_text("utf-8"), DEFAULT_DMN.read_text("utf-8")


def definition_for(conn: Connection, document_type: DocumentType) -> LoadedSpec | None:
    """The definition a new document of this type starts on: the latest deployed version of
    its process, else the shipped default (None for an expense claim: the engine's own)."""
    key = PROCESS_KEYS[document_type]
    latest = LATEST.first(conn, {"key": key})
    if latest is None:
        if document_type is DocumentType.EXPENSE_CLAIM:
            return None
        return load_files(SHIPPED[key], DEFAULT_DMN)
    loaded = _DEPLOYED.get(latest.spec_version)
    if loaded is None:
        row = SOURCES.first(conn, {"key": key, "version": latest.version})
        loaded = load_sources(
            str(row.bpmn).encode("utf-8"),
            str(row.dmn).encode("utf-8"),
            f"{key} v{latest.version}.bpmn",
            f"{key} v{latest.version}.dmn",
        )
        with _DEPLOYED_LOCK:
            _DEPLOYED[latest.spec_version] = loaded
    return loaded


def shipped_paths() -> list[Path]:
    """Every shipped definition file (the BPMN of each process and the DMN they use)."""
    return [*SHIPPED.values(), DEFAULT_DMN]
