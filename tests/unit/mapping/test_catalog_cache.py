"""The mapping catalog parses a mapping's text once per process, and an override file that
changed on disk is read afresh."""

from __future__ import annotations

from pathlib import Path

from finoa.mapping import catalog as catalog_module
from finoa.mapping.catalog import MappingCatalog, code_tables


def test_the_same_mapping_is_parsed_once_and_its_code_tables_are_copies() -> None:
    catalog = MappingCatalog()
    first = catalog.get("dingtalk", "expense_claim_create")
    before = catalog_module._parse.cache_info().hits
    again = catalog.get("dingtalk", "expense_claim_create")
    assert catalog_module._parse.cache_info().hits == before + 1
    assert again.spec is first.spec
    tables = code_tables(first, unchecked=True)
    assert tables, "the shipped mapping has code tables"
    name = next(iter(tables))
    tables[name]["X-changed"] = "by the caller"
    assert "X-changed" not in code_tables(again, unchecked=True)[name]


def test_an_override_file_edited_on_disk_is_read_again(tmp_path: Path) -> None:
    shipped = Path(catalog_module.__file__).parent / "defaults" / "dingtalk"
    text = (shipped / "expense_claim_create.yaml").read_text(encoding="utf-8")
    override = tmp_path / "create.yaml"
    override.write_text(text, encoding="utf-8")
    catalog = MappingCatalog({"dingtalk/expense_claim_create": {"file": str(override)}})
    assert catalog.get("dingtalk", "expense_claim_create").spec.description != "edited"
    shipped_line = "description: finoa claim to the DingTalk expense form"
    edited = text.replace(shipped_line, "description: edited")
    assert edited != text
    override.write_text(edited, encoding="utf-8")
    assert catalog.get("dingtalk", "expense_claim_create").spec.description == "edited"
