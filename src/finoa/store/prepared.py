"""Prepared statements for the hot path.

A `Prepared` wraps a SQLAlchemy Core statement, compiles it once per dialect and then runs
it straight on the driver's cursor of the unit of work's connection, inside the same
transaction. Values go through the column types' own bind processors (JSON, dates, ...) and
result values through their result processors, so what is stored and read back is exactly
what SQLAlchemy itself would store and read. What is skipped is SQLAlchemy's per-call work
(cache keys, execution contexts, result objects), which costs far more than the database
does for the small statements a claim's life is made of.

Only statements with plain bound parameters are prepared (no expanding IN lists).
"""

from __future__ import annotations

from collections import namedtuple
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Insert
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql.expression import ClauseElement

_REQUIRED = object()


@dataclass(frozen=True)
class _Plan:
    sql: str
    names: tuple[str, ...]  # bound parameter names, in the order the SQL uses them
    positional: bool
    processors: tuple[Callable[[Any], Any] | None, ...]
    defaults: tuple[Any, ...]  # value when a parameter is not given; _REQUIRED if it must be
    row_type: Any  # namedtuple class of the result columns, or None
    result_types: tuple[Any, ...]  # the result columns' types, as the dialect implements them
    # result processors need the driver's column type codes: made on the first result
    result_processors: list[tuple[Callable[[Any], Any] | None, ...]]


class Prepared:
    """`Prepared(stmt).run(conn, params)`, `.first(conn, params)`, `.run_many(conn, rows)`.

    An INSERT without values is compiled for the keys of the rows it is given (every row of
    one `run_many` has the same keys).
    """

    def __init__(self, statement: ClauseElement) -> None:
        self.statement = statement
        self._by_keys = isinstance(statement, Insert)
        self._plans: dict[tuple[str, tuple[str, ...]], _Plan] = {}

    def _plan(self, dialect: Dialect, values: Mapping[str, Any]) -> _Plan:
        keys = tuple(values) if self._by_keys else ()
        plan = self._plans.get((dialect.name, keys))
        if plan is None:
            plan = self._plans[(dialect.name, keys)] = self._compile(dialect, keys)
        return plan

    def _compile(self, dialect: Dialect, keys: tuple[str, ...]) -> _Plan:
        compiled: Any = self.statement.compile(dialect=dialect, column_keys=list(keys) or None)
        binds = compiled.binds
        names = tuple(compiled.positiontup or ()) if compiled.positional else tuple(binds)
        processors = tuple(
            binds[name].type.dialect_impl(dialect).bind_processor(dialect) for name in names
        )
        defaults = tuple(self._default(name, binds[name], keys) for name in names)
        row_type: Any = None
        result_types: tuple[Any, ...] = ()
        # a SELECT's columns, or those of an INSERT/UPDATE ... RETURNING
        selected = getattr(self.statement, "selected_columns", None)
        if selected is None:
            selected = getattr(self.statement, "exported_columns", None)
        columns = list(selected) if selected is not None else []
        if columns:
            row_type = _row_type([c.key for c in columns])
            result_types = tuple(c.type.dialect_impl(dialect) for c in columns)
        return _Plan(
            sql=compiled.string,
            names=names,
            positional=bool(compiled.positional),
            processors=processors,
            defaults=defaults,
            row_type=row_type,
            result_types=result_types,
            result_processors=[],
        )

    def _default(self, name: str, bind: Any, keys: tuple[str, ...]) -> Any:
        if bind.required:
            return _REQUIRED
        table = getattr(self.statement, "table", None) if self._by_keys else None
        if table is not None and name in table.c and name not in keys:
            default = table.c[name].default  # a column default SQLAlchemy would fill in
            if default is not None:
                if not default.is_scalar:
                    raise ValueError(f"{name}: only scalar column defaults can be prepared")
                return default.arg
        return bind.effective_value  # a literal of the statement, e.g. LIMIT 1

    @staticmethod
    def _params(plan: _Plan, values: Mapping[str, Any]) -> Any:
        bound = []
        for name, proc, default in zip(plan.names, plan.processors, plan.defaults, strict=True):
            value = values.get(name, default)
            if value is _REQUIRED:
                raise KeyError(f"no value for the parameter {name!r}")
            bound.append(proc(value) if proc is not None else value)
        return tuple(bound) if plan.positional else dict(zip(plan.names, bound, strict=True))

    def run(self, conn: Connection, values: Mapping[str, Any] | None = None) -> Any:
        """Execute once; the driver's cursor (for `rowcount`)."""
        values = values or {}
        plan = self._plan(conn.dialect, values)
        cursor = _cursor(conn)
        _execute(conn, cursor.execute, plan.sql, self._params(plan, values))
        return cursor

    def run_many(self, conn: Connection, rows: Sequence[Mapping[str, Any]]) -> None:
        """Execute for every row (one driver `executemany`)."""
        if not rows:
            return
        plan = self._plan(conn.dialect, rows[0])
        params = [self._params(plan, row) for row in rows]
        _execute(conn, _cursor(conn).executemany, plan.sql, params)

    def all(self, conn: Connection, values: Mapping[str, Any] | None = None) -> list[Any]:
        """The result rows, as named tuples with SQLAlchemy's own value conversions."""
        values = values or {}
        plan = self._plan(conn.dialect, values)
        cursor = _cursor(conn)
        _execute(conn, cursor.execute, plan.sql, self._params(plan, values))
        processors = _result_processors(plan, conn.dialect, cursor)
        return [_row(plan, processors, raw) for raw in cursor.fetchall()]

    def first(self, conn: Connection, values: Mapping[str, Any] | None = None) -> Any:
        """The first result row or None."""
        values = values or {}
        plan = self._plan(conn.dialect, values)
        cursor = _cursor(conn)
        _execute(conn, cursor.execute, plan.sql, self._params(plan, values))
        raw = cursor.fetchone()
        if raw is None:
            cursor.close()
            return None
        row = _row(plan, _result_processors(plan, conn.dialect, cursor), raw)
        cursor.close()
        return row


def _result_processors(
    plan: _Plan, dialect: Dialect, cursor: Any
) -> tuple[Callable[[Any], Any] | None, ...]:
    if not plan.result_processors:
        plan.result_processors.append(
            tuple(
                kind.result_processor(dialect, column[1])
                for kind, column in zip(plan.result_types, cursor.description, strict=True)
            )
        )
    return plan.result_processors[0]


def _row(
    plan: _Plan, processors: tuple[Callable[[Any], Any] | None, ...], raw: Sequence[Any]
) -> Any:
    return plan.row_type._make(
        proc(value) if proc is not None else value
        for value, proc in zip(raw, processors, strict=True)
    )


def _row_type(names: list[str]) -> Any:
    """A light row class: fields by position, by column name and, like SQLAlchemy's rows,
    as a mapping (`row._mapping`)."""
    base: Any = namedtuple("Row", names, rename=True)  # type: ignore[misc]  # noqa: PYI024
    return type("Row", (base,), {"__slots__": (), "_mapping": property(base._asdict)})


def run_sql(conn: Connection, sql: str) -> None:
    """Run a fixed statement without parameters (e.g. SAVEPOINT) on the driver's cursor."""
    _execute(conn, _cursor(conn).execute, sql, ())


def _execute(conn: Connection, method: Callable[[str, Any], Any], sql: str, params: Any) -> None:
    """Run on the driver; its errors become SQLAlchemy's (IntegrityError, ...) as usual."""
    try:
        method(sql, params)
    except conn.dialect.loaded_dbapi.Error as exc:
        raise DBAPIError.instance(sql, params, exc, conn.dialect.loaded_dbapi.Error) from exc


def _cursor(conn: Connection) -> Any:
    """A cursor of the connection's driver connection, inside its current transaction."""
    return conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
