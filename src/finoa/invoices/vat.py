"""Deductible input VAT (可抵扣进项税额) of an invoice, by its kind.

The rules for domestic passenger transport are 财政部 税务总局 海关总署公告2019年第39号
第六条; catering and entertainment are excluded by 财税〔2016〕36号 附件1 第二十七条:

| invoice | deductible input VAT |
|---|---|
| 增值税专用发票 | the tax stated on it |
| 普通发票 for passenger transport (客运服务) | the tax stated on it |
| other 普通发票 | none |
| railway ticket naming the passenger | 票面金额 ÷ (1 + 9%) × 9% |
| air itinerary naming the passenger | (票价 + 燃油附加费) ÷ (1 + 9%) × 9% (民航发展基金: none) |
| road or water ticket naming the passenger | 票面金额 ÷ (1 + 3%) × 3% |
| 餐饮服务, 娱乐服务, 居民日常服务; any invoice on a 业务招待费 line | none |

The computed amounts are rounded to 分, half up (四舍五入). Neither rule text states the
rounding; half up to 分 is how tax amounts are kept. An exact half never arises here: 9/109
and 3/103 of a whole number of fen are never an odd multiple of ½ fen, since 109 and 103 are
prime and larger than 9 and 3. Arithmetic is Decimal on integer fen, never float.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

from finoa.domain.claim import ExpenseCategory
from finoa.invoices.model import Invoice, InvoiceKind

NINE_PERCENT = Decimal("0.09")
THREE_PERCENT = Decimal("0.03")
NOT_DEDUCTIBLE_SERVICES = ("餐饮服务", "娱乐服务", "居民日常服务")
PASSENGER_TRANSPORT = "客运服务"
FEN = Decimal(1)


def included_vat(gross_fen: int, rate: Decimal) -> int:
    """The VAT included in a tax-inclusive amount: gross ÷ (1 + rate) × rate, rounded to 分
    half up."""
    exact = Decimal(gross_fen) / (1 + rate) * rate
    return int(exact.quantize(FEN, rounding=ROUND_HALF_UP))


def _any_item(invoice: Invoice, words: tuple[str, ...]) -> bool:
    return any(word in item.name for item in invoice.items for word in words)


def deductible_vat(invoice: Invoice, category: ExpenseCategory) -> tuple[int, str]:
    """The deductible input VAT in fen for an invoice on a claim line of `category`, and the
    rule that gave it (kept with the invoice so a reviewer sees why)."""
    if category is ExpenseCategory.ENTERTAINMENT:
        return 0, "业务招待费: input VAT not deductible (财税〔2016〕36号 附件1 第二十七条)"
    if _any_item(invoice, NOT_DEDUCTIBLE_SERVICES):
        return 0, "餐饮/娱乐/居民日常服务: not deductible (财税〔2016〕36号 附件1 第二十七条)"
    if invoice.kind is InvoiceKind.SPECIAL_VAT:
        return invoice.tax_fen, "增值税专用发票: tax as stated"
    if invoice.kind is InvoiceKind.RAILWAY:
        return (
            included_vat(invoice.total_fen, NINE_PERCENT),
            "railway ticket: 票面金额 ÷ 1.09 × 9% (公告2019年第39号 第六条)",
        )
    if invoice.kind is InvoiceKind.AIR:
        return (
            included_vat(invoice.fare_fen + invoice.fuel_surcharge_fen, NINE_PERCENT),
            "air itinerary: (票价 + 燃油附加费) ÷ 1.09 × 9% (公告2019年第39号 第六条)",
        )
    if invoice.kind is InvoiceKind.ROAD_WATER:
        return (
            included_vat(invoice.total_fen, THREE_PERCENT),
            "road/water ticket: 票面金额 ÷ 1.03 × 3% (公告2019年第39号 第六条)",
        )
    if invoice.items and all(PASSENGER_TRANSPORT in item.name for item in invoice.items):
        return invoice.tax_fen, "普通发票 for passenger transport: tax as stated (第六条)"
    return 0, "普通发票: input VAT not deductible"
