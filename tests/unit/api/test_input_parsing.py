"""The pieces that read input: strict JSON, Basic credentials, text and amount rules."""

from __future__ import annotations

import base64
from decimal import Decimal
from typing import Any

import pytest
from fastapi.exceptions import RequestValidationError

from finoa.api.json_body import ExponentNumber, is_json, parse_json
from finoa.api.problems import ApiProblem
from finoa.api.routes.auth import basic_credentials
from finoa.domain.errors import InvalidInput
from finoa.domain.money import yuan_to_fen
from finoa.schemas import file_name, has_visible, line_text, paragraph_text, plain_amount
from finoa.security.tokens import secret_matches


def refusal(body: bytes) -> dict[str, Any]:
    with pytest.raises(RequestValidationError) as info:
        parse_json(body)
    (error,) = info.value.errors()
    return dict(error)


def test_json_keeps_fractions_exact_and_ints_as_ints() -> None:
    assert parse_json(b'{"a": 0.29, "b": 7, "c": [1.10]}') == {
        "a": Decimal("0.29"),
        "b": 7,
        "c": [Decimal("1.10")],
    }


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        (b'{"a": 1e3}', ("body", "a")),
        (
            b'{"a": 1, "lines": [{"amount": 1.0}, {"amount": 2.5E-1}]}',
            ("body", "lines", 1, "amount"),
        ),
        (b"[0, 1E+2]", ("body", 1)),
    ],
)
def test_json_number_with_an_exponent_is_refused_where_it_stands(
    body: bytes, loc: tuple[Any, ...]
) -> None:
    error = refusal(body)
    assert error["type"] == "number_with_exponent"
    assert error["loc"] == loc
    assert "plain decimals" in error["msg"]


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        (b'{"a": 1, "a": 2}', ("body", "a")),
        (b'{"lines": [{"x": 1}, {"amount": 1, "amount": 1}]}', ("body", "lines", 1, "amount")),
        (b'{"d": {"e": [0, {"k": {}, "k": {}}]}, "z": 1}', ("body", "d", "e", 1, "k")),
    ],
)
def test_repeated_key_is_refused_where_it_repeats(body: bytes, loc: tuple[Any, ...]) -> None:
    error = refusal(body)
    assert error["type"] == "duplicate_key"
    assert error["loc"] == loc


def test_first_repeat_in_document_order_is_named() -> None:
    error = refusal(b'{"a": {"x": 1, "x": 2}, "b": {"y": 1, "y": 2}}')
    assert error["loc"] == ("body", "a", "x")


@pytest.mark.parametrize(
    "body",
    [
        b'{"a": NaN}',
        b'{"a": Infinity}',
        b'{"a": -Infinity}',
        b'{"a": "\xff"}',
        b"[" * 100_000 + b"]" * 100_000,
        b'{"a": ' + b"9" * 5000 + b"}",
        b'{"a": 1',
        b"",
    ],
    ids=["nan", "infinity", "minus-infinity", "bad-utf8", "deep", "huge-int", "cut", "empty"],
)
def test_malformed_json_is_json_invalid(body: bytes) -> None:
    error = refusal(body)
    assert error["type"] == "json_invalid"
    assert error["ctx"]["error"]


@pytest.mark.parametrize(
    ("content_type", "expected"),
    [
        ("application/json", True),
        ("application/json; charset=utf-8", True),
        ("Application/Problem+JSON", True),
        ("application/x-www-form-urlencoded", False),
        ("text/json", False),
        (None, False),
    ],
)
def test_json_content_types(content_type: str | None, expected: bool) -> None:
    assert is_json(content_type) is expected


def encoded(pair: bytes) -> str:
    return base64.b64encode(pair).decode()


@pytest.mark.parametrize(
    ("pair", "expected"),
    [
        (b"erp-bot:s3cret", ("erp-bot", "s3cret")),
        (b"a%3Ab:c", ("a:b", "c")),
        (b"odd+client:s%2Bcr%25t", ("odd client", "s+cr%t")),
        (b"id:pa:ss", ("id", "pa:ss")),
        ("客户:密码".encode(), ("客户", "密码")),
        (b"%E5%AF%86:x", ("密", "x")),
    ],
)
def test_basic_credentials_are_form_decoded(pair: bytes, expected: tuple[str, str]) -> None:
    assert basic_credentials(encoded(pair)) == expected


@pytest.mark.parametrize(
    "credentials",
    ["密码", "%%%", encoded(b"no-colon"), encoded(b"\xff:\xfe"), encoded(b"id:%FF")],
)
def test_malformed_basic_credentials_are_invalid_request(credentials: str) -> None:
    with pytest.raises(ApiProblem) as info:
        basic_credentials(credentials)
    assert (info.value.status, info.value.field) == (400, "authorization")
    assert info.value.extra["error"] == "invalid_request"


@pytest.mark.parametrize(
    ("expected", "given", "result"),
    [
        ("s1", "s1", True),
        ("s1", "s2", False),
        ("s1", "密码", False),
        ("密码", "密码", True),
        ("密码", "密碼", False),
        (None, "s1", False),
        ("s1", "\ud800", False),
    ],
)
def test_secrets_are_compared_as_bytes(expected: str | None, given: str, result: bool) -> None:
    assert secret_matches(expected, given) is result


@pytest.mark.parametrize("text", ["a\x00b", "\x1b[31m", "a\rb", "\x7f", "\x85", "x\ud800"])
def test_line_text_refuses_control_characters(text: str) -> None:
    with pytest.raises(ValueError, match="control character"):
        line_text(text)


def test_paragraph_text_allows_tabs_and_line_breaks_only() -> None:
    assert paragraph_text("第一行\n\tsecond\r\n") == "第一行\n\tsecond\r\n"
    with pytest.raises(ValueError, match=r"U\+0000"):
        paragraph_text("a\x00")


@pytest.mark.parametrize("text", ["\u200b", "\ufeff", "\xa0", "\u3000\u200d", "\u2060 \u00ad"])
def test_text_of_invisible_characters_only_is_refused(text: str) -> None:
    assert not has_visible(text)
    with pytest.raises(ValueError, match="invisible"):
        line_text(text)


@pytest.mark.parametrize("text", ["", "a", "\u200b报销", "E0011"])
def test_visible_or_empty_text_passes(text: str) -> None:
    assert line_text(text) == text


@pytest.mark.parametrize("name", ["a/b", "a\\b", "..", ".", "...", "/"])
def test_file_names_with_paths_are_refused(name: str) -> None:
    with pytest.raises(ValueError):
        file_name(name)


@pytest.mark.parametrize("value", ["1_000", "١٢", " 1", "1 ", "1e3", "+1", ".5", "5.", "0x10"])
def test_amount_text_must_be_plain(value: str) -> None:
    with pytest.raises(ValueError, match="plain form"):
        plain_amount(value)


@pytest.mark.parametrize("value", [True, ExponentNumber("1e3"), [1], None])
def test_amount_of_another_kind_is_refused(value: Any) -> None:
    with pytest.raises(ValueError):
        plain_amount(value)


@pytest.mark.parametrize("value", ["1280.50", "-3", "0.1", 12, Decimal("1.50"), 1.5])
def test_plain_amounts_pass(value: Any) -> None:
    assert plain_amount(value) == value


@pytest.mark.parametrize("value", ["1_280.50", "١٢٨٠", " 12", "1e3", "+5", "12."])
def test_yuan_to_fen_refuses_text_that_is_not_a_plain_decimal(value: str) -> None:
    with pytest.raises(InvalidInput) as info:
        yuan_to_fen(value, field="lines[0].amount")
    assert info.value.field == "lines[0].amount"
    assert "plain form" in info.value.message
