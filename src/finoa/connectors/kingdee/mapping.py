"""Canonical vouchers -> K/3 Cloud `GL_VOUCHER` models, and the base-data tables behind them.

K/3 Cloud references base data by its code (`{"FNumber": ...}`): the account book, the voucher
word (凭证字), the accounts, the currency and exchange-rate type, and the codes of the
dimensions (核算维度) an account carries in `FDetailID`. Which `FDETAILID__FFLEXn` slot holds
which dimension depends on the account set, and so do the codes: `BaseData` holds the tables
that map finoa's chart, voucher words and dimension codes onto one account set's.

The hub's reference of a voucher (the outbox idempotency key) is written into the voucher so
that `ExecuteBillQuery` finds it again: by default at the end of every entry's explanation
(`FEXPLANATION`, after `#`), or into a text field of the voucher header added for it
(`reference_field`, e.g. `F_FINOA_Ref`). The internal id `FVOUCHERID` is never sent: K/3
Cloud would overwrite the voucher it names.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

EXPLANATION_FIELD = "FEXPLANATION"
EXPLANATION_LIMIT = 255  # characters K/3 Cloud keeps of an entry's explanation
REFERENCE_MARK = "#"
DIMENSIONS = ("department", "employee", "project")

DEFAULT_WORDS = {"记": "PRE001", "收": "PRE002", "付": "PRE003", "转": "PRE004"}
DEFAULT_ACCOUNT_DIMENSIONS: dict[str, tuple[str, ...]] = {
    "6601": ("department", "project"),
    "6602": ("department", "project"),
    "6603": ("department",),
    "1221": ("employee",),
    "2241": ("employee",),
}
DEFAULT_DIMENSION_FIELDS = {"department": "FFLEX5", "employee": "FFLEX7", "project": "FF100001"}
DEFAULT_DIMENSION_FORMS = {
    "department": "BD_Department",
    "employee": "BD_Empinfo",
    "project": "BOS_ASSISTANTDATA_DETAIL",
}


class BaseData(BaseModel):
    """How finoa's codes map onto one account set's base data (all by `FNumber`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    account_book: str = Field(default="001", min_length=1, description="BD_AccountBook code")
    voucher_words: dict[str, str] = Field(
        default_factory=lambda: dict(DEFAULT_WORDS),
        description="finoa voucher word -> BD_VOUCHERGROUP code",
    )
    currencies: dict[str, str] = Field(
        default_factory=lambda: {"CNY": "PRE001"}, description="ISO 4217 -> BD_Currency code"
    )
    exchange_rate_type: str = Field(default="HLTX01_SYS", min_length=1)
    accounts: dict[str, str] = Field(
        default_factory=dict,
        description="finoa account code -> BD_Account code, on top of the kingdee/voucher "
        "mapping's accounts table",
    )
    account_dimensions: dict[str, tuple[str, ...]] = Field(
        default_factory=lambda: dict(DEFAULT_ACCOUNT_DIMENSIONS),
        description="finoa account code or prefix -> the dimensions its entries carry",
    )
    dimension_fields: dict[str, str] = Field(
        default_factory=lambda: dict(DEFAULT_DIMENSION_FIELDS),
        description="dimension -> FDetailID slot (FFLEX5, FF100001, ...)",
    )
    dimension_forms: dict[str, str] = Field(
        default_factory=lambda: dict(DEFAULT_DIMENSION_FORMS),
        description="dimension -> the base-data form its codes are read from (by FNumber)",
    )
    dimension_codes: dict[str, dict[str, str]] = Field(
        default_factory=dict,
        description="dimension -> finoa code -> K/3 Cloud code (unlisted: the same code)",
    )
    reference_field: str = Field(
        default=EXPLANATION_FIELD,
        pattern=r"^(FEXPLANATION|F_[A-Za-z0-9_]+)$",
        description="where the hub's reference goes: FEXPLANATION, or a header field F_...",
    )

    @field_validator("account_dimensions")
    @classmethod
    def _known_dimensions(cls, value: dict[str, tuple[str, ...]]) -> dict[str, tuple[str, ...]]:
        for account, names in value.items():
            unknown = sorted(set(names) - set(DIMENSIONS))
            if unknown:
                raise ValueError(f"{account}: unknown dimension(s) {', '.join(unknown)}")
        return value

    @field_validator("dimension_fields", "dimension_forms", "dimension_codes")
    @classmethod
    def _dimension_keys(cls, value: dict[str, Any]) -> dict[str, Any]:
        unknown = sorted(set(value) - set(DIMENSIONS))
        if unknown:
            raise ValueError(f"unknown dimension(s) {', '.join(unknown)}; known: {DIMENSIONS}")
        return value

    def dimensions_of(self, account_code: str) -> tuple[str, ...]:
        """The dimensions an account's entries carry: its own entry, else its longest prefix."""
        best = ""
        for prefix in self.account_dimensions:
            if (account_code == prefix or account_code.startswith(prefix + ".")) and len(
                prefix
            ) > len(best):
                best = prefix
        return self.account_dimensions.get(best, ()) if best else ()


class MappingError(ValueError):
    """A voucher the base-data tables cannot map (a configuration gap): `field: reason`."""


def yuan(fen: int) -> str:
    """An amount in fen as K/3 Cloud's decimal yuan ("1128.10"; red ink is negative)."""
    return str((Decimal(fen) / 100).quantize(Decimal("0.01")))


def explanation(summary: str, reference: str) -> str:
    """An entry's explanation carrying the reference at its end, cut to K/3 Cloud's limit."""
    tail = f" {REFERENCE_MARK}{reference}"
    return summary[: max(0, EXPLANATION_LIMIT - len(tail))] + tail


def reference_in(text: Any) -> str | None:
    """The reference at the end of an explanation, or None."""
    if not isinstance(text, str) or REFERENCE_MARK not in text:
        return None
    return text.rsplit(REFERENCE_MARK, 1)[1].strip() or None


def voucher_model(payload: Mapping[str, Any], reference: str, base: BaseData) -> dict[str, Any]:
    """The `Model` of a Save of a canonical voucher. A red-ink reversal (`reversal_of`) maps
    the same way: a voucher of its own, with the negated amounts on the usual side and the
    explanations ("冲销 <voucher no> …") the hub gave it."""
    word = base.voucher_words.get(payload["word"])
    if word is None:
        raise MappingError(f"voucher_words: no K/3 Cloud voucher word for {payload['word']!r}")
    currency = base.currencies.get(payload["currency"])
    if currency is None:
        raise MappingError(f"currencies: no K/3 Cloud currency for {payload['currency']!r}")
    year, month = str(payload["period"]).split("-")
    in_explanation = base.reference_field == EXPLANATION_FIELD
    entries = []
    for entry in payload["entries"]:
        code = str(entry["account_code"])
        summary = str(entry["summary"] or payload["summary"])
        row: dict[str, Any] = {
            "FEXPLANATION": explanation(summary, reference) if in_explanation else summary,
            "FACCOUNTID": {"FNumber": base.accounts.get(code, code)},
            "FCURRENCYID": {"FNumber": currency},
            "FEXCHANGERATETYPE": {"FNumber": base.exchange_rate_type},
            "FEXCHANGERATE": "1",
            "FDEBIT": yuan(int(entry["debit_fen"])),
            "FCREDIT": yuan(int(entry["credit_fen"])),
        }
        detail = {}
        for dimension in base.dimensions_of(code):
            value = entry["aux"].get(dimension)
            if not value:
                continue  # K/3 Cloud says so when the account needs it
            slot = base.dimension_fields.get(dimension)
            if slot is None:
                raise MappingError(f"dimension_fields: no FDetailID slot for {dimension!r}")
            number = base.dimension_codes.get(dimension, {}).get(value, value)
            detail[f"FDETAILID__{slot}"] = {"FNumber": number}
        if detail:
            row["FDetailID"] = detail
        entries.append(row)
    model: dict[str, Any] = {
        "FAccountBookID": {"FNumber": base.account_book},
        "FDate": payload["date"],
        "FVOUCHERGROUPID": {"FNumber": word},
        "FYEAR": year,
        "FPERIOD": str(int(month)),
        "FEntity": entries,
    }
    if not in_explanation:
        model[base.reference_field] = reference
    return model


def save_data(model: Mapping[str, Any]) -> dict[str, Any]:
    """The `data` of a Save: base data verified by code, every validation on (Kingdee's
    advice: never ValidateFlag=false)."""
    return {
        "NeedUpDateFields": [],
        "NeedReturnFields": [],
        "IsDeleteEntry": "true",
        "IsVerifyBaseDataField": "true",
        "IsEntryBatchFill": "true",
        "ValidateFlag": "true",
        "NumberSearch": "true",
        "IsAutoSubmitAndAudit": "false",
        "Model": dict(model),
    }
