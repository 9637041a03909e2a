"""Workflow state: the stored envelope, its format versions and migrations, the converter.

A state is one JSON document::

    {"format": "finoa.workflow/2",      # this module's format name and version
     "spec_version": "<sha-256>",        # the definition the instance runs on (see specs)
     "serializer_version": "1.5",        # SpiffWorkflow's serializer the task tree follows
     "workflow": {...},                  # the task tree, without the process spec
     "definitions": {...}}               # the BPMN+DMN sources of spec_version

SpiffWorkflow's default serializer writes the whole process spec into every state and rebuilds
it on every restore. Here the workflow is serialized *without* its spec and restored onto the
cached, already-parsed spec of the state's ``spec_version``; the task tree is written by a
leaner converter (each id converted once, tasks as a JSON list so stores that reorder object
keys, like PostgreSQL ``jsonb``, do no harm). JSON is done with orjson.

Format versions. ``STATE_FORMAT_VERSION`` is what this release writes; every older version it
can read has an entry in ``MIGRATIONS`` that brings a restored workflow up one version. A
state in a newer or unknown format, or whose task tree follows another SpiffWorkflow serializer
version, is refused with :class:`UnsupportedStateFormat` and never guessed at. History:

* 1 -- decisions kept only as ``approved``/``comment`` in the task data.
* 2 -- each user task also keeps its step record (assignees, and every decision with its
  action, actor and comment) in its internal data under ``finoa_step``; migrating a version 1
  state records each decided step's decision with an unknown actor.

Changing what is written means: a new version here, a migration from the previous one, and a
fixture of states saved by the previous release in the tests. SpiffWorkflow is pinned exactly
because the task tree follows its serializer; upgrading it is such a format change too.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any, Final
from uuid import UUID

import orjson
from SpiffWorkflow.bpmn import BpmnWorkflow
from SpiffWorkflow.bpmn.serializer import BpmnWorkflowSerializer
from SpiffWorkflow.bpmn.serializer.default.workflow import BpmnWorkflowConverter
from SpiffWorkflow.bpmn.serializer.workflow import VERSION as SPIFF_SERIALIZER_VERSION
from SpiffWorkflow.bpmn.specs.mixins.events.event_types import CatchingEvent
from SpiffWorkflow.camunda.serializer.config import CAMUNDA_CONFIG
from SpiffWorkflow.task import Task
from SpiffWorkflow.util.deep_merge import DeepMerge
from SpiffWorkflow.util.task import TaskState

from finoa.workflow.decisions import Action, Decision, StepRecord
from finoa.workflow.expressions import SCRIPT_ENGINE
from finoa.workflow.instance import ClaimWorkflow
from finoa.workflow.specs import LoadedSpec, spec_for_state

__all__ = [
    "MIGRATIONS",
    "READABLE_FORMAT_VERSIONS",
    "SPIFF_SERIALIZER_VERSION",
    "STATE_FORMAT",
    "STATE_FORMAT_NAME",
    "STATE_FORMAT_VERSION",
    "UnsupportedStateFormat",
    "dump_state",
    "format_version",
    "load_state",
    "step_record",
    "store_step_record",
]

STATE_FORMAT_NAME: Final = "finoa.workflow"
STATE_FORMAT_VERSION: Final = 2
"""Format version this release writes (stored with every state and in its database row)."""
STATE_FORMAT: Final = f"{STATE_FORMAT_NAME}/{STATE_FORMAT_VERSION}"

_FORMAT_PATTERN: Final = re.compile(rf"{re.escape(STATE_FORMAT_NAME)}/([1-9][0-9]{{0,8}})")
_STEP_KEY: Final = "finoa_step"
WORKFLOW_TYPENAME: Final = "_ClaimWorkflow"
"""Typename of the workflow in the stored task tree (as written since format 1)."""


class UnsupportedStateFormat(ValueError):
    """The state was written in a format this release cannot read (e.g. by a newer one)."""


def step_record(task: Task) -> StepRecord:
    """The assignees and decisions kept with a user task."""
    return StepRecord.from_dict(task.internal_data.get(_STEP_KEY))


def store_step_record(task: Task, record: StepRecord) -> None:
    """Keep ``record`` with its user task (serialized with the state)."""
    task.internal_data[_STEP_KEY] = record.to_dict()


def _map_internal(internal: dict[str, Any], convert: Callable[[Any], Any]) -> dict[str, Any]:
    """Convert (or restore) a task's internal data with SpiffWorkflow's registry, except the
    step record: that is plain JSON already and goes through as it is."""
    if not internal:
        return {}
    if _STEP_KEY not in internal:
        return convert(internal)  # type: ignore[no-any-return]
    rest = {k: v for k, v in internal.items() if k != _STEP_KEY}
    mapped: dict[str, Any] = convert(rest) if rest else {}
    mapped[_STEP_KEY] = internal[_STEP_KEY]
    return mapped


# --------------------------------------------------------------------------- migrations


def _record_decisions_of_format_1(workflow: ClaimWorkflow, loaded: LoadedSpec) -> None:
    """1 -> 2: give each decided step a record of its decision (actor unknown)."""
    for task in workflow.tasks.values():
        if task.task_spec.name not in loaded.steps or task.state != TaskState.COMPLETED:
            continue
        if _STEP_KEY in task.internal_data or not isinstance(task.data.get("approved"), bool):
            continue
        action = Action.APPROVE if task.data["approved"] else Action.REJECT
        comment = task.data.get("comment")
        decision = Decision(action, None, comment if isinstance(comment, str) else None)
        store_step_record(task, StepRecord((), (decision,)))


MIGRATIONS: Final[Mapping[int, Callable[[ClaimWorkflow, LoadedSpec], None]]] = {
    1: _record_decisions_of_format_1,
}
"""Format version -> migration of a workflow restored from it to the next version."""

READABLE_FORMAT_VERSIONS: Final = (*sorted(MIGRATIONS), STATE_FORMAT_VERSION)


# --------------------------------------------------------------------------- converter


class SpeclessWorkflowConverter(BpmnWorkflowConverter):  # type: ignore[misc]
    """Serializes a top-level workflow *without* its spec and restores it onto a given spec.

    Each task is written as in SpiffWorkflow (id, parent, children, state, spec name, data as
    a delta against the parent's), but as a JSON *list* in creation order, so the state
    survives stores that reorder object keys (e.g. PostgreSQL ``jsonb``), and each id is
    converted between ``UUID`` and ``str`` once instead of three times (the main cost of
    SpiffWorkflow's converter). Subprocesses (none in the default process) use
    SpiffWorkflow's own converters.

    The workflow is written under the typename ``WORKFLOW_TYPENAME`` whatever the class is
    called in the code, so that renaming the class does not orphan stored states.
    """

    def __init__(self, target_class: type, registry: Any, typename: str | None = None) -> None:
        super().__init__(target_class, registry, WORKFLOW_TYPENAME)

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
                "internal_data": _map_internal(task.internal_data, convert),
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
            task.internal_data = _map_internal(entry["internal_data"], restore)
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
_CONVERTERS[ClaimWorkflow] = SpeclessWorkflowConverter
_REGISTRY: Final = BpmnWorkflowSerializer.configure(_CONVERTERS)


def _orjson_default(obj: object) -> object:
    """Fallback for values orjson cannot encode natively (SpiffWorkflow-registered types)."""
    typename = _REGISTRY.typenames.get(type(obj))
    if typename is not None:
        return _REGISTRY.convert_to_dict[typename](obj)
    if isinstance(obj, set | frozenset):
        return list(obj)
    raise TypeError(f"cannot serialize {type(obj).__name__} in workflow state")


# --------------------------------------------------------------------------- envelope


def dump_state(workflow: ClaimWorkflow, loaded: LoadedSpec) -> str:
    """Serialize a workflow in the current format (one JSON string to persist)."""
    envelope = {
        "format": STATE_FORMAT,
        "spec_version": loaded.version,
        "serializer_version": SPIFF_SERIALIZER_VERSION,
        "workflow": _REGISTRY.convert(workflow),
        "definitions": loaded.definitions,
    }
    return orjson.dumps(
        envelope, default=_orjson_default, option=orjson.OPT_PASSTHROUGH_DATETIME
    ).decode("utf-8")


def format_version(envelope: Mapping[str, Any]) -> int:
    """The format version a parsed state declares; refuses what this release cannot read."""
    declared = envelope.get("format")
    match = _FORMAT_PATTERN.fullmatch(declared) if isinstance(declared, str) else None
    if match is None:
        raise ValueError(f"workflow state is not in format {STATE_FORMAT_NAME!r}: {declared!r}")
    version = int(match.group(1))
    if version > STATE_FORMAT_VERSION:
        raise UnsupportedStateFormat(
            f"workflow state is in format {declared!r}, newer than this release reads "
            f"(up to {STATE_FORMAT!r}); it was written by a later release"
        )
    if version not in READABLE_FORMAT_VERSIONS:
        raise UnsupportedStateFormat(
            f"workflow state format {declared!r} is not readable; "
            f"this release reads versions {list(READABLE_FORMAT_VERSIONS)}"
        )
    written_by = envelope.get("serializer_version")
    if written_by != SPIFF_SERIALIZER_VERSION:
        raise UnsupportedStateFormat(
            f"workflow state follows SpiffWorkflow serializer {written_by!r}; "
            f"this release reads {SPIFF_SERIALIZER_VERSION!r}"
        )
    return version


def load_state(state: str) -> tuple[ClaimWorkflow, LoadedSpec]:
    """Restore a stored state (any readable format) as a workflow of the current format."""
    try:
        envelope = orjson.loads(state)
    except orjson.JSONDecodeError as exc:
        raise ValueError("workflow state is not valid JSON") from exc
    if not isinstance(envelope, dict):
        raise ValueError("workflow state is not a JSON object")
    version = format_version(envelope)
    loaded = spec_for_state(envelope)
    try:
        workflow = _REGISTRY.restore(
            envelope["workflow"],
            spec=loaded.spec,
            subprocess_specs=loaded.subprocess_specs,
            script_engine=SCRIPT_ENGINE,
        )
    except (KeyError, TypeError, AttributeError, ValueError) as exc:
        raise ValueError(f"workflow state is corrupt: {exc!r}") from exc
    if not isinstance(workflow, ClaimWorkflow):
        raise ValueError("workflow state does not hold a claim workflow")
    for older in range(version, STATE_FORMAT_VERSION):
        MIGRATIONS[older](workflow, loaded)
    return workflow, loaded
