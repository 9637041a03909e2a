"""Process definitions: parsing and checking BPMN+DMN, their versions and the spec caches.

Parsing costs milliseconds, so it happens once per process definition: parsed specs are cached
by ``spec_version`` (SHA-256 over the BPMN and DMN bytes, 64 hex chars) and by file path
(re-validated by a cheap ``stat``). Every state carries the exact sources of its version,
gzip-compressed and base64-encoded (about 4 kB; computed once per version, so embedding costs
a string copy): a process that meets a version it has not loaded yet (e.g. after a restart
with new files) checks the sources against the version, parses them once and caches them.
Definitions are trusted input: states must only come from the hub's own store.

Conventions a definition must follow (checked at load, ``ValueError`` otherwise -- a
:class:`~finoa.workflow.definitions.DefinitionRefused` naming element and line where the
deploy checks find it): the BPMN has one executable process (its id is the process key, e.g.
``claim_approval``); each userTask declares its role with a
``camunda:property name="role"`` (or sits in a lane named after the role; ``users`` takes the
people from a ``users`` property, comma-separated employee ids) and may declare
``mode`` (``single``, ``all`` or ``any``; default ``single``) and ``actions`` (comma-separated,
default ``approve,reject``; only implemented actions are accepted); its ``name`` is the human
label; the decision is stored in the task data as ``approved`` (and ``comment``); the process
ends in an end event whose id is ``approved`` or ``rejected``.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from SpiffWorkflow.bpmn.parser.BpmnParser import BpmnValidator
from SpiffWorkflow.bpmn.parser.ValidationException import ValidationException
from SpiffWorkflow.bpmn.specs.defaults import EndEvent
from SpiffWorkflow.camunda.parser.CamundaParser import CamundaParser

from finoa.workflow.decisions import ACTION_HANDLERS, DEFAULT_ACTIONS, Action, StepMode
from finoa.workflow.definitions import (
    DefinitionProblem,
    DefinitionRefused,
    check_bpmn,
    dmn_decisions,
    executable_process_id,
    parse_xml,
)

__all__ = [
    "DEFAULT_BPMN",
    "DEFAULT_DMN",
    "OUTCOMES",
    "PROCESS_ID",
    "ROLES",
    "LoadedSpec",
    "StepInfo",
    "clear_spec_caches",
    "load_files",
    "load_sources",
    "spec_for_state",
]

PROCESS_ID: Final = "claim_approval"
"""Id of the executable BPMN process the engine runs."""

ROLES: Final = (
    "manager",
    "department_head",
    "cost_center_owner",
    "finance_director",
    "cfo",
    "users",
)
"""Roles a user task may declare (resolved from org data by ``finoa.domain.org``)."""

OUTCOMES: Final = ("approved", "rejected")
"""Ids of the end events; the one reached is the process outcome."""

PROCESSES_DIR: Final = Path(__file__).resolve().parent / "processes"
DEFAULT_BPMN: Final = PROCESSES_DIR / "claim_approval.bpmn"
DEFAULT_DMN: Final = PROCESSES_DIR / "approval_levels.dmn"


@dataclass(frozen=True)
class StepInfo:
    """What the definition says about one user task."""

    role: str
    label: str
    mode: StepMode = StepMode.SINGLE
    actions: tuple[Action, ...] = DEFAULT_ACTIONS
    users: tuple[str, ...] = ()  # the people of a ``users`` step, in order


@dataclass(frozen=True)
class LoadedSpec:
    """A parsed, checked process definition and everything derived from it once."""

    version: str
    spec: Any  # BpmnProcessSpec
    subprocess_specs: dict[str, Any]
    steps: dict[str, StepInfo]  # user task id -> role, label, mode, actions
    definitions: dict[str, str]  # embedded sources (gzip+base64), part of every state
    process_id: str = PROCESS_ID  # the executable process's id: the process key


_LOCK: Final = threading.Lock()
_SPECS_BY_VERSION: dict[str, LoadedSpec] = {}
_SPECS_BY_PATH: dict[tuple[str, str], tuple[tuple[int, ...], LoadedSpec]] = {}


def spec_version(bpmn: bytes, dmn: bytes) -> str:
    """The digest that names a definition: SHA-256 over both sources, length-prefixed."""
    digest = hashlib.sha256()
    for part in (bpmn, dmn):
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return digest.hexdigest()


def _pack(data: bytes) -> str:
    return base64.b64encode(gzip.compress(data, compresslevel=9, mtime=0)).decode("ascii")


def _unpack(text: str) -> bytes:
    return gzip.decompress(base64.b64decode(text.encode("ascii"), validate=True))


def _step_info(bpmn_name: str, name: str, task_spec: Any) -> StepInfo:
    extensions = getattr(task_spec, "extensions", None) or {}
    role = extensions.get("role") or getattr(task_spec, "lane", None)
    if role not in ROLES:
        raise ValueError(
            f"{bpmn_name}: user task {name!r} has role {role!r}; expected one of {ROLES}"
        )
    try:
        mode = StepMode(extensions.get("mode", StepMode.SINGLE.value))
    except ValueError:
        modes = [m.value for m in StepMode]
        raise ValueError(
            f"{bpmn_name}: user task {name!r} has mode {extensions.get('mode')!r};"
            f" expected one of {modes}"
        ) from None
    actions = DEFAULT_ACTIONS
    if "actions" in extensions:
        try:
            actions = tuple(Action(a.strip()) for a in extensions["actions"].split(","))
        except ValueError:
            actions = ()
        if not actions or any(a not in ACTION_HANDLERS for a in actions):
            implemented = [a.value for a in ACTION_HANDLERS]
            raise ValueError(
                f"{bpmn_name}: user task {name!r} allows actions {extensions['actions']!r}; "
                f"implemented: {implemented}"
            )
    label = getattr(task_spec, "bpmn_name", None) or name
    users = tuple(u.strip() for u in extensions.get("users", "").split(",") if u.strip())
    return StepInfo(role=role, label=label, mode=mode, actions=actions, users=users)


def parse_definitions(bpmn: bytes, dmn: bytes, bpmn_name: str, dmn_name: str) -> LoadedSpec:
    """Parse and check BPMN+DMN (expensive: call through the caches); ValueError if bad
    (:class:`DefinitionRefused`, naming elements and lines, for what the checks find)."""
    dmn_root = parse_xml(dmn, dmn_name)
    bpmn_root = parse_xml(bpmn, bpmn_name)
    process_id = executable_process_id(bpmn_root, bpmn_name)
    problems = check_bpmn(bpmn_root, bpmn_name, dmn_decisions(dmn_root), ROLES)
    if problems:
        raise DefinitionRefused(problems)
    try:
        parser = CamundaParser(validator=BpmnValidator())
        parser.add_dmn_xml(dmn_root, filename=dmn_name)
        parser.add_bpmn_xml(bpmn_root, filename=bpmn_name)
        spec = parser.get_spec(process_id)
        subprocess_specs = parser.get_subprocess_specs(process_id)
    except ValidationException as exc:
        element = getattr(exc, "id", None) or "definition"
        line = getattr(exc, "line_number", None) or None
        file = getattr(exc, "file_name", None) or bpmn_name
        raise DefinitionRefused(
            [DefinitionProblem(file, str(element), line, str(exc).splitlines()[0])]
        ) from exc

    steps = {
        name: _step_info(bpmn_name, name, task_spec)
        for name, task_spec in spec.task_specs.items()
        if getattr(task_spec, "manual", False)
    }
    for outcome in OUTCOMES:
        if not isinstance(spec.task_specs.get(outcome), EndEvent):
            raise ValueError(f"{bpmn_name}: missing end event with id {outcome!r}")
    if not steps:
        raise ValueError(f"{bpmn_name}: process has no user tasks")

    return LoadedSpec(
        version=spec_version(bpmn, dmn),
        spec=spec,
        subprocess_specs=subprocess_specs,
        steps=steps,
        definitions={"encoding": "gzip+base64", "bpmn": _pack(bpmn), "dmn": _pack(dmn)},
        process_id=process_id,
    )


def load_sources(bpmn: bytes, dmn: bytes, bpmn_name: str, dmn_name: str) -> LoadedSpec:
    """Spec for a deployed definition's bytes: parsed once per version, then cached."""
    return _register(bpmn, dmn, bpmn_name, dmn_name)


def _register(bpmn: bytes, dmn: bytes, bpmn_name: str, dmn_name: str) -> LoadedSpec:
    """Return the cached spec for these sources, parsing them on first sight."""
    version = spec_version(bpmn, dmn)
    loaded = _SPECS_BY_VERSION.get(version)
    if loaded is not None:
        return loaded
    with _LOCK:
        loaded = _SPECS_BY_VERSION.get(version)
        if loaded is None:
            loaded = parse_definitions(bpmn, dmn, bpmn_name, dmn_name)
            _SPECS_BY_VERSION[version] = loaded
    return loaded


def _file_signature(path: Path) -> tuple[int, ...]:
    st = os.stat(path)
    return (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def load_files(bpmn_path: Path, dmn_path: Path) -> LoadedSpec:
    """Spec for two files; cached by path and re-read only when a file changed on disk."""
    key = (str(bpmn_path), str(dmn_path))
    signature = _file_signature(bpmn_path) + _file_signature(dmn_path)
    cached = _SPECS_BY_PATH.get(key)
    if cached is not None and cached[0] == signature:
        return cached[1]
    loaded = _register(bpmn_path.read_bytes(), dmn_path.read_bytes(), key[0], key[1])
    _SPECS_BY_PATH[key] = (signature, loaded)
    return loaded


def spec_for_state(envelope: Mapping[str, Any]) -> LoadedSpec:
    """The spec a stored state runs on: cached, or rebuilt from the sources it carries."""
    version = envelope.get("spec_version")
    if not isinstance(version, str):
        raise ValueError("workflow state has no spec_version")
    loaded = _SPECS_BY_VERSION.get(version)
    if loaded is not None:
        return loaded
    definitions = envelope.get("definitions")
    if not isinstance(definitions, dict) or definitions.get("encoding") != "gzip+base64":
        raise ValueError(f"workflow state has no usable definitions for spec {version!r}")
    try:
        bpmn, dmn = _unpack(definitions["bpmn"]), _unpack(definitions["dmn"])
    except (KeyError, TypeError, ValueError, OSError, EOFError) as exc:
        raise ValueError(f"workflow state has corrupt definitions for spec {version!r}") from exc
    if spec_version(bpmn, dmn) != version:
        raise ValueError("embedded process definitions do not match the state's spec_version")
    return _register(bpmn, dmn, f"<state {version[:12]}>.bpmn", f"<state {version[:12]}>.dmn")


def clear_spec_caches() -> None:
    """Forget every parsed spec (for tests: simulates a fresh process)."""
    with _LOCK:
        _SPECS_BY_VERSION.clear()
        _SPECS_BY_PATH.clear()
