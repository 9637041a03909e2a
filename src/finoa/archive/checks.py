"""四性检测 (DA/T 70 style): authenticity, integrity, usability and security of packages.

Every item is reported pass, fail or skipped with its reason; a failure names the file or
field it is about. `check_package` looks at one package, `check_set` at what only a set can
show (档号 unique, voucher numbers without gaps within a period).
"""

from __future__ import annotations

import io
import shutil
import subprocess
import zipfile
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence

import orjson

from finoa.archive.metadata import MANDATORY, MetadataUnreadable, ReadMetadata, read_metadata
from finoa.archive.model import (
    REQUIRED_ROLES,
    ArchiveNoScheme,
    CheckItem,
    CheckReport,
    FileRole,
    Outcome,
    PackageFile,
    PackageRecord,
)
from finoa.archive.storage import ArchiveStore, sha256_hex, sm3_hex
from finoa.domain.money import format_fen
from finoa.domain.voucher import format_voucher_no
from finoa.soap.envelope import parse_xml

# Archival formats (DA/T 94 §6.4: OFD, else PDF; XML descriptions; images as JPEG/PNG) and
# JSON (RFC 8259, an open text format) for the claim and its trail.
ALLOWED_FORMATS = {
    "application/xml": "XML",
    "application/ofd": "OFD",
    "application/pdf": "PDF",
    "image/jpeg": "JPEG",
    "image/png": "PNG",
    "application/json": "JSON",
}
ZIP_PUBLIC_METHODS = {zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED}
SCANNERS = ("clamdscan", "clamscan")


def _pass(item: str, detail: str = "") -> CheckItem:
    return CheckItem(item, Outcome.PASS, detail)


def _fail(item: str, problems: Sequence[str]) -> CheckItem:
    return CheckItem(item, Outcome.FAIL, "; ".join(problems))


def _result(item: str, problems: Sequence[str], ok: str) -> CheckItem:
    return _fail(item, problems) if problems else _pass(item, ok)


def check_package(
    record: PackageRecord, store: ArchiveStore, scheme: ArchiveNoScheme, *, scan: bool = True
) -> CheckReport:
    present: dict[str, bytes] = {}
    missing: list[str] = []
    unreadable: list[str] = []
    for f in record.files:
        try:
            present[f.name] = store.read(f.sha256)
        except FileNotFoundError:
            missing.append(f.name)
        except OSError as exc:
            unreadable.append(f"{f.name}: {exc.strerror or exc}")
    metadata: ReadMetadata | None = None
    metadata_problem = ""
    meta_file = record.file(FileRole.METADATA)
    if meta_file is None:
        metadata_problem = "the package has no metadata.xml"
    elif meta_file.name in present:
        try:
            metadata = read_metadata(present[meta_file.name])
        except MetadataUnreadable as exc:
            metadata_problem = str(exc)
    else:
        metadata_problem = "metadata.xml is missing"
    items = [
        _fixity(record, present),
        _metadata_agrees(record, present, metadata, metadata_problem),
        _archive_no_format(record, scheme),
        CheckItem(
            "authenticity.archive_no_unique",
            Outcome.SKIPPED,
            "checked over a set (period or handover)",
        ),
        _counts(record, present, metadata, metadata_problem),
        _mandatory(metadata, metadata_problem),
        CheckItem("integrity.numbering", Outcome.SKIPPED, "checked over a period's packages"),
        _content(record, missing),
        _formats(record),
        *_opens(record, present),
        _fonts_embedded(record, present),
        _virus_scan(present)
        if scan
        else CheckItem("security.virus_scan", Outcome.SKIPPED, "not asked for"),
        _result(
            "security.storage_readable",
            unreadable,
            f"{len(present)} file(s) read from the store",
        ),
    ]
    return CheckReport(record.archive_no, tuple(items))


def _fixity(record: PackageRecord, present: dict[str, bytes]) -> CheckItem:
    problems = []
    for f in record.files:
        data = present.get(f.name)
        if data is None:
            continue  # integrity.content names it
        if sha256_hex(data) != f.sha256:
            problems.append(f"{f.name}: SHA-256 differs from the recorded {f.sha256[:16]}…")
        if sm3_hex(data) != f.sm3:
            problems.append(f"{f.name}: SM3 differs from the recorded {f.sm3[:16]}…")
    return _result(
        "authenticity.fixity", problems, f"SHA-256 and SM3 of {len(present)} file(s) match"
    )


def _metadata_agrees(
    record: PackageRecord, present: dict[str, bytes], metadata: ReadMetadata | None, problem: str
) -> CheckItem:
    item = "authenticity.metadata"
    if metadata is None:
        return _fail(item, [problem])
    expected = {
        "档号": record.archive_no,
        "全宗号": record.fonds,
        "会计年度": str(record.fiscal_year),
        "保管期限": record.retention,
        "凭证号": record.voucher_no,
        "金额合计": format_fen(record.total_fen).replace(",", ""),
        "币种": record.currency,
        "责任者": record.applicant_name,
    }
    problems = [
        f"{name}: metadata says {metadata.values.get(name, '')!r}, the catalog {value!r}"
        for name, value in expected.items()
        if metadata.values.get(name, "") != value
    ]
    described = {f.name: f for f in metadata.files}
    for f in record.files:
        if f.role is FileRole.METADATA:
            continue
        entry = described.pop(f.name, None)
        if entry is None:
            problems.append(f"{f.name}: not described in metadata.xml")
            continue
        if entry != f:
            problems.append(f"{f.name}: metadata.xml describes it differently from the catalog")
        data = present.get(f.name)
        if data is not None and len(data) != entry.size:
            problems.append(f"{f.name}: {len(data)} bytes, metadata.xml says {entry.size}")
    problems += [f"{name}: described in metadata.xml but not in the package" for name in described]
    return _result(item, problems, "metadata matches the catalog and every file's properties")


def _archive_no_format(record: PackageRecord, scheme: ArchiveNoScheme) -> CheckItem:
    if scheme.matches(record.archive_no):
        return _pass("authenticity.archive_no", f"{record.archive_no} follows {scheme.template}")
    return _fail(
        "authenticity.archive_no", [f"档号 {record.archive_no!r} does not follow {scheme.template}"]
    )


def _counts(
    record: PackageRecord, present: dict[str, bytes], metadata: ReadMetadata | None, problem: str
) -> CheckItem:
    item = "integrity.counts"
    if metadata is None:
        return _fail(item, [problem])
    content = [f for f in record.files if f.role is not FileRole.METADATA]
    problems = []
    if metadata.values.get("文件数") != str(len(content)):
        problems.append(
            f"文件数: metadata says {metadata.values.get('文件数')}, the package has {len(content)}"
        )
    actual = sum(len(present.get(f.name, b"")) for f in content)
    if metadata.values.get("总字节数") != str(actual):
        problems.append(
            f"总字节数: metadata says {metadata.values.get('总字节数')}, the files hold {actual}"
        )
    invoices = [f for f in content if f.role is FileRole.INVOICE]
    numbers = metadata.values.get("发票号码", "").split()
    if len(numbers) > len(invoices):
        problems.append(
            f"发票号码: {len(numbers)} invoice(s) named, {len(invoices)} file(s) present"
        )
    return _result(item, problems, f"{len(content)} file(s), {actual} bytes, as described")


def _mandatory(metadata: ReadMetadata | None, problem: str) -> CheckItem:
    if metadata is None:
        return _fail("integrity.mandatory_metadata", [problem])
    empty = [name for name in MANDATORY if not metadata.values.get(name)]
    return _result(
        "integrity.mandatory_metadata",
        [f"{name}: missing or empty" for name in empty],
        f"all {len(MANDATORY)} mandatory elements filled",
    )


def _content(record: PackageRecord, missing: list[str]) -> CheckItem:
    problems = [f"{name}: missing" for name in missing]
    roles = {f.role for f in record.files}
    problems += [
        f"no {role.value} file in the package" for role in REQUIRED_ROLES if role not in roles
    ]
    return _result("integrity.content", problems, "every item has its content")


def _formats(record: PackageRecord) -> CheckItem:
    problems = [
        f"{f.name}: {f.media_type} is not an archival format"
        for f in record.files
        if f.media_type not in ALLOWED_FORMATS
    ]
    kinds = sorted({ALLOWED_FORMATS.get(f.media_type, "?") for f in record.files})
    return _result("usability.format", problems, "formats: " + ", ".join(kinds))


def _opens(record: PackageRecord, present: dict[str, bytes]) -> list[CheckItem]:
    broken: list[str] = []
    locked: list[str] = []
    for f in record.files:
        data = present.get(f.name)
        if data is None:
            continue
        try:
            locked += _open(f, data)
        except Exception as exc:  # whatever a parser raises: the file does not open
            kind = ALLOWED_FORMATS.get(f.media_type, f.media_type)
            reason = f"{type(exc).__name__}: {str(exc)[:80]}"
            broken.append(f"{f.name}: does not open as {kind} ({reason})")
    return [
        _result("usability.opens", broken, f"{len(present)} file(s) open and parse"),
        _result("usability.no_encryption", locked, "no encryption, no non-public compression"),
    ]


def _open(f: PackageFile, data: bytes) -> list[str]:
    """Open `data` as its format; what blocks its use (encryption, private compression)."""
    if f.media_type == "application/xml":
        parse_xml(data, max_bytes=64 << 20)
    elif f.media_type == "application/json":
        orjson.loads(data)
    elif f.media_type == "application/pdf":
        from pypdf import PdfReader

        if not data.startswith(b"%PDF-"):
            raise ValueError("no %PDF- header")
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted:
            return [f"{f.name}: the PDF is encrypted"]
        if len(reader.pages) < 1:
            raise ValueError("no pages")
    elif f.media_type == "application/ofd":
        with zipfile.ZipFile(io.BytesIO(data)) as container:
            infos = container.infolist()
            if "OFD.xml" not in container.namelist():
                raise ValueError("no OFD.xml in the container")
            if any(i.flag_bits & 0x1 for i in infos):
                return [f"{f.name}: the OFD container is encrypted"]
            private = sorted({i.compress_type for i in infos} - ZIP_PUBLIC_METHODS)
            if private:
                return [f"{f.name}: compression method(s) {private} are not public"]
            parse_xml(container.read("OFD.xml"))
    elif f.media_type == "image/jpeg":
        complete = data.startswith(b"\xff\xd8\xff") and data.rstrip(b"\x00").endswith(b"\xff\xd9")
        if not complete:
            raise ValueError("not a complete JPEG")
    elif f.media_type == "image/png":
        complete = data.startswith(b"\x89PNG\r\n\x1a\n") and b"IEND" in data[-16:]
        if not complete:
            raise ValueError("not a complete PNG")
    return []


def _fonts_embedded(record: PackageRecord, present: dict[str, bytes]) -> CheckItem:
    """Every font a PDF of the package uses is embedded in it (a font program in its
    descriptor), as PDF/A asks of a long-term fixed-layout format: a font that is only
    named renders with whatever the reader has installed, or not at all. Each one that is
    not is named with its file."""
    missing: list[str] = []
    pdfs = 0
    for f in record.files:
        data = present.get(f.name)
        if f.media_type != "application/pdf" or data is None:
            continue
        pdfs += 1
        try:
            missing += [f"{f.name}: font {font} is not embedded" for font in _unembedded(data)]
        except Exception:  # noqa: S112 - a PDF that does not open fails usability.opens
            continue
    if not pdfs:
        return CheckItem("usability.fonts_embedded", Outcome.SKIPPED, "no PDF in the package")
    return _result("usability.fonts_embedded", missing, f"every font of {pdfs} PDF(s) embedded")


FONT_PROGRAMS = ("/FontFile", "/FontFile2", "/FontFile3")


def _unembedded(data: bytes) -> list[str]:
    """The base names of the fonts a PDF uses without embedding them (Type 3 fonts are
    drawn by the PDF itself)."""
    from pypdf import PdfReader

    found: dict[str, None] = {}
    for page in PdfReader(io.BytesIO(data)).pages:
        resources = page.get("/Resources")
        fonts = resources.get_object().get("/Font") if resources is not None else None
        if fonts is None:
            continue
        for ref in fonts.get_object().values():
            font = ref.get_object()
            if font.get("/Subtype") == "/Type3":
                continue
            parts = [d.get_object() for d in font.get("/DescendantFonts") or []] or [font]
            for part in parts:
                descriptor = part.get("/FontDescriptor")
                descriptor = descriptor.get_object() if descriptor is not None else {}
                if not any(key in descriptor for key in FONT_PROGRAMS):
                    found[str(font.get("/BaseFont", "?")).lstrip("/")] = None
    return list(found)


def scanner() -> str | None:
    return next((path for name in SCANNERS if (path := shutil.which(name))), None)


def _virus_scan(present: dict[str, bytes]) -> CheckItem:
    found = scanner()
    if found is None:
        return CheckItem(
            "security.virus_scan", Outcome.SKIPPED, "no ClamAV (clamdscan or clamscan) installed"
        )
    infected = []
    for name, data in present.items():
        done = subprocess.run(  # noqa: S603 - a fixed scanner on the files' bytes
            [found, "--no-summary", "-"], input=data, capture_output=True, timeout=300, check=False
        )
        if done.returncode == 1:
            infected.append(f"{name}: {done.stdout.decode(errors='replace').strip()}")
        elif done.returncode != 0:
            return CheckItem(
                "security.virus_scan",
                Outcome.SKIPPED,
                f"{found} could not scan: {done.stderr.decode(errors='replace').strip()[:120]}",
            )
    return _result("security.virus_scan", infected, f"{len(present)} file(s) clean ({found})")


def check_set(records: Iterable[PackageRecord]) -> list[CheckItem]:
    """What only a set of packages shows: 档号 unique, numbering without gaps per period."""
    listed = list(records)
    counts = Counter(r.archive_no for r in listed)
    duplicates = [f"档号 {no} appears {n} times" for no, n in sorted(counts.items()) if n > 1]
    by_sequence: dict[tuple[str, str], set[int]] = defaultdict(set)
    for r in listed:
        by_sequence[(r.period, r.word)].add(r.voucher_number)
    gaps = []
    for (period, word), numbers in sorted(by_sequence.items()):
        absent = sorted(set(range(1, max(numbers) + 1)) - numbers)
        if absent:
            shown = ", ".join(format_voucher_no(word, n) for n in absent[:10])
            more = f" and {len(absent) - 10} more" if len(absent) > 10 else ""
            gaps.append(f"{period}: {shown}{more} not archived")
    return [
        _result("authenticity.archive_no_unique", duplicates, f"{len(counts)} 档号, each once"),
        _result(
            "integrity.numbering",
            gaps,
            f"{len(by_sequence)} voucher sequence(s) numbered without gaps",
        ),
    ]
