"""The value transforms a mapping may name (pure functions, no I/O).

Each transform takes a value and the `TransformContext` (the company's time zone) and
returns the new value, or raises `TransformError` with a plain reason; the engine adds the
field's path. Amounts never pass through floats: yuan are `Decimal`s, fen are integers.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any
from zoneinfo import ZoneInfo

from finoa.domain.errors import InvalidInput
from finoa.domain.money import FEN_PER_YUAN, MAX_FEN, fen_to_yuan, yuan_to_fen

SHANGHAI = ZoneInfo("Asia/Shanghai")


class TransformError(ValueError):
    """A value a transform cannot take; the message says why (the engine adds the path)."""


@dataclass(frozen=True)
class TransformContext:
    """What transforms may depend on besides the value."""

    zone: ZoneInfo = SHANGHAI


Transform = Callable[[Any, TransformContext], Any]

# -- text -----------------------------------------------------------------------------------

FULL_WIDTH_FIRST, FULL_WIDTH_LAST, FULL_WIDTH_OFFSET = 0xFF01, 0xFF5E, 0xFEE0
IDEOGRAPHIC_SPACE = "\u3000"
_HALF = {code: code - FULL_WIDTH_OFFSET for code in range(FULL_WIDTH_FIRST, FULL_WIDTH_LAST + 1)}
_HALF[ord(IDEOGRAPHIC_SPACE)] = ord(" ")
# 全角 punctuation people type in amounts and dates that is outside the FF01-FF5E block.
_HALF.update({ord("。"): ord("."), ord("￥"): ord("¥")})


def half_width(text: str) -> str:
    """Full-width ASCII forms (Ｆｕｌｌ　１２３．５０) to their half-width twins; other
    characters (Chinese text, 全角 brackets in names) stay as they are."""
    return text.translate(_HALF)


def _text(value: Any, ctx: TransformContext) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool) or value is None or isinstance(value, dict | list):
        raise TransformError(f"expected text, got {_kind(value)}")
    return str(value)


def _halfwidth(value: Any, ctx: TransformContext) -> str:
    return half_width(_text(value, ctx))


def _strip(value: Any, ctx: TransformContext) -> str:
    return _text(value, ctx).strip()


def _upper(value: Any, ctx: TransformContext) -> str:
    return _text(value, ctx).upper()


# -- amounts --------------------------------------------------------------------------------

_AMOUNT_NOISE = re.compile(r"[\s,¥]|^(?:CNY|RMB)|元$")


def parse_yuan(value: Any) -> Decimal:
    """A yuan amount as people and OAs write it ("1,234.50", "¥ 12", "１２．５", 12, "12元")
    to an exact Decimal with at most two decimals. Floats are refused: their value is not
    the amount anybody wrote."""
    if isinstance(value, bool | float):
        raise TransformError(
            f"expected an amount in yuan as text or a whole number, got {_kind(value)}"
        )
    if isinstance(value, int):
        amount = Decimal(value)
    elif isinstance(value, Decimal):
        amount = value
    elif isinstance(value, str):
        cleaned = _AMOUNT_NOISE.sub("", half_width(value).strip())
        if not re.fullmatch(r"-?[0-9]+(?:\.[0-9]+)?", cleaned):
            raise TransformError(f"{value!r} is not an amount in yuan")
        try:
            amount = Decimal(cleaned)
        except InvalidOperation:  # pragma: no cover - the pattern admits only decimals
            raise TransformError(f"{value!r} is not an amount in yuan") from None
    else:
        raise TransformError(f"expected an amount in yuan, got {_kind(value)}")
    if abs(amount) > Decimal(MAX_FEN) / FEN_PER_YUAN:
        raise TransformError("is too large")
    if amount != amount.quantize(Decimal("0.01")):
        raise TransformError(f"{value!r} has more than 2 decimal places")
    return amount.quantize(Decimal("0.01"))


def _yuan(value: Any, ctx: TransformContext) -> str:
    """Yuan as written -> the canonical decimal text ("1234.50")."""
    return str(parse_yuan(value))


def _yuan_to_fen(value: Any, ctx: TransformContext) -> int:
    try:
        return yuan_to_fen(parse_yuan(value))
    except InvalidInput as exc:
        raise TransformError(exc.message) from None


def _fen_to_yuan(value: Any, ctx: TransformContext) -> str:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TransformError(f"expected a whole number of fen, got {_kind(value)}")
    if abs(value) > MAX_FEN:
        raise TransformError("is too large")
    return str(fen_to_yuan(value))


# -- dates ----------------------------------------------------------------------------------

EPOCH_MS_DIGITS = re.compile(r"[0-9]{12,14}")
LOCAL_FORMATS = ("%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M", "%Y/%m/%d %H:%M:%S", "%Y/%m/%d")


def parse_moment(value: Any, zone: ZoneInfo) -> datetime:
    """A moment in the vendors' forms, as an aware datetime in `zone`:

    - epoch milliseconds (DingTalk, Feishu: 1663143335567, or the same digits as text);
    - `yyyy-MM-dd HH:mm:ss` (Weaver, DingTalk form dates), read as company time;
    - `yyyy-MM-dd` (a date: midnight company time);
    - ISO 8601, with an offset (converted) or without (read as company time).
    """
    if isinstance(value, bool):
        raise TransformError(f"expected a date or time, got {_kind(value)}")
    if isinstance(value, int) or (isinstance(value, str) and EPOCH_MS_DIGITS.fullmatch(value)):
        millis = int(value)
        try:
            return datetime(1970, 1, 1, tzinfo=UTC).astimezone(zone) + timedelta(
                milliseconds=millis
            )
        except OverflowError:
            raise TransformError(f"{value!r} is out of range as epoch milliseconds") from None
    if not isinstance(value, str):
        raise TransformError(f"expected a date or time, got {_kind(value)}")
    text = half_width(value).strip()
    for form in LOCAL_FORMATS:
        try:
            return datetime.strptime(text, form).replace(tzinfo=zone)
        except ValueError:
            continue
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise TransformError(
            f"{value!r} is not a date (epoch milliseconds, yyyy-MM-dd HH:mm:ss or ISO 8601)"
        ) from None
    if moment.tzinfo is None:
        return moment.replace(tzinfo=zone)
    return moment.astimezone(zone)


def _date(value: Any, ctx: TransformContext) -> str:
    """Any of the moment forms -> the company-time calendar date (yyyy-mm-dd)."""
    if isinstance(value, date) and not isinstance(value, datetime):
        return value.isoformat()
    return parse_moment(value, ctx.zone).date().isoformat()


def _datetime(value: Any, ctx: TransformContext) -> str:
    """Any of the moment forms -> ISO 8601 in company time, with its offset."""
    return parse_moment(value, ctx.zone).isoformat(timespec="seconds")


def _epoch_ms(value: Any, ctx: TransformContext) -> int:
    """Any of the moment forms -> epoch milliseconds."""
    moment = parse_moment(value, ctx.zone)
    return int(moment.timestamp() * 1000)


def _epoch_seconds(value: Any, ctx: TransformContext) -> int:
    """Epoch seconds (WeCom's `s_timestamp`, as a number or digits) -> epoch milliseconds,
    for `date` / `datetime` after it."""
    if isinstance(value, bool):
        raise TransformError("expected epoch seconds, got a boolean")
    text = str(value).strip() if isinstance(value, int | str) else ""
    if not re.fullmatch(r"[0-9]{1,11}", text):
        raise TransformError(f"{value!r} is not epoch seconds")
    return int(text) * 1000


def _local_datetime(value: Any, ctx: TransformContext) -> str:
    """Any of the moment forms -> `yyyy-MM-dd HH:mm:ss` in company time."""
    return parse_moment(value, ctx.zone).strftime("%Y-%m-%d %H:%M:%S")


# -- currency -------------------------------------------------------------------------------

CURRENCY_NAMES = {
    "CNY": "CNY",
    "RMB": "CNY",
    "人民币": "CNY",
    "元": "CNY",
    "¥": "CNY",
    "USD": "USD",
    "美元": "USD",
    "$": "USD",
    "HKD": "HKD",
    "港币": "HKD",
    "港元": "HKD",
    "EUR": "EUR",
    "欧元": "EUR",
    "JPY": "JPY",
    "日元": "JPY",
}


def _currency(value: Any, ctx: TransformContext) -> str:
    """人民币 / RMB / ¥ / cny -> the ISO 4217 code (CNY)."""
    text = half_width(_text(value, ctx)).strip()
    code = CURRENCY_NAMES.get(text.upper()) or CURRENCY_NAMES.get(text)
    if code is None:
        if re.fullmatch(r"[A-Za-z]{3}", text):
            return text.upper()
        raise TransformError(f"{value!r} is not a currency (an ISO 4217 code or its name)")
    return code


# -- JSON inside strings ----------------------------------------------------------------------


def _json(value: Any, ctx: TransformContext) -> Any:
    """A JSON document inside a string (DingTalk form tables, Feishu forms) -> its value.
    A value that is already a list or object passes as it is."""
    if isinstance(value, list | dict):
        return value
    if not isinstance(value, str):
        raise TransformError(f"expected JSON text, got {_kind(value)}")
    try:
        return json.loads(value, parse_float=Decimal)
    except json.JSONDecodeError as exc:
        raise TransformError(f"is not JSON: {exc.msg} at character {exc.pos}") from None


def _json_string(value: Any, ctx: TransformContext) -> str:
    """A value -> compact JSON text (how DingTalk takes table values)."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)


def _integer(value: Any, ctx: TransformContext) -> int:
    if isinstance(value, bool):
        raise TransformError("expected a whole number, got a boolean")
    if isinstance(value, int):
        return value
    if isinstance(value, str) and re.fullmatch(r"-?[0-9]{1,18}", half_width(value).strip()):
        return int(half_width(value).strip())
    raise TransformError(f"{value!r} is not a whole number")


TRANSFORMS: dict[str, Transform] = {
    "text": _text,
    "strip": _strip,
    "upper": _upper,
    "halfwidth": _halfwidth,
    "yuan": _yuan,
    "yuan_to_fen": _yuan_to_fen,
    "fen_to_yuan": _fen_to_yuan,
    "date": _date,
    "datetime": _datetime,
    "local_datetime": _local_datetime,
    "epoch_ms": _epoch_ms,
    "epoch_seconds": _epoch_seconds,
    "currency": _currency,
    "json": _json,
    "json_string": _json_string,
    "integer": _integer,
}


# -- bodies in Chinese encodings ----------------------------------------------------------------

_CHARSET = re.compile(r"charset\s*=\s*\"?([A-Za-z0-9_-]+)", re.IGNORECASE)
CHINESE_ENCODINGS = {
    "gbk": "gb18030",
    "gb2312": "gb18030",
    "gb18030": "gb18030",
    "cp936": "gb18030",
}


def decode_body(raw: bytes, content_type: str | None = None) -> str:
    """The text of a body: in the charset its content type names (GBK and GB2312 read as
    their superset GB18030), else UTF-8 (a BOM is dropped), else GB18030, which older OAs
    send without saying so. Raises TransformError when neither reads it."""
    declared = _CHARSET.search(content_type or "")
    if declared is not None:
        name = declared.group(1).lower()
        encoding = CHINESE_ENCODINGS.get(name, name)
        try:
            return raw.decode(encoding)
        except LookupError:
            raise TransformError(f"unknown charset {declared.group(1)!r}") from None
        except UnicodeDecodeError as exc:
            raise TransformError(f"is not valid {declared.group(1)} at byte {exc.start}") from None
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        pass
    try:
        return raw.decode("gb18030")
    except UnicodeDecodeError as exc:
        raise TransformError(f"is neither UTF-8 nor GB18030 (byte {exc.start})") from None


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    return {
        bool: "a boolean",
        int: "a number",
        float: "a floating-point number",
        str: "text",
        list: "a list",
        dict: "an object",
    }.get(type(value), type(value).__name__)
