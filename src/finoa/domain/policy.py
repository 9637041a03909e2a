"""Expense policy (费用标准): limits per category × employee grade × city tier, and per-diem.

A policy file holds the city → tier table (城市分级), a default tier for cities it does not
list, and versions, each in force for an expense-date range and holding rules. A rule limits
the lines of one expense category, for each grade (职级) and tier, per night (lodging × the
line's `nights`), per day (× `days`, e.g. the per-diem allowance 出差补助) or per line. A line
above its limit is a breach: flagged (the claim is accepted and shows it) or blocked (the claim
is refused), as the rule or the policy's default says.

Amounts in the file are yuan with at most two decimals, read as Decimal and held in fen.
Pure: this module touches no database.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from enum import StrEnum
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from finoa.domain.claim import ExpenseCategory
from finoa.domain.errors import DomainError, InvalidInput
from finoa.domain.money import fen_to_yuan, yuan_to_fen

ANY_GRADE = "*"  # a limits entry for every grade the rule does not name


class RuleUnit(StrEnum):
    """What a rule's limit is counted per."""

    NIGHT = "night"  # × the line's nights (住宿)
    DAY = "day"  # × the line's days (补助, meals)
    LINE = "line"  # the line's amount as a whole


class BreachAction(StrEnum):
    """What a line above its limit does to the claim."""

    FLAG = "flag"  # accepted; the claim lists the breach (DMN input policy_breached)
    BLOCK = "block"  # refused, nothing written


class _File(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


Limit = Decimal


class PolicyRule(_File):
    name: str = Field(min_length=1, max_length=64, pattern=r"^[a-z0-9_]+$")
    label: str = ""
    category: ExpenseCategory
    per: RuleUnit
    on_breach: BreachAction | None = None  # None: the policy's default
    quantity_required: bool = False  # a line without nights/days is refused, not unchecked
    limits: dict[str, dict[str, Limit]] = Field(min_length=1)  # grade -> tier -> yuan

    @model_validator(mode="after")
    def _amounts(self) -> PolicyRule:
        for grade, tiers in self.limits.items():
            for tier, amount in tiers.items():
                if amount < 0 or amount.as_tuple().exponent < -2:  # type: ignore[operator]
                    raise ValueError(
                        f"limits.{grade}.{tier}: {amount} must be a yuan amount >= 0 with at "
                        "most two decimals"
                    )
        return self


class PolicyVersion(_File):
    version: str = Field(min_length=1, max_length=32)
    effective_from: date
    effective_to: date | None = None  # inclusive; None: open-ended
    rules: list[PolicyRule] = Field(default_factory=list)

    @model_validator(mode="after")
    def _range(self) -> PolicyVersion:
        if self.effective_to is not None and self.effective_to < self.effective_from:
            raise ValueError(
                f"effective_to {self.effective_to} is before effective_from {self.effective_from}"
            )
        seen: set[tuple[str, str]] = set()
        for rule in self.rules:
            if (rule.name, rule.category) in seen:
                raise ValueError(f"rule {rule.name} appears twice for {rule.category}")
            seen.add((rule.name, rule.category))
        return self

    def covers(self, day: date) -> bool:
        return self.effective_from <= day and (
            self.effective_to is None or day <= self.effective_to
        )


class PolicyFile(_File):
    """A policy file as written (YAML)."""

    default_tier: str
    default_grade: str | None = None  # the grade of an employee whose master data has none
    on_breach: BreachAction = BreachAction.FLAG
    city_tiers: dict[str, list[str]] = Field(min_length=1)
    versions: list[PolicyVersion] = Field(min_length=1)

    @model_validator(mode="after")
    def _consistent(self) -> PolicyFile:
        if self.default_tier not in self.city_tiers:
            raise ValueError(f"default_tier {self.default_tier!r} is not a tier of city_tiers")
        where: dict[str, str] = {}
        for tier, cities in self.city_tiers.items():
            for city in cities:
                if city in where:
                    raise ValueError(f"city {city} is in both {where[city]} and {tier}")
                where[city] = tier
        ordered = sorted(self.versions, key=lambda v: v.effective_from)
        names = [v.version for v in ordered]
        if len(set(names)) != len(names):
            raise ValueError("two versions have the same name")
        for earlier, later in zip(ordered, ordered[1:], strict=False):
            if earlier.effective_to is None or earlier.effective_to >= later.effective_from:
                raise ValueError(
                    f"versions {earlier.version} and {later.version} overlap: "
                    f"{later.version} starts {later.effective_from}"
                )
        for i, version in enumerate(self.versions):
            for j, rule in enumerate(version.rules):
                for grade, tiers in rule.limits.items():
                    for tier in tiers:
                        if tier not in self.city_tiers:
                            raise ValueError(
                                f"versions[{i}].rules[{j}].limits.{grade}: unknown tier {tier!r}"
                            )
        return self


class PolicyFileError(DomainError):
    """A policy file that cannot be used; `errors` holds one line per problem, with its path.
    Over HTTP a 503: the hub's configuration, not the request, is at fault."""

    status = 503
    title = "Expense policy unusable"

    def __init__(self, source: str, errors: list[str]) -> None:
        super().__init__("policy_file", f"{source}: " + "; ".join(errors))
        self.source = source
        self.errors = errors
        self.extensions = {"errors": errors}


def _path(loc: tuple[Any, ...]) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def parse_policy(content: str, source: str = "policy") -> ExpensePolicy:
    """The policy in YAML `content`, or PolicyFileError naming each bad place."""
    try:
        raw = yaml.safe_load(content)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}: " if mark is not None else ""
        raise PolicyFileError(
            source, [f"{where}not valid YAML ({exc.__class__.__name__})"]
        ) from None
    if not isinstance(raw, dict):
        raise PolicyFileError(source, ["the file must be a mapping with versions and city_tiers"])
    try:
        parsed = PolicyFile.model_validate(raw)
    except ValidationError as exc:
        errors = []
        for error in exc.errors():
            where = _path(tuple(error["loc"]))
            message = str(error["msg"]).removeprefix("Value error, ")
            errors.append(f"{where}: {message}" if where else message)
        raise PolicyFileError(source, errors) from None
    return ExpensePolicy(parsed)


def read_policy(path: Path) -> ExpensePolicy:
    try:
        content = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise PolicyFileError(str(path), [f"cannot read: {exc.__class__.__name__}"]) from None
    return parse_policy(content, str(path))


@dataclass(frozen=True, slots=True)
class PolicyLine:
    """What the policy looks at in a claim line; `index` is its place in `lines`."""

    index: int
    category: str
    amount_fen: int
    expense_date: date
    city: str | None = None
    nights: int | None = None
    days: int | None = None


@dataclass(frozen=True, slots=True)
class LineCheck:
    """One line weighed against one rule: the limit it had, and whether it went above it."""

    line: int
    rule: str
    label: str
    policy_version: str
    grade: str
    tier: str
    limit_fen: int
    amount_fen: int
    action: BreachAction

    @property
    def breached(self) -> bool:
        return self.amount_fen > self.limit_fen

    def as_record(self) -> dict[str, Any]:
        return {
            "line": self.line,
            "rule": self.rule,
            "label": self.label,
            "policy_version": self.policy_version,
            "grade": self.grade,
            "tier": self.tier,
            "limit_fen": self.limit_fen,
            "amount_fen": self.amount_fen,
            "action": self.action.value,
        }


class PolicyBlocked(InvalidInput):
    """A line above a `block` rule's limit; the claim was refused and nothing written."""

    title = "Expense policy breached"

    def __init__(self, check: LineCheck) -> None:
        super().__init__(
            f"lines[{check.line}].amount",
            f"{fen_to_yuan(check.amount_fen)} 元 is above the limit of "
            f"{fen_to_yuan(check.limit_fen)} 元 set by rule {check.rule} (policy "
            f"{check.policy_version}, grade {check.grade}, {check.tier})",
        )
        self.extensions = {"policy": check.as_record()}


class ExpensePolicy:
    """A parsed policy, ready to check lines: limits in fen, cities by name."""

    def __init__(self, parsed: PolicyFile) -> None:
        self.file = parsed
        self._tier_of = {
            city: tier for tier, cities in parsed.city_tiers.items() for city in cities
        }
        self._versions = sorted(parsed.versions, key=lambda v: v.effective_from)
        self._limits: dict[tuple[str, str, str, str], int] = {}
        for version in parsed.versions:
            for rule in version.rules:
                for grade, tiers in rule.limits.items():
                    for tier, amount in tiers.items():
                        key = (version.version, rule.name, grade, tier)
                        self._limits[key] = yuan_to_fen(amount)

    def tier_of(self, city: str | None) -> str:
        """The tier of `city`; a city the table does not list is in the default tier."""
        return self._tier_of.get((city or "").strip(), self.file.default_tier)

    def version_on(self, day: date) -> PolicyVersion | None:
        """The version in force on `day`, if any."""
        for version in self._versions:
            if version.covers(day):
                return version
        return None

    def _limit(self, version: str, rule: str, grade: str, tier: str) -> int | None:
        found = self._limits.get((version, rule, grade, tier))
        return found if found is not None else self._limits.get((version, rule, ANY_GRADE, tier))

    def check(self, grade: str | None, lines: list[PolicyLine]) -> list[LineCheck]:
        """Each line weighed against the rules of its category in the version in force on its
        expense date. A line without the `nights` or `days` a rule counts is not checked
        against it, or is refused (InvalidInput naming the field) where the rule requires it.
        Returns every check made, breached or not."""
        grade = grade or self.file.default_grade or ""
        checks: list[LineCheck] = []
        for line in lines:
            version = self.version_on(line.expense_date)
            if version is None:
                continue
            tier = self.tier_of(line.city)
            for rule in version.rules:
                if rule.category != line.category:
                    continue
                unit = self._limit(version.version, rule.name, grade, tier)
                quantity = _quantity(rule, line)
                if unit is None or quantity is None:
                    continue  # no limit for this grade and tier, or nothing to count
                checks.append(
                    LineCheck(
                        line.index,
                        rule.name,
                        rule.label,
                        version.version,
                        grade,
                        tier,
                        unit * quantity,
                        line.amount_fen,
                        rule.on_breach or self.file.on_breach,
                    )
                )
        return checks

    def describe(self) -> dict[str, Any]:
        """The policy as JSON-ready data, amounts as yuan strings."""
        return self.file.model_dump(mode="json")


def _quantity(rule: PolicyRule, line: PolicyLine) -> int | None:
    """How many nights or days the rule counts for the line; None: the line gives none, so
    the rule does not apply to it (refused instead where the rule requires the quantity)."""
    if rule.per is RuleUnit.LINE:
        return 1
    field = "nights" if rule.per is RuleUnit.NIGHT else "days"
    value = line.nights if rule.per is RuleUnit.NIGHT else line.days
    if value is None and rule.quantity_required:
        raise InvalidInput(
            f"lines[{line.index}].{field}",
            f"a {line.category} line needs {field}: the policy limits it per {rule.per.value} "
            f"(rule {rule.name})",
        )
    return value


def first_block(checks: list[LineCheck]) -> LineCheck | None:
    """The first breach of a `block` rule, if any."""
    return next((c for c in checks if c.breached and c.action is BreachAction.BLOCK), None)
