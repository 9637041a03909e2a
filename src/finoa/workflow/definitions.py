"""Checking a BPMN 2.0 + DMN definition before it is deployed (流程定义校验).

Every problem names the element (its id, or its tag when it has none) and the line it starts
on in its file, so that whoever edits the diagram finds it:

* the XML does not parse (the parser's line);
* the BPMN has no executable process, or more than one;
* an element the engine cannot run (a service or script task, a timer, a message event …);
* a business rule task naming a decision that is not among the deployed DMN decisions;
* a user task (or its lane) naming a role the org model does not know, or a ``users`` step
  without any user.

The checks are pure: they read bytes and return problems; nothing is stored.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Final

from lxml import etree

__all__ = [
    "CAMUNDA_NS",
    "BPMN_NS",
    "DMN_NS",
    "RUNNABLE_ELEMENTS",
    "DefinitionProblem",
    "DefinitionRefused",
    "check_bpmn",
    "dmn_decisions",
    "executable_process_id",
]

BPMN_NS: Final = "http://www.omg.org/spec/BPMN/20100524/MODEL"
DMN_NS: Final = (
    "https://www.omg.org/spec/DMN/20191111/MODEL/",
    "http://www.omg.org/spec/DMN/20180521/MODEL/",
    "https://www.omg.org/spec/DMN/20230324/MODEL/",
)
CAMUNDA_NS: Final = "http://camunda.org/schema/1.0/bpmn"

RUNNABLE_ELEMENTS: Final = frozenset(
    {
        "definitions",
        "process",
        "collaboration",
        "participant",
        "laneSet",
        "lane",
        "flowNodeRef",
        "startEvent",
        "endEvent",
        "userTask",
        "businessRuleTask",
        "exclusiveGateway",
        "parallelGateway",
        "sequenceFlow",
        "conditionExpression",
        "incoming",
        "outgoing",
        "extensionElements",
        "documentation",
        "textAnnotation",
        "text",
        "association",
    }
)
"""BPMN model elements the approval engine runs; any other is refused at deploy."""


@dataclass(frozen=True)
class DefinitionProblem:
    """One thing wrong with a definition, where it is."""

    file: str
    element: str  # the element's id, or its tag when it has none
    line: int | None
    message: str

    def __str__(self) -> str:
        where = f"{self.file}, line {self.line}" if self.line else self.file
        return f"{where}: {self.element}: {self.message}"


class DefinitionRefused(ValueError):
    """A definition with problems; nothing of it was stored."""

    def __init__(self, problems: Iterable[DefinitionProblem]) -> None:
        self.problems = tuple(problems)
        super().__init__("; ".join(str(p) for p in self.problems))


def parse_xml(data: bytes, file: str) -> Any:
    """The root element; a refusal naming the parser's line for malformed XML."""
    parser = etree.XMLParser(resolve_entities=False, no_network=True, remove_comments=True)
    try:
        return etree.fromstring(data, parser=parser)
    except etree.XMLSyntaxError as exc:
        line = exc.lineno if exc.lineno else None
        raise DefinitionRefused([DefinitionProblem(file, "xml", line, exc.msg)]) from None


def _name(element: Any) -> str:
    return element.get("id") or etree.QName(element).localname


def dmn_decisions(root: Any) -> dict[str, int | None]:
    """Decision ids of a DMN document, with their lines."""
    found: dict[str, int | None] = {}
    for ns in DMN_NS:
        for decision in root.iter(f"{{{ns}}}decision"):
            if decision.get("id"):
                found[decision.get("id")] = decision.sourceline
    return found


def executable_process_id(root: Any, file: str) -> str:
    """The id of the one executable process of a BPMN document."""
    processes = list(root.iter(f"{{{BPMN_NS}}}process"))
    runnable = [p for p in processes if p.get("isExecutable", "false") == "true"]
    if len(runnable) != 1:
        element = runnable[1] if len(runnable) > 1 else root
        raise DefinitionRefused(
            [
                DefinitionProblem(
                    file,
                    _name(element),
                    element.sourceline,
                    f'needs exactly one process with isExecutable="true", found {len(runnable)}',
                )
            ]
        )
    process_id = runnable[0].get("id")
    if not process_id:
        raise DefinitionRefused(
            [DefinitionProblem(file, "process", runnable[0].sourceline, "the process has no id")]
        )
    return str(process_id)


def _properties(task: Any) -> dict[str, str]:
    return {
        prop.get("name"): prop.get("value", "")
        for prop in task.iter(f"{{{CAMUNDA_NS}}}property")
        if prop.get("name")
    }


def check_bpmn(
    root: Any, file: str, decisions: Iterable[str], roles: Iterable[str]
) -> list[DefinitionProblem]:
    """Everything wrong with a parsed BPMN document that the engine would trip over later."""
    known_decisions, known_roles = set(decisions), set(roles)
    problems: list[DefinitionProblem] = []
    lanes: dict[str, str] = {}
    for lane in root.iter(f"{{{BPMN_NS}}}lane"):
        for ref in lane.iter(f"{{{BPMN_NS}}}flowNodeRef"):
            if ref.text:
                lanes[ref.text.strip()] = lane.get("name") or ""
    for element in root.iter(f"{{{BPMN_NS}}}*"):
        tag = etree.QName(element).localname
        if tag not in RUNNABLE_ELEMENTS:
            problems.append(
                DefinitionProblem(
                    file, _name(element), element.sourceline, f"unsupported element <{tag}>"
                )
            )
        elif tag == "businessRuleTask":
            ref = element.get(f"{{{CAMUNDA_NS}}}decisionRef")
            if not ref:
                problems.append(
                    DefinitionProblem(
                        file, _name(element), element.sourceline, "names no camunda:decisionRef"
                    )
                )
            elif ref not in known_decisions:
                problems.append(
                    DefinitionProblem(
                        file,
                        _name(element),
                        element.sourceline,
                        f"decision {ref!r} is not deployed (deployed: {sorted(known_decisions)})",
                    )
                )
        elif tag == "userTask":
            props = _properties(element)
            role = props.get("role") or lanes.get(element.get("id", ""))
            if role not in known_roles:
                problems.append(
                    DefinitionProblem(
                        file,
                        _name(element),
                        element.sourceline,
                        f"unknown role {role!r}; the org model knows {sorted(known_roles)}",
                    )
                )
            elif role == "users" and not [u for u in props.get("users", "").split(",") if u]:
                problems.append(
                    DefinitionProblem(
                        file,
                        _name(element),
                        element.sourceline,
                        'a users step needs a camunda:property users="E0001,E0002"',
                    )
                )
    return problems
