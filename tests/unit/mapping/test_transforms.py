"""Transforms of the mapping engine at their edges."""

from __future__ import annotations

from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from finoa.domain.money import MAX_FEN
from finoa.mapping.transforms import (
    TRANSFORMS,
    TransformContext,
    TransformError,
    decode_body,
    half_width,
    parse_yuan,
)

CTX = TransformContext(ZoneInfo("Asia/Shanghai"))


def run(name: str, value: object) -> object:
    return TRANSFORMS[name](value, CTX)


@given(st.integers(min_value=-MAX_FEN, max_value=MAX_FEN))
def test_fen_to_yuan_and_back_is_exact(fen: int) -> None:
    assert run("yuan_to_fen", run("fen_to_yuan", fen)) == fen


@given(st.decimals(min_value=-(10**12), max_value=10**12, places=2, allow_nan=False))
def test_yuan_text_round_trips_through_fen(amount: Decimal) -> None:
    fen = run("yuan_to_fen", str(amount))
    assert isinstance(fen, int)
    assert Decimal(run("fen_to_yuan", fen)) == amount


@pytest.mark.parametrize(
    ("written", "yuan"),
    [
        ("1,234.50", "1234.50"),
        ("¥ 12", "12.00"),
        ("１２３４．５", "1234.50"),
        ("￥88", "88.00"),
        ("12元", "12.00"),
        ("RMB 0.01", "0.01"),
        (7, "7.00"),
    ],
)
def test_amounts_as_people_write_them(written: object, yuan: str) -> None:
    assert run("yuan", written) == yuan


@pytest.mark.parametrize("bad", ["1.005", "12,3a", "", "1e3", 12.5, True, None, "--1"])
def test_amounts_that_are_not_amounts_are_refused(bad: object) -> None:
    with pytest.raises(TransformError):
        parse_yuan(bad)


def test_amounts_beyond_the_largest_line_are_refused() -> None:
    with pytest.raises(TransformError, match="too large"):
        run("yuan_to_fen", str(MAX_FEN))


@pytest.mark.parametrize(
    ("moment", "day"),
    [
        (1663143335567, "2022-09-14"),  # 16:15 in Shanghai
        ("1663171200000", "2022-09-15"),  # 00:00 Shanghai = 16:00 UTC the day before
        ("2026-11-20 23:59:59", "2026-11-20"),
        ("2026-11-20", "2026-11-20"),
        ("2026-11-20T16:30:00Z", "2026-11-21"),  # after 16:00 UTC it is tomorrow in Shanghai
        ("2026-11-20T23:30:00+08:00", "2026-11-20"),
        ("２０２６-１１-２０", "2026-11-20"),
    ],
)
def test_dates_are_company_dates(moment: object, day: str) -> None:
    assert run("date", moment) == day


def test_datetime_forms_agree() -> None:
    ms = 1663143335567
    assert run("local_datetime", ms) == "2022-09-14 16:15:35"
    assert run("datetime", "2022-09-14 16:15:35") == "2022-09-14T16:15:35+08:00"
    assert run("epoch_ms", "2022-09-14 16:15:35") == 1663143335000


@pytest.mark.parametrize("bad", ["yesterday", "2026-13-01", True, [], "2026-11-20 25:00:00"])
def test_dates_that_are_not_dates_are_refused(bad: object) -> None:
    with pytest.raises(TransformError):
        run("date", bad)


def test_half_width_keeps_chinese_text() -> None:
    assert half_width("Ｑ４　客户（上海）１２．５０") == "Q4 客户(上海)12.50"
    assert half_width("报销事由") == "报销事由"


@pytest.mark.parametrize(
    ("name", "code"),
    [("人民币", "CNY"), ("rmb", "CNY"), ("¥", "CNY"), ("美元", "USD"), ("eur", "EUR")],
)
def test_currency_names_become_iso_codes(name: str, code: str) -> None:
    assert run("currency", name) == code


def test_unknown_currency_is_refused() -> None:
    with pytest.raises(TransformError, match="currency"):
        run("currency", "贝壳")


def test_json_inside_a_string_keeps_exact_decimals() -> None:
    assert run("json", '[[{"name":"金额","value":12.30}]]') == [
        [{"name": "金额", "value": Decimal("12.30")}]
    ]
    with pytest.raises(TransformError, match="not JSON"):
        run("json", "[[{")


def test_json_string_is_compact_and_keeps_chinese() -> None:
    assert (
        run("json_string", [[{"name": "金额", "value": "1"}]]) == '[[{"name":"金额","value":"1"}]]'
    )


def test_bodies_in_gbk_and_gb18030_are_read() -> None:
    text = "报销事由：差旅　￥12"
    assert decode_body(text.encode("gbk")) == text
    assert decode_body(text.encode("gb18030"), "application/json; charset=GBK") == text
    assert decode_body(("\ufeff" + text).encode("utf-8")) == text
    assert decode_body(text.encode("utf-8"), "text/plain; charset=utf-8") == text


def test_bodies_that_do_not_decode_are_refused() -> None:
    with pytest.raises(TransformError, match="not valid gbk"):
        decode_body(b'{"a": "\xff\xff"}', "application/json; charset=gbk")
    with pytest.raises(TransformError, match="neither UTF-8 nor GB18030"):
        decode_body(b'{"a": "\xff\xff"}')
    with pytest.raises(TransformError, match="unknown charset"):
        decode_body(b"{}", "application/json; charset=klingon")
