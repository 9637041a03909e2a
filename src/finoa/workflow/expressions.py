"""The script engine every claim workflow runs its expressions with, and its caches.

DMN entries and gateway conditions are evaluated as Python over the task data, with
FEEL-style ``true``/``false`` and a few harmless builtins only, so the DMN table stays standard
for bpmn.io / Camunda Modeler. SpiffWorkflow compiles and syntax-checks an expression each
time it meets it; here both are done once per distinct expression and cached, which matters
because the DMN engine checks every rule cell on every evaluation.
"""

from __future__ import annotations

import ast
import builtins
from functools import lru_cache
from types import CodeType
from typing import Any, Final

from SpiffWorkflow.bpmn.script_engine import PythonScriptEngine, TaskDataEnvironment

__all__ = ["SCRIPT_ENGINE"]

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


SCRIPT_ENGINE: Final = _CachedScriptEngine()
"""Shared by all workflows: stateless apart from its caches, so safe across threads."""
