"""The YAML form of a mapping, checked when it is loaded.

```yaml
format: 1                     # the mapping language version
mapping: dingtalk/expense_claim
version: 3                    # this mapping's own version, kept with what it produced
target: claim                 # validate the result as a claim submission
code_tables:
  departments: {file: departments.csv}            # two columns: vendor code, finoa id
  employees: {masterdata: employees, values: {manager75: E0002}}
  categories: {values: {差旅费: travel}}
fields:
  title: {source: "formComponentValues[?name=='报销事由'].value | [0]",
          transforms: [halfwidth, strip], required: true}
  lines:
    source: "formComponentValues[?name=='费用明细'].value | [0]"
    transforms: [json]
    each: true
    fields:
      amount: {source: "rowValue[?label=='金额（元）'].value | [0]", transforms: [yuan]}
```
"""

from __future__ import annotations

from typing import Any, Literal

import jmespath
from jmespath.exceptions import JMESPathError
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from finoa.mapping.transforms import TRANSFORMS

FORMAT: Literal[1] = 1


class FieldSpec(BaseModel):
    """How one canonical field is filled."""

    model_config = ConfigDict(extra="forbid")

    source: str | None = Field(default=None, description="JMESPath into the vendor document")
    value: Any = Field(default=None, description="A constant instead of a source")
    transforms: list[str] = Field(default_factory=list)
    code_table: str | None = None
    default: Any = None
    required: bool = False
    each: bool = Field(default=False, description="The source is a list; map each element")
    min_items: int | None = Field(default=None, ge=0)
    fields: dict[str, FieldSpec] | None = None

    @field_validator("source")
    @classmethod
    def _compiles(cls, source: str | None) -> str | None:
        if source is not None:
            try:
                jmespath.compile(source)
            except JMESPathError as exc:
                raise ValueError(f"not a JMESPath expression: {exc}") from None
        return source

    @field_validator("transforms")
    @classmethod
    def _known(cls, names: list[str]) -> list[str]:
        for name in names:
            if name not in TRANSFORMS:
                raise ValueError(f"unknown transform {name!r}; known: {', '.join(TRANSFORMS)}")
        return names

    @model_validator(mode="after")
    def _shape(self) -> FieldSpec:
        if self.each and self.fields is None:
            raise ValueError("each: true needs fields for the elements")
        if self.source is not None and self.value is not None:
            raise ValueError("give source or value, not both")
        return self


class CodeTableSpec(BaseModel):
    """Where a code table's entries come from: a file (YAML mapping or two-column CSV),
    finoa's master data (its ids map to themselves), inline values; later ones win."""

    model_config = ConfigDict(extra="forbid")

    file: str | None = None
    masterdata: Literal["employees", "departments", "cost_centers", "projects"] | None = None
    values: dict[str, str] = Field(default_factory=dict)
    invert: bool = Field(default=False, description="Map finoa ids back to vendor codes")

    @field_validator("values", mode="before")
    @classmethod
    def _texts(cls, values: Any) -> Any:
        if isinstance(values, dict):
            return {str(k): str(v) for k, v in values.items()}
        return values


class MappingSpec(BaseModel):
    """One mapping: a connector's document type to its canonical form."""

    model_config = ConfigDict(extra="forbid")

    format: Literal[1] = FORMAT
    mapping: str = Field(min_length=3, pattern=r"^[a-z0-9_-]+/[a-z0-9_.-]+$")
    version: int = Field(ge=1)
    description: str = ""
    target: Literal["claim", "voucher"] | None = None
    code_tables: dict[str, CodeTableSpec] = Field(default_factory=dict)
    fields: dict[str, FieldSpec]

    @model_validator(mode="after")
    def _tables_declared(self) -> MappingSpec:
        def walk(fields: dict[str, FieldSpec], prefix: str) -> None:
            for name, spec in fields.items():
                path = f"{prefix}{name}"
                if spec.code_table is not None and spec.code_table not in self.code_tables:
                    raise ValueError(
                        f"fields.{path}.code_table: {spec.code_table!r} is not declared under "
                        "code_tables"
                    )
                if spec.fields:
                    walk(spec.fields, f"{path}.fields.")

        walk(self.fields, "")
        return self
