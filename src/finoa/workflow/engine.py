"""Expense-claim approval engine: a thin, fast adapter over SpiffWorkflow (BPMN 2.0 + DMN).

The default process (``processes/claim_approval.bpmn``) evaluates the DMN decision table
``processes/approval_levels.dmn`` and then asks the direct manager, the finance director and the
CFO in turn, depending on the claim amount. A rejection at any level ends the process.

Usage::

    engine = ApprovalEngine()
    st = engine.start({"claim_id": "C-1", "amount_fen": 600_000, "department": "ops",
                       "category": "travel"})
    # persist st.state; route st.pending[0] to someone with role st.pending[0].role
    st = engine.decide(st.state, st.pending[0].step_id, approved=True, comment="ok")
    # ... until st.outcome is "approved" or "rejected"

Process conventions (see the comment at the top of the BPMN file): each userTask declares its
role with a ``camunda:property name="role"`` (or sits in a lane named after the role), its
``name`` is the human label, the approver's decision is stored in the task data as ``approved``
(and ``comment``), and the process ends in an end event whose id is ``approved`` or
``rejected``. Definitions that break these rules are refused when loaded (``ValueError``).
Expressions (DMN entries, gateway conditions) are evaluated as Python over the task data, with
FEEL-style ``true``/``false`` and a few harmless builtins only, so the DMN table stays
standard for bpmn.io / Camunda Modeler. A process that stops without a pending user task and
without reaching an end raises ``RuntimeError`` instead of leaving a claim stuck silently.

Performance design
------------------
* Parsing BPMN+DMN costs milliseconds, so it happens once per process: specs are cached at
  module level by file path (re-validated by a cheap ``stat``) and by ``spec_version``
  (SHA-256 over the BPMN and DMN bytes, 64 hex chars).
* SpiffWorkflow's default serializer writes the whole process spec into every state and
  rebuilds it on every restore. Here the workflow is serialized *without* its spec and
  restored onto the cached, already-parsed spec of the state's ``spec_version``; the task tree
  is written by a leaner converter (each id converted once, tasks as a JSON list so stores that
  reorder object keys, like PostgreSQL ``jsonb``, do no harm). JSON is done with orjson.
* Expressions are compiled once and cached; tree walks SpiffWorkflow repeats after every task
  are replaced by dict scans for flat processes (see ``_ClaimWorkflow``).
  Measured (CPU time, 5 x 1000 runs): ``start`` and ``decide`` take about 0.35 ms each;
  stock SpiffWorkflow with its JSON serializer takes about 0.85 ms and 1.5 ms.

Versioning: running instances keep their definition
---------------------------------------------------
A state records the ``spec_version`` it was started with, and ``decide`` always continues on
that version, whatever files the engine instance was built from. To keep states
self-contained (no separate "process definitions" table that callers must remember to
persist, and no breakage when a deployment changes the BPMN), every state also carries the
exact BPMN and DMN sources of its version, gzip-compressed and base64-encoded (about 4 kB of
an ~8 kB state; computed once per version, so embedding costs a string copy). When ``decide``
meets a version this process has not loaded yet (e.g. after a restart with new files), it
checks the embedded sources against ``spec_version``, parses them once and caches them; later
decisions on that version use the cache. Definitions are trusted input: states must only come
from the hub's own store.

Task data holds only the facts given to ``start``, the DMN outputs and the decisions; these are
JSON scalars, so they round-trip exactly.

Thread-safety: engines may be shared between threads; each call works on its own workflow
object, parsed specs are read-only, and cache updates are guarded by a lock.
"""

from __future__ import annotations

import ast
import base64
import builtins
import gzip
import hashlib
import logging
import os
import threading
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from types import CodeType
from typing import Any, Final
from uuid import UUID

import orjson
from lxml import etree
from SpiffWorkflow.bpmn import BpmnWorkflow
from SpiffWorkflow.bpmn.parser.BpmnParser import BpmnValidator
from SpiffWorkflow.bpmn.parser.ValidationException import ValidationException
from SpiffWorkflow.bpmn.script_engine import PythonScriptEngine, TaskDataEnvironment
from SpiffWorkflow.bpmn.serializer import BpmnWorkflowSerializer
from SpiffWorkflow.bpmn.serializer.default.workflow import BpmnWorkflowConverter
from SpiffWorkflow.bpmn.serializer.workflow import VERSION as SPIFF_SERIALIZER_VERSION
from SpiffWorkflow.bpmn.specs.defaults import EndEvent
from SpiffWorkflow.bpmn.specs.mixins.events.event_types import CatchingEvent
from SpiffWorkflow.camunda.parser.CamundaParser import CamundaParser
from SpiffWorkflow.camunda.serializer.config import CAMUNDA_CONFIG
from SpiffWorkflow.task import Task
from SpiffWorkflow.util.deep_merge import DeepMerge
from SpiffWorkflow.util.task import TaskState

# SpiffWorkflow logs every task state change at INFO, and while its workflow logger has no
# level of its own it also lists every task of the instance for each entry. Neither is wanted
# on the hot path; configure these loggers after import to see them again.
for _name in ("spiff.workflow", "spiff.task"):
    logging.getLogger(_name).setLevel(logging.WARNING)

__all__ = [
    "OUTCOMES",
    "PROCESS_ID",
    "ROLES",
    "ApprovalEngine",
    "EngineState",
    "PendingStep",
    "StepNotPending",
]

PROCESS_ID: Final = "claim_approval"
"""Id of the executable BPMN process the engine runs."""

ROLES: Final = ("manager", "finance_director", "cfo")
"""Roles a user task may declare."""

OUTCOMES: Final = ("approved", "rejected")
"""Ids of the end events; the one reached is the process outcome."""

MAX_AMOUNT_FEN: Final = 2**53 - 1
"""Largest accepted amount (exact in every JSON reader, incl. JavaScript)."""

STATE_FORMAT: Final = "finoa.workflow/1"

PROCESSES_DIR: Final = Path(__file__).resolve().parent / "processes"
DEFAULT_BPMN: Final = PROCESSES_DIR / "claim_approval.bpmn"
DEFAULT_DMN: Final = PROCESSES_DIR / "approval_levels.dmn"

_FACT_TYPES: Final[dict[str, type]] = {
    "claim_id": str,
    "amount_fen": int,
    "department": str,
    "category": str,
}


# --------------------------------------------------------------------------- public types


@dataclass(frozen=True)
class PendingStep:
    """A user task waiting for a decision."""

    step_id: str  # stable id of the ready user task (the SpiffWorkflow task uuid as str)
    role: str  # "manager" | "finance_director" | "cfo"
    name: str  # BPMN task id, e.g. "manager_approval"
    label: str  # human label, e.g. "Direct manager approval (直属上级审批)"


@dataclass(frozen=True)
class EngineState:
    """Result of an engine call: what to persist and what happens next."""

    state: str  # serialized workflow (JSON string) to persist, one write per transaction
    pending: tuple[PendingStep, ...]  # ready user tasks now
    outcome: str | None  # None while running; "approved" or "rejected" once completed
    spec_version: str  # digest of the BPMN+DMN bytes this instance runs on


class StepNotPending(LookupError):
    """``step_id`` is not a ready user task of the given workflow instance."""

    def __init__(self, step_id: str) -> None:
        super().__init__(step_id)
        self.step_id = step_id

    def __str__(self) -> str:
        return f"step {self.step_id!r} is not a pending approval step of this instance"


# --------------------------------------------------------------------------- expressions


_SAFE_BUILTINS: Final = {
    name: getattr(builtins, name)
    for name in ("abs", "all", "any", "bool", "float", "int", "len", "max", "min", "round", "str")
}


@lru_cache(maxsize=4096)
def _compile_expression(expression: str) -> CodeType:
    return compile(expression, "<expression>", "eval")


@lru_cache(maxsize=4096)
def _is_valid_syntax(expression: str) -> bool:
    try:
        ast.parse(expression)
    except SyntaxError:
        return False
    return True


class _CachedEnvironment(TaskDataEnvironment):  # type: ignore[misc]
    """Task-data environment that compiles each expression once and knows FEEL booleans."""

    def __init__(self) -> None:
        super().__init__({"__builtins__": _SAFE_BUILTINS, "true": True, "false": False})

    def evaluate(
        self,
        expression: str,
        context: dict[str, Any],
        external_context: dict[str, Any] | None = None,
    ) -> Any:
        scope = dict(self.globals)
        if external_context:
            scope.update(external_context)
        scope.update(context)
        return eval(_compile_expression(expression), scope)


class _CachedScriptEngine(PythonScriptEngine):  # type: ignore[misc]
    """Script engine whose syntax checks (used heavily by the DMN engine) are cached."""

    def __init__(self) -> None:
        super().__init__(environment=_CachedEnvironment())

    def validate(self, expression: str) -> None:
        if not _is_valid_syntax(expression):
            raise SyntaxError(f"invalid expression: {expression!r}")


_SCRIPT_ENGINE: Final = _CachedScriptEngine()


# --------------------------------------------------------------------------- workflow


class _ClaimWorkflow(BpmnWorkflow):  # type: ignore[misc]
    """BpmnWorkflow with cheaper bookkeeping for flat (subprocess-free) processes.

    SpiffWorkflow walks the whole task tree after every completed task to refresh WAITING
    tasks and once per engine-step round to find READY ones; for a flat process a scan of
    the task dict is equivalent and several times cheaper. Anything with subprocesses or
    waiting tasks takes SpiffWorkflow's own code path.
    """

    def update_waiting_tasks(self) -> None:
        if self.subprocesses or any(t.state == TaskState.WAITING for t in self.tasks.values()):
            super().update_waiting_tasks()

    def run_engine_steps(self) -> None:
        """Run READY automatic tasks until only user tasks (or waits) remain."""
        if self.subprocesses or self.event_manager.tasks:
            self.do_engine_steps()
            return
        while True:
            ready = [
                t
                for t in self.tasks.values()
                if t.state == TaskState.READY and not t.task_spec.manual
            ]
            if not ready:
                break
            for task in ready:
                if task.state == TaskState.READY:
                    task.run()
            if self.subprocesses or self.event_manager.tasks:
                self.do_engine_steps()
                return


# --------------------------------------------------------------------------- serialization


class _SpeclessWorkflowConverter(BpmnWorkflowConverter):  # type: ignore[misc]
    """Serializes a top-level workflow *without* its spec and restores it onto a given spec.

    Each task is written as in SpiffWorkflow (id, parent, children, state, spec name, data as
    a delta against the parent's), but as a JSON *list* in creation order, so the state
    survives stores that reorder object keys (e.g. PostgreSQL ``jsonb``), and each id is
    converted between ``UUID`` and ``str`` once instead of three times (the main cost of
    SpiffWorkflow's converter). Subprocesses (none in the default process) use
    SpiffWorkflow's own converters.
    """

    def to_dict(self, workflow: BpmnWorkflow) -> dict[str, Any]:
        convert = self.registry.convert
        clean = self.registry.clean
        all_tasks = workflow.tasks
        ids = {task_id: str(task_id) for task_id in all_tasks}
        tasks: list[dict[str, Any]] = []
        for task_id, task in all_tasks.items():
            parent = all_tasks.get(task._parent) if task._parent is not None else None
            entry: dict[str, Any] = {
                "id": ids[task_id],
                "parent": ids[parent.id] if parent is not None else None,
                "children": [ids.get(child) or str(child) for child in task._children],
                "state": task.state,
                "task_spec": task.task_spec.name,
                "triggered": task.triggered,
                "last_state_change": task.last_state_change,
                "internal_data": convert(task.internal_data) if task.internal_data else {},
            }
            if parent is None:
                entry["data"] = convert(clean(task.data))
            else:
                updates = DeepMerge.get_updated_keys(parent.data, task.data)
                deletions = DeepMerge.get_deleted_keys(parent.data, task.data)
                entry["delta"] = {"updates": clean(updates), "deletions": deletions}
            tasks.append(entry)
        return {
            "data": convert(clean(workflow.data)),
            "correlations": workflow.correlations,
            "last_task": str(workflow.last_task.id) if workflow.last_task is not None else None,
            "success": workflow.success,
            "completed": workflow.completed,
            "tasks": tasks,
            "root": ids[workflow.task_tree.id],
            "subprocesses": self.mapping_to_dict(workflow.subprocesses),
            "bpmn_events": convert(workflow.bpmn_events),
        }

    def from_dict(
        self,
        dct: dict[str, Any],
        spec: Any = None,
        subprocess_specs: Any = None,
        script_engine: Any = None,
    ) -> BpmnWorkflow:
        if spec is None:
            raise ValueError("a workflow spec is required to restore a workflow")
        restore = self.registry.restore
        workflow = self.target_class(
            spec, subprocess_specs, script_engine=script_engine, deserializing=True
        )
        raw_tasks: list[dict[str, Any]] = dct["tasks"]
        ids = {entry["id"]: UUID(entry["id"]) for entry in raw_tasks}
        tasks: dict[UUID, Task] = {}
        workflow.tasks = tasks
        entries: dict[UUID, dict[str, Any]] = {}
        for entry in raw_tasks:
            task_spec = spec.task_specs.get(entry["task_spec"])
            if task_spec is None:
                raise ValueError(f"state refers to unknown task spec {entry['task_spec']!r}")
            task = Task(workflow, task_spec, state=entry["state"], id=ids[entry["id"]])
            parent_key = entry["parent"]
            task._parent = (ids.get(parent_key) or UUID(parent_key)) if parent_key else None
            task._children = [ids.get(child) or UUID(child) for child in entry["children"]]
            task.last_state_change = entry["last_state_change"]
            task.triggered = entry["triggered"]
            internal = entry["internal_data"]
            task.internal_data = restore(internal) if internal else {}
            if isinstance(task_spec, CatchingEvent) and task.has_state(TaskState.WAITING):
                workflow.event_manager.add_task(task)
            entries[task.id] = entry

        # Data is stored as a delta against the parent's: rebuild parents first.
        done: set[UUID] = set()
        for task_id in entries:
            chain: list[UUID] = []
            current: UUID | None = task_id
            while current is not None and current not in done:
                chain.append(current)
                current = tasks[current]._parent
                if current is not None and current not in tasks:
                    current = None
            for chained_id in reversed(chain):
                task = tasks[chained_id]
                entry = entries[chained_id]
                parent = tasks.get(task._parent) if task._parent is not None else None
                if parent is None or "delta" not in entry:
                    task.data = restore(entry.get("data", {}))
                else:
                    delta = entry["delta"]
                    data = DeepMerge.merge({}, parent.data)
                    data.update(restore(delta.get("updates", {})))
                    for name in delta.get("deletions", ()):
                        data.pop(name, None)
                    task.data = data
                done.add(chained_id)

        workflow.task_tree = tasks[ids.get(dct["root"]) or UUID(dct["root"])]
        self.set_default_attributes(workflow, dct)
        self.subprocesses_from_dict(dct["subprocesses"], workflow)
        workflow.bpmn_events = restore(dct.pop("bpmn_events", []))
        return workflow


_CONVERTERS: Final = dict(CAMUNDA_CONFIG)
_CONVERTERS.pop(BpmnWorkflow)
_CONVERTERS[_ClaimWorkflow] = _SpeclessWorkflowConverter
_REGISTRY: Final = BpmnWorkflowSerializer.configure(_CONVERTERS)


def _orjson_default(obj: object) -> object:
    """Fallback for values orjson cannot encode natively (SpiffWorkflow-registered types)."""
    typename = _REGISTRY.typenames.get(type(obj))
    if typename is not None:
        return _REGISTRY.convert_to_dict[typename](obj)
    if isinstance(obj, set | frozenset):
        return list(obj)
    raise TypeError(f"cannot serialize {type(obj).__name__} in workflow state")


# --------------------------------------------------------------------------- spec loading


@dataclass(frozen=True)
class _StepInfo:
    role: str
    label: str


@dataclass(frozen=True)
class _LoadedSpec:
    version: str
    spec: Any  # BpmnProcessSpec
    subprocess_specs: dict[str, Any]
    steps: dict[str, _StepInfo]  # user task id -> role/label
    definitions: dict[str, str]  # embedded sources (gzip+base64), part of every state


_LOCK: Final = threading.Lock()
_SPECS_BY_VERSION: dict[str, _LoadedSpec] = {}
_SPECS_BY_PATH: dict[tuple[str, str], tuple[tuple[int, ...], _LoadedSpec]] = {}


def _spec_version(bpmn: bytes, dmn: bytes) -> str:
    digest = hashlib.sha256()
    for part in (bpmn, dmn):
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return digest.hexdigest()


def _xml(data: bytes) -> Any:
    parser = etree.XMLParser(resolve_entities=False, no_network=True, remove_comments=True)
    return etree.fromstring(data, parser=parser)


def _pack(data: bytes) -> str:
    return base64.b64encode(gzip.compress(data, compresslevel=9, mtime=0)).decode("ascii")


def _unpack(text: str) -> bytes:
    return gzip.decompress(base64.b64decode(text.encode("ascii"), validate=True))


def _parse(bpmn: bytes, dmn: bytes, bpmn_name: str, dmn_name: str) -> _LoadedSpec:
    """Parse and validate BPMN+DMN (expensive: call through the caches); ValueError if bad."""
    try:
        parser = CamundaParser(validator=BpmnValidator())
        parser.add_dmn_xml(_xml(dmn), filename=dmn_name)
        parser.add_bpmn_xml(_xml(bpmn), filename=bpmn_name)
        if PROCESS_ID not in parser.get_process_ids():
            raise ValueError(f"{bpmn_name}: no process with id {PROCESS_ID!r}")
        spec = parser.get_spec(PROCESS_ID)
        subprocess_specs = parser.get_subprocess_specs(PROCESS_ID)
    except (ValidationException, etree.XMLSyntaxError) as exc:
        raise ValueError(f"invalid process definition ({bpmn_name}, {dmn_name}): {exc}") from exc

    steps: dict[str, _StepInfo] = {}
    for name, task_spec in spec.task_specs.items():
        if not getattr(task_spec, "manual", False):
            continue
        extensions = getattr(task_spec, "extensions", None) or {}
        role = extensions.get("role") or getattr(task_spec, "lane", None)
        if role not in ROLES:
            raise ValueError(
                f"{bpmn_name}: user task {name!r} has role {role!r}; expected one of {ROLES}"
            )
        steps[name] = _StepInfo(role=role, label=getattr(task_spec, "bpmn_name", None) or name)
    for outcome in OUTCOMES:
        if not isinstance(spec.task_specs.get(outcome), EndEvent):
            raise ValueError(f"{bpmn_name}: missing end event with id {outcome!r}")
    if not steps:
        raise ValueError(f"{bpmn_name}: process has no user tasks")

    return _LoadedSpec(
        version=_spec_version(bpmn, dmn),
        spec=spec,
        subprocess_specs=subprocess_specs,
        steps=steps,
        definitions={"encoding": "gzip+base64", "bpmn": _pack(bpmn), "dmn": _pack(dmn)},
    )


def _register(bpmn: bytes, dmn: bytes, bpmn_name: str, dmn_name: str) -> _LoadedSpec:
    """Return the cached spec for these sources, parsing them on first sight."""
    version = _spec_version(bpmn, dmn)
    loaded = _SPECS_BY_VERSION.get(version)
    if loaded is not None:
        return loaded
    with _LOCK:
        loaded = _SPECS_BY_VERSION.get(version)
        if loaded is None:
            loaded = _parse(bpmn, dmn, bpmn_name, dmn_name)
            _SPECS_BY_VERSION[version] = loaded
    return loaded


def _file_signature(path: Path) -> tuple[int, ...]:
    st = os.stat(path)
    return (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def _load_files(bpmn_path: Path, dmn_path: Path) -> _LoadedSpec:
    """Spec for two files; cached by path and re-read only when a file changed on disk."""
    key = (str(bpmn_path), str(dmn_path))
    signature = _file_signature(bpmn_path) + _file_signature(dmn_path)
    cached = _SPECS_BY_PATH.get(key)
    if cached is not None and cached[0] == signature:
        return cached[1]
    loaded = _register(bpmn_path.read_bytes(), dmn_path.read_bytes(), key[0], key[1])
    _SPECS_BY_PATH[key] = (signature, loaded)
    return loaded


def _spec_for_state(envelope: Mapping[str, Any]) -> _LoadedSpec:
    version = envelope.get("spec_version")
    if not isinstance(version, str):
        raise ValueError("workflow state has no spec_version")
    loaded = _SPECS_BY_VERSION.get(version)
    if loaded is not None:
        return loaded
    # First time this process sees the version: rebuild it from the embedded sources.
    definitions = envelope.get("definitions")
    if not isinstance(definitions, dict) or definitions.get("encoding") != "gzip+base64":
        raise ValueError(f"workflow state has no usable definitions for spec {version!r}")
    try:
        bpmn, dmn = _unpack(definitions["bpmn"]), _unpack(definitions["dmn"])
    except (KeyError, TypeError, ValueError, OSError, EOFError) as exc:
        raise ValueError(f"workflow state has corrupt definitions for spec {version!r}") from exc
    if _spec_version(bpmn, dmn) != version:
        raise ValueError("embedded process definitions do not match the state's spec_version")
    return _register(bpmn, dmn, f"<state {version[:12]}>.bpmn", f"<state {version[:12]}>.dmn")


def _clear_spec_caches() -> None:
    """Forget every parsed spec (for tests: simulates a fresh process)."""
    with _LOCK:
        _SPECS_BY_VERSION.clear()
        _SPECS_BY_PATH.clear()


# --------------------------------------------------------------------------- engine


def _validate_facts(facts: Mapping[str, object]) -> dict[str, object]:
    unknown = set(facts) - set(_FACT_TYPES)
    if unknown:
        raise ValueError(f"unexpected facts {sorted(unknown)}; allowed: {sorted(_FACT_TYPES)}")
    data: dict[str, object] = {}
    for key, expected in _FACT_TYPES.items():
        if key not in facts:
            raise ValueError(f"missing fact {key!r}")
        value = facts[key]
        if not isinstance(value, expected) or isinstance(value, bool):
            raise TypeError(f"fact {key!r} must be {expected.__name__}, got {type(value).__name__}")
        data[key] = value
    amount = data["amount_fen"]
    if not isinstance(amount, int) or not 0 < amount <= MAX_AMOUNT_FEN:
        raise ValueError(f"amount_fen must be in 1..{MAX_AMOUNT_FEN}, got {amount}")
    return data


class _LiveInstances:
    """Recently written states and the in-memory workflows they were serialized from.

    Deciding a step restores the workflow from its state; when this process wrote that very
    state, the live object is taken instead (and removed, since deciding changes it). A state
    whose transaction was rolled back is simply never asked for again and ages out.
    """

    def __init__(self, size: int) -> None:
        self._size = size
        self._items: OrderedDict[str, tuple[_ClaimWorkflow, _LoadedSpec]] = OrderedDict()
        self._lock = threading.Lock()

    def put(self, state: str, workflow: _ClaimWorkflow, loaded: _LoadedSpec) -> None:
        with self._lock:
            self._items[state] = (workflow, loaded)
            while len(self._items) > self._size:
                self._items.popitem(last=False)

    def take(self, state: str) -> tuple[_ClaimWorkflow, _LoadedSpec] | None:
        with self._lock:
            return self._items.pop(state, None)


class ApprovalEngine:
    """Runs the claim-approval process; stateless apart from the shared spec caches and a
    bounded set of live instances that spares re-reading states this process just wrote."""

    def __init__(
        self,
        bpmn_path: Path | None = None,
        dmn_path: Path | None = None,
        *,
        live_instances: int = 1024,
    ) -> None:
        """Load (or reuse) the process definition; defaults are the shipped files."""
        self._bpmn_path = Path(bpmn_path).resolve() if bpmn_path is not None else DEFAULT_BPMN
        self._dmn_path = Path(dmn_path).resolve() if dmn_path is not None else DEFAULT_DMN
        self._loaded = _load_files(self._bpmn_path, self._dmn_path)
        self._live = _LiveInstances(live_instances)

    @property
    def spec_version(self) -> str:
        """Digest of the BPMN+DMN bytes new instances are started with."""
        return self._loaded.version

    def start(self, facts: dict[str, object]) -> EngineState:
        """Start an instance for a claim and run it to the first approval step.

        ``facts`` holds exactly ``claim_id`` (str), ``amount_fen`` (int in 分, 1 to
        ``MAX_AMOUNT_FEN``), ``department`` (str) and ``category`` (str) -- ids and amounts,
        never documents. Raises ``ValueError``/``TypeError`` for anything else.
        """
        data = _validate_facts(facts)
        loaded = self._loaded
        workflow = _ClaimWorkflow(
            loaded.spec, loaded.subprocess_specs, script_engine=_SCRIPT_ENGINE
        )
        workflow.task_tree.data.update(data)
        workflow.run_engine_steps()
        return self._keep(workflow, loaded)

    def decide(
        self, state: str, step_id: str, approved: bool, comment: str | None = None
    ) -> EngineState:
        """Record a decision on pending step ``step_id`` and run until the next wait.

        The instance continues on the definition it was started with (``state``'s
        spec_version), which need not be this engine's. Raises :class:`StepNotPending` if
        ``step_id`` is not a ready user task of this instance (unknown, already decided, ...).
        """
        if not isinstance(approved, bool):
            raise TypeError("approved must be a bool")
        if comment is not None and not isinstance(comment, str):
            raise TypeError("comment must be a str or None")
        workflow, loaded = self._live.take(state) or _restore(state)
        try:
            task = workflow.tasks.get(UUID(step_id))
        except (ValueError, TypeError, AttributeError):
            task = None
        if task is None or task.state != TaskState.READY or task.task_spec.name not in loaded.steps:
            raise StepNotPending(step_id)
        task.data["approved"] = approved
        task.data["comment"] = comment
        task.run()
        workflow.run_engine_steps()
        return self._keep(workflow, loaded)

    def _keep(self, workflow: _ClaimWorkflow, loaded: _LoadedSpec) -> EngineState:
        result = _snapshot(workflow, loaded)
        if result.outcome is None:
            self._live.put(result.state, workflow, loaded)
        return result


def _restore(state: str) -> tuple[_ClaimWorkflow, _LoadedSpec]:
    try:
        envelope = orjson.loads(state)
    except orjson.JSONDecodeError as exc:
        raise ValueError("workflow state is not valid JSON") from exc
    if not isinstance(envelope, dict) or envelope.get("format") != STATE_FORMAT:
        raise ValueError(f"workflow state is not in format {STATE_FORMAT!r}")
    if envelope.get("serializer_version") != SPIFF_SERIALIZER_VERSION:
        raise ValueError(
            f"workflow state was written by SpiffWorkflow serializer "
            f"{envelope.get('serializer_version')!r}; this build reads {SPIFF_SERIALIZER_VERSION!r}"
        )
    loaded = _spec_for_state(envelope)
    try:
        workflow = _REGISTRY.restore(
            envelope["workflow"],
            spec=loaded.spec,
            subprocess_specs=loaded.subprocess_specs,
            script_engine=_SCRIPT_ENGINE,
        )
    except (KeyError, TypeError, AttributeError, ValueError) as exc:
        raise ValueError(f"workflow state is corrupt: {exc!r}") from exc
    if not isinstance(workflow, _ClaimWorkflow):
        raise ValueError("workflow state does not hold a claim workflow")
    return workflow, loaded


def _snapshot(workflow: _ClaimWorkflow, loaded: _LoadedSpec) -> EngineState:
    """Serialize once and describe what the instance waits for."""
    pending: list[PendingStep] = []
    outcome: str | None = None
    for task in workflow.tasks.values():
        name = task.task_spec.name
        if task.state == TaskState.READY:
            info = loaded.steps.get(name)
            if info is not None:
                pending.append(PendingStep(str(task.id), info.role, name, info.label))
        elif name in OUTCOMES and task.state == TaskState.COMPLETED:
            outcome = name
    if workflow.is_completed():
        if outcome is None:
            raise RuntimeError("process completed without reaching an approved/rejected end")
    else:
        outcome = None
        if not pending:
            raise RuntimeError("process is waiting but has no pending approval step")
    envelope = {
        "format": STATE_FORMAT,
        "spec_version": loaded.version,
        "serializer_version": SPIFF_SERIALIZER_VERSION,
        "workflow": _REGISTRY.convert(workflow),
        "definitions": loaded.definitions,
    }
    state = orjson.dumps(
        envelope, default=_orjson_default, option=orjson.OPT_PASSTHROUGH_DATETIME
    ).decode("utf-8")
    return EngineState(
        state=state, pending=tuple(pending), outcome=outcome, spec_version=loaded.version
    )
