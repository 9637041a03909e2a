"""Fill a freshly created Tryton database with what finoa posts into.

Run inside Tryton's own Python API, in a child process of `finoa erp tryton init` (Tryton's
configuration is process-wide): `python -m finoa.connectors.tryton.populate CONFIG DATABASE`
with the plan as JSON on stdin. It creates, once:

- the currency CNY and the company (its party and currency);
- the user finoa logs in as, in the accounting groups, working for that company;
- a fiscal year per requested year, with its strict move sequence and monthly periods;
- finoa's chart of accounts: a view account for every code that has sub-accounts, the others
  postable, each with an account type of its kind; "party required" where the plan says so;
- one party per employee, its code the employee id.

It prints a JSON summary on stdout.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
from decimal import Decimal
from typing import Any

KIND_TYPES = {
    # kind -> (type name, values of account.account.type)
    "asset": ("Assets", {"statement": "balance", "assets": True}),
    "receivable": ("Receivables", {"statement": "balance", "assets": True, "receivable": True}),
    "liability": ("Liabilities", {"statement": "balance", "assets": False}),
    "payable": ("Payables", {"statement": "balance", "assets": False, "payable": True}),
    "expense": ("Expenses", {"statement": "income", "expense": True}),
    "revenue": ("Revenues", {"statement": "income", "revenue": True}),
}


def populate(config_file: str, database: str, plan: dict[str, Any]) -> dict[str, Any]:
    from trytond import config

    config.update_etc(config_file)
    from trytond.pool import Pool
    from trytond.transaction import Transaction

    Pool.start()
    pool = Pool(database)
    pool.init()
    from trytond.transaction import TransactionError

    extras: dict[str, Any] = {}
    while True:  # as trytond's dispatcher does: a TransactionError says how to start again
        summary: dict[str, Any] = {}
        with Transaction().start(database, 0, context={}, **extras) as transaction:
            try:
                company = _company(pool, plan)
                summary["company"] = company.id
                with transaction.set_context(company=company.id, companies=[company.id]):
                    _users(pool, plan, company)
                    summary["fiscal_years"] = _fiscal_years(pool, plan, company)
                    summary["accounts"] = _accounts(pool, plan, company)
                    summary["parties"] = _parties(pool, plan)
            except TransactionError as exc:
                transaction.rollback()
                exc.fix(extras)
                continue
            transaction.commit()
        return summary


def _company(pool: Any, plan: dict[str, Any]) -> Any:
    Currency = pool.get("currency.currency")
    Party = pool.get("party.party")
    Company = pool.get("company.company")
    currencies = Currency.search([("code", "=", "CNY")])
    if currencies:
        (currency,) = currencies
    else:
        (currency,) = Currency.create(
            [
                {
                    "name": "人民币 Renminbi",
                    "code": "CNY",
                    "numeric_code": "156",
                    "symbol": "¥",
                    "rounding": Decimal("0.01"),
                    "digits": 2,
                }
            ]
        )
    companies = Company.search([])
    if companies:
        return companies[0]
    (party,) = Party.create([{"name": plan["company_name"]}])
    (company,) = Company.create(
        [{"party": party.id, "currency": currency.id, "timezone": plan["timezone"]}]
    )
    return company


def _users(pool: Any, plan: dict[str, Any], company: Any) -> None:
    User = pool.get("res.user")
    ModelData = pool.get("ir.model.data")
    groups = [
        ModelData.get_id("account", "group_account"),
        ModelData.get_id("account", "group_account_admin"),
        ModelData.get_id("party", "group_party_admin"),
    ]
    (admin,) = User.search([("login", "=", "admin")])
    User.write(
        [admin],
        {
            "companies": [("add", [company.id])],
            "company": company.id,
            "groups": [("add", groups)],
        },
    )
    login = plan["login"]
    found = User.search([("login", "=", login)])
    values = {
        "password": plan["password"],
        "companies": [("add", [company.id])],
        "company": company.id,
        "groups": [("add", groups)],
    }
    if found:
        User.write(found, values)
    else:
        User.create([{"name": "finoa", "login": login, **values}])


def _fiscal_years(pool: Any, plan: dict[str, Any], company: Any) -> list[str]:
    FiscalYear = pool.get("account.fiscalyear")
    Sequence = pool.get("ir.sequence.strict")
    ModelData = pool.get("ir.model.data")
    sequence_type = ModelData.get_id("account", "sequence_type_account_move")
    names = []
    for year in plan["years"]:
        name = str(year)
        names.append(name)
        if FiscalYear.search([("name", "=", name), ("company", "=", company.id)]):
            continue
        (sequence,) = Sequence.create(
            [
                {
                    "name": f"{plan['word']} {year}",
                    "sequence_type": sequence_type,
                    "company": company.id,
                    "prefix": f"{plan['word']}-{year}-",
                    "padding": 5,
                }
            ]
        )
        (fiscal_year,) = FiscalYear.create(
            [
                {
                    "name": name,
                    "start_date": dt.date(year, 1, 1),
                    "end_date": dt.date(year, 12, 31),
                    "company": company.id,
                    "move_sequence": sequence.id,
                }
            ]
        )
        FiscalYear.create_period([fiscal_year], interval=1)
    return names


def _accounts(pool: Any, plan: dict[str, Any], company: Any) -> int:
    Type = pool.get("account.account.type")
    Account = pool.get("account.account")
    existing = {a.code for a in Account.search([("company", "=", company.id)])}
    roots = Type.search([("name", "=", "finoa"), ("company", "=", company.id)])
    if roots:
        (root,) = roots
    else:
        (root,) = Type.create([{"name": "finoa", "company": company.id}])
    types: dict[str, int] = {}
    for kind, (name, type_values) in KIND_TYPES.items():
        found = Type.search([("name", "=", name), ("parent", "=", root.id)])
        if found:
            types[kind] = found[0].id
        else:
            (created,) = Type.create(
                [{"name": name, "parent": root.id, "company": company.id, **type_values}]
            )
            types[kind] = created.id
    chart: list[dict[str, Any]] = sorted(plan["accounts"], key=lambda a: a["code"])
    codes = [a["code"] for a in chart]
    ids: dict[str, int] = {a.code: a.id for a in Account.search([("company", "=", company.id)])}
    for row in chart:
        code = row["code"]
        if code in existing:
            continue
        parent = _parent_code(code, codes)
        is_view = any(other.startswith(code + ".") for other in codes)
        values: dict[str, Any] = {
            "name": row["name"],
            "code": code,
            "company": company.id,
            "parent": ids.get(parent) if parent else None,
        }
        if not is_view:
            values["type"] = types[row["kind"]]
            values["party_required"] = bool(row["party_required"])
            values["reconcile"] = False
        (account,) = Account.create([values])
        ids[code] = account.id
    return len(ids)


def _parent_code(code: str, codes: list[str]) -> str | None:
    while "." in code:
        code = code.rsplit(".", 1)[0]
        if code in codes:
            return code
    return None


def _parties(pool: Any, plan: dict[str, Any]) -> int:
    Party = pool.get("party.party")
    known = {p.code for p in Party.search([("code", "in", [e["code"] for e in plan["parties"]])])}
    new = [
        {"name": e["name"], "code": e["code"]} for e in plan["parties"] if e["code"] not in known
    ]
    if new:
        Party.create(new)
    return len(known) + len(new)


def main() -> None:
    config_file, database = sys.argv[1], sys.argv[2]
    plan = json.loads(sys.stdin.read())
    print(json.dumps(populate(config_file, database, plan)))


if __name__ == "__main__":
    main()
