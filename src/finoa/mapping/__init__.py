"""The mapping engine (F3): vendor documents to canonical ones by declarative YAML mappings.

`spec` (the YAML form, checked at load), `transforms` (元⇄分, dates in company time,
full-width to half-width, currency, JSON inside strings, GBK/GB18030 bodies), `engine`
(applying a mapping; every field-level error with its path), `catalog` (shipped defaults and
the overrides of finoa.yaml, code tables) and `cli` (`finoa mapping preview`).
"""

from finoa.mapping.catalog import LoadedMapping, MappingCatalog, MappingConfigError, code_tables
from finoa.mapping.engine import FieldError, MappingResult, apply_mapping
from finoa.mapping.spec import MappingSpec
from finoa.mapping.transforms import TransformContext, decode_body

__all__ = [
    "FieldError",
    "LoadedMapping",
    "MappingCatalog",
    "MappingConfigError",
    "MappingResult",
    "MappingSpec",
    "TransformContext",
    "apply_mapping",
    "code_tables",
    "decode_body",
]
