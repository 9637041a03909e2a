"""The package's metadata XML (DA/T 94-style elements: 文件实体, 机构人员, 业务) and reading it.

Element names follow DA/T 94 附录A: 档号, 全宗号, 会计年度, 保管期限, 凭证号, 金额合计, 责任者,
and per computer file 计算机文件名, 计算机文件大小, 计算机文件格式, 哈希值 (SHA-256 and SM3).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from lxml import etree

from finoa.archive.model import PackageFile, PackageRecord
from finoa.domain.money import format_fen
from finoa.soap.envelope import parse_xml

NS = "https://finoa.dev/archive/metadata/v1"
MANDATORY = (
    "档号",
    "全宗号",
    "会计年度",
    "保管期限",
    "会计资料形式",
    "凭证号",
    "题名",
    "日期",
    "金额合计",
    "币种",
    "责任者",
    "文件数",
    "总字节数",
)


def _q(name: str) -> str:
    return f"{{{NS}}}{name}"


def metadata_xml(
    record: PackageRecord,
    *,
    title: str,
    voucher_date: str,
    people: list[dict[str, str]],
    archived_at: str,
    location: str,
) -> bytes:
    """The metadata of `record`, whose `files` are every file but this one."""
    root = etree.Element(_q("电子会计档案"), nsmap={None: NS})
    entity = etree.SubElement(root, _q("文件实体"))
    values = {
        "聚合层次": "件",
        "档号": record.archive_no,
        "全宗号": record.fonds,
        "类别号": "KJ",
        "会计年度": str(record.fiscal_year),
        "会计期间": record.period,
        "保管期限": record.retention,
        "保管期限至": record.retain_until.isoformat() if record.retain_until else "永久",
        "会计资料形式": "凭证",
        "凭证号": record.voucher_no,
        "题名": title,
        "日期": voucher_date,
        "金额合计": format_fen(record.total_fen).replace(",", ""),
        "币种": record.currency,
        "责任者": record.applicant_name,
        "报销单号": record.claim_id,
        "发票号码": " ".join(record.invoice_numbers),
        "文件数": str(len(record.files)),
        "总字节数": str(sum(f.size for f in record.files)),
        "存储位置": location,
        "归档时间": archived_at,
    }
    for name, value in values.items():
        etree.SubElement(entity, _q(name)).text = value
    files = etree.SubElement(entity, _q("计算机文件"))
    for f in record.files:
        item = etree.SubElement(files, _q("文件"), 角色=f.role.value)
        etree.SubElement(item, _q("计算机文件名")).text = f.name
        etree.SubElement(item, _q("计算机文件大小")).text = str(f.size)
        etree.SubElement(item, _q("计算机文件格式")).text = f.media_type
        etree.SubElement(item, _q("哈希值"), 算法="SHA-256").text = f.sha256
        etree.SubElement(item, _q("哈希值"), 算法="SM3").text = f.sm3
    persons = etree.SubElement(root, _q("机构人员实体"))
    for person in people:
        item = etree.SubElement(persons, _q("机构人员"))
        etree.SubElement(item, _q("机构人员类型")).text = person["type"]
        etree.SubElement(item, _q("机构人员名称")).text = person["name"]
        etree.SubElement(item, _q("机构人员代码")).text = person["code"]
    business = etree.SubElement(root, _q("业务实体"))
    etree.SubElement(business, _q("业务行为")).text = "归档"
    etree.SubElement(business, _q("行为时间")).text = archived_at
    return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True))


@dataclass(frozen=True)
class ReadMetadata:
    values: dict[str, str]
    files: tuple[PackageFile, ...]


class MetadataUnreadable(Exception):
    pass


def read_metadata(data: bytes) -> ReadMetadata:
    try:
        root = parse_xml(data)
    except Exception as exc:  # any parse failure: the metadata is unreadable
        raise MetadataUnreadable(f"metadata.xml does not parse: {exc}") from None
    entity = root.find(_q("文件实体"))
    if entity is None:
        raise MetadataUnreadable("metadata.xml: no 文件实体")
    values: dict[str, str] = {}
    for child in entity:
        if not isinstance(child.tag, str) or child.tag == _q("计算机文件"):
            continue
        values[etree.QName(child).localname] = (child.text or "").strip()
    files: list[PackageFile] = []
    for item in entity.iterfind(f"{_q('计算机文件')}/{_q('文件')}"):
        try:
            digests = {h.get("算法"): (h.text or "") for h in item.iterfind(_q("哈希值"))}
            files.append(
                PackageFile.from_dict(
                    {
                        "name": _text(item, "计算机文件名"),
                        "role": item.get("角色", ""),
                        "media_type": _text(item, "计算机文件格式"),
                        "size": int(_text(item, "计算机文件大小")),
                        "sha256": digests.get("SHA-256", ""),
                        "sm3": digests.get("SM3", ""),
                    }
                )
            )
        except (ValueError, KeyError) as exc:
            raise MetadataUnreadable(f"metadata.xml: a 文件 entry is malformed: {exc}") from None
    return ReadMetadata(values, tuple(files))


def _text(item: Any, name: str) -> str:
    found = item.find(_q(name))
    return "" if found is None else (found.text or "").strip()
