"""Applying a mapping to a vendor document: every field, every error with its path.

A mapping (`MappingSpec`, read from YAML) names, for each canonical field, a JMESPath
expression into the vendor's document, the transforms to run, a code table to translate
vendor codes, a default and whether it is required. Nested objects have `fields`; lists
have `each: true` and map every element with `fields` (sources relative to the element).
Nothing stops at the first problem: the result carries every field-level error, each with
the path of the canonical field (`lines[1].amount`) and the source expression it read.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import jmespath
from jmespath.exceptions import JMESPathError
from pydantic import BaseModel, ValidationError

from finoa.mapping.spec import FieldSpec, MappingSpec
from finoa.mapping.transforms import TRANSFORMS, TransformContext, TransformError

CodeTables = Mapping[str, Mapping[str, str]]


@dataclass(frozen=True)
class FieldError:
    """One field the mapping could not fill: where in the canonical result, from which
    source expression, and why."""

    path: str
    message: str
    source: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"path": self.path, "message": self.message, "source": self.source}

    def __str__(self) -> str:
        where = f" (from {self.source})" if self.source else ""
        return f"{self.path}: {self.message}{where}"


@dataclass
class MappingResult:
    """The canonical document built so far and every error met on the way."""

    mapping: str
    version: int
    value: dict[str, Any]
    errors: list[FieldError] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors


class _Missing:
    """No value at all (as opposed to an explicit null the source held)."""


MISSING = _Missing()


def apply_mapping(
    spec: MappingSpec,
    document: Any,
    *,
    code_tables: CodeTables | None = None,
    context: TransformContext | None = None,
    target: type[BaseModel] | None = None,
) -> MappingResult:
    """Map `document` with `spec`. With `target`, the result is also validated as that
    model, and its errors are added with their paths (a required field the mapping left
    out, a category the model does not know)."""
    run = _Run(spec, dict(code_tables or {}), context or TransformContext())
    value = run.object(spec.fields, document, "")
    result = MappingResult(spec.mapping, spec.version, value, run.errors)
    if target is not None and not any(not e.path for e in result.errors):
        failed = {e.path for e in result.errors}
        try:
            target.model_validate(value)
        except ValidationError as exc:
            for error in exc.errors():
                path = render_path(error["loc"])
                if path not in failed:
                    result.errors.append(FieldError(path, error["msg"]))
    return result


def render_path(loc: tuple[int | str, ...] | list[int | str]) -> str:
    """`("lines", 0, "amount")` -> `lines[0].amount`."""
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


class _Run:
    def __init__(
        self, spec: MappingSpec, tables: dict[str, Mapping[str, str]], ctx: TransformContext
    ):
        self.spec = spec
        self.tables = tables
        self.ctx = ctx
        self.errors: list[FieldError] = []

    def error(self, path: str, message: str, source: str | None) -> None:
        self.errors.append(FieldError(path, message, source))

    def object(self, fields: Mapping[str, FieldSpec], node: Any, prefix: str) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, spec in fields.items():
            path = f"{prefix}.{name}" if prefix else name
            value = self.field(spec, node, path)
            if value is not MISSING:
                out[name] = value
        return out

    def field(self, spec: FieldSpec, node: Any, path: str) -> Any:
        value: Any = MISSING
        if spec.source is not None:
            try:
                value = jmespath.search(spec.source, node)
            except JMESPathError as exc:  # checked at load time; a runtime type error here
                self.error(path, f"the source expression failed: {exc}", spec.source)
                return MISSING
        elif spec.value is not None:
            value = spec.value
        elif spec.fields is not None and not spec.each:
            value = node
        if value is None or value == "" or value is MISSING:
            if spec.default is not None:
                return spec.default
            if spec.required:
                self.error(path, "is required but the document has no value for it", spec.source)
            return MISSING
        for name in spec.transforms:
            try:
                value = TRANSFORMS[name](value, self.ctx)
            except TransformError as exc:
                self.error(path, f"{name}: {exc}", spec.source)
                return MISSING
        if spec.code_table is not None:
            value = self.translate(spec, value, path)
            if value is MISSING:
                return MISSING
        if spec.each:
            if not isinstance(value, list):
                self.error(path, f"expected a list, got {type(value).__name__}", spec.source)
                return MISSING
            if spec.min_items is not None and len(value) < spec.min_items:
                self.error(
                    path, f"needs at least {spec.min_items} item(s), has {len(value)}", spec.source
                )
            assert spec.fields is not None
            return [self.object(spec.fields, item, f"{path}[{i}]") for i, item in enumerate(value)]
        if spec.fields is not None:
            return self.object(spec.fields, value, path)
        return value

    def translate(self, spec: FieldSpec, value: Any, path: str) -> Any:
        assert spec.code_table is not None
        table = self.tables.get(spec.code_table)
        if table is None:
            self.error(path, f"code table {spec.code_table!r} is not loaded", spec.source)
            return MISSING
        key = value if isinstance(value, str) else str(value)
        found = table.get(key)
        if found is None:
            self.error(path, f"{key!r} is not in the code table {spec.code_table}", spec.source)
            return MISSING
        return found
