"""Bulk INSERTs and key lookups through the database driver, for the master import.

SQLAlchemy Core's insert of a list of dicts runs every column's bind processing for
every row (enum checks, UTC conversion of datetimes, dates as text on SQLite), and an
`IN` of 2,000 keys is re-rendered parameter by parameter on each execution: at a master
import's five inserts and three lookups per batch that cost more than the database work.
Here rows are plain tuples. Only columns whose type has a bind processor get one, run
once per distinct value (a batch has a handful of enum values and due dates), and
constants such as the batch's timestamp are processed once by the caller (`bind`), so
the stored values are exactly those Core would store.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from itertools import chain
from typing import Any

from sqlalchemy import Column, Connection, FromClause, Table
from sqlalchemy.sql.elements import KeyedColumnElement

_CACHE_LIMIT = 10_000
LOOKUP_CHUNK = 1000  # keys per lookup statement, well below both databases' limits


def _mark(conn: Connection) -> str:
    return "?" if conn.dialect.paramstyle == "qmark" else "%s"


class DriverInsert:
    """`INSERT INTO table (columns) VALUES (...)` for a list of tuples in column order.

    Columns named in `prebound` take values already passed through `bind`; every other
    column with a bind processor is processed here, once per distinct value.
    """

    def __init__(
        self,
        conn: Connection,
        table: FromClause,
        columns: Sequence[str],
        prebound: Collection[str] = (),
    ) -> None:
        assert isinstance(table, Table)
        self.table = table
        self.dialect = dialect = conn.dialect
        quote = dialect.identifier_preparer.quote
        mark = _mark(conn)
        target = (
            f"{dialect.identifier_preparer.format_table(table)} ({', '.join(map(quote, columns))})"
        )
        row = f"({', '.join([mark] * len(columns))})"
        self.sql = f"INSERT INTO {target} VALUES {row}"
        # SQLite: many rows per INSERT. Each execution of a statement costs SQLite its
        # cursors, a statement journal and constraint bookkeeping; one per row made up a
        # third of the insert work. 999 is the lowest SQLITE_MAX_VARIABLE_NUMBER in use.
        self.per_statement = max(1, 999 // len(columns))
        self.multi_sql = f"INSERT INTO {target} VALUES {', '.join([row] * self.per_statement)}"
        # PostgreSQL: COPY, several times cheaper than even a pipelined executemany.
        self.copy = f"COPY {target} FROM STDIN" if dialect.driver == "psycopg" else None
        self.procs: list[tuple[int, Callable[[Any], Any]]] = []
        for i, name in enumerate(columns):
            if name in prebound:
                continue
            proc = table.c[name].type._cached_bind_processor(dialect)
            if proc is not None:
                self.procs.append((i, proc))
        self.cache: dict[tuple[int, Any], Any] = {}

    def bind(self, column: str, value: Any) -> Any:
        """`value` as the driver must receive it for `column` (for prebound columns)."""
        proc = self.table.c[column].type._cached_bind_processor(self.dialect)
        return value if proc is None or value is None else proc(value)

    def binder(self, column: str) -> dict[Any, Any]:
        """value -> `bind(column, value)`, each distinct value processed once.

        For prebound columns of few distinct values (enums, due dates): indexing a dict
        is the cheapest per-row conversion Python has.
        """
        return _Bound(lambda v: self.bind(column, v))

    def execute(self, conn: Connection, rows: Sequence[tuple[Any, ...]]) -> None:
        if not rows:
            return
        params: Sequence[tuple[Any, ...]] = rows
        if self.procs:
            cache = self.cache
            if len(cache) > _CACHE_LIMIT:
                cache.clear()
            converted = []
            for row in rows:
                values = list(row)
                for i, proc in self.procs:
                    v = values[i]
                    if v is None:
                        continue
                    key = (i, v)
                    found = cache.get(key)
                    if found is None:
                        found = cache[key] = proc(v)
                    values[i] = found
                converted.append(tuple(values))
            params = converted
        if self.copy is None:
            per = self.per_statement
            whole = len(params) - len(params) % per if per > 1 else 0
            for start in range(0, whole, per):
                chunk = params[start : start + per]
                conn.exec_driver_sql(self.multi_sql, tuple(chain.from_iterable(chunk)))
            if whole < len(params):
                conn.exec_driver_sql(self.sql, params[whole:])
            return
        # The driver's connection, inside the transaction SQLAlchemy has begun on it.
        with conn.connection.cursor() as cursor, cursor.copy(self.copy) as copy:  # type: ignore[attr-defined]
            for row in params:
                copy.write_row(row)


class _Bound(dict[Any, Any]):
    def __init__(self, convert: Callable[[Any], Any]) -> None:
        super().__init__()
        self.convert = convert

    def __missing__(self, value: Any) -> Any:
        if len(self) > _CACHE_LIMIT:
            self.clear()
        bound = self[value] = self.convert(value)
        return bound


def reserve_ids(conn: Connection, table: FromClause, count: int) -> Sequence[int]:
    """`count` fresh primary keys for `table`, for the caller to insert with.

    Known ids spare a lookup by natural key after the insert. PostgreSQL: drawn from the
    column's sequence. SQLite: the ids after the largest one, which is what SQLite itself
    would assign (no table here is AUTOINCREMENT); this runs inside a write transaction
    (BEGIN IMMEDIATE, see store/db.py), so no other connection can insert in between, and
    if one ever did the primary key would refuse the insert rather than mix rows up.
    """
    assert isinstance(table, Table)
    if count <= 0:
        return ()
    name = table.name
    if conn.dialect.name == "postgresql":
        sql = f"SELECT nextval(pg_get_serial_sequence('{name}', 'id')) FROM generate_series(1, %s)"
        return [r[0] for r in conn.exec_driver_sql(sql, (count,))]
    quoted = conn.dialect.identifier_preparer.format_table(table)
    top = conn.exec_driver_sql(f"SELECT max(id) FROM {quoted}").scalar() or 0
    return range(top + 1, top + count + 1)


def lookup(
    conn: Connection,
    key: KeyedColumnElement[Any],
    values: Sequence[KeyedColumnElement[Any]],
    tenant_id: int,
    keys: Sequence[Any],
    *,
    join: str = "",
) -> list[tuple[Any, ...]]:
    """(key, *values) rows of the tenant's rows whose `key` is one of `keys`.

    The columns are of plain types (strings, integers), read back as the driver gives
    them; `key`'s table must have `tenant_id`. `join` is SQL after the FROM table, for
    values from a joined table.
    """
    assert isinstance(key, Column) and all(isinstance(c, Column) for c in values)
    table = key.table
    assert isinstance(table, Table)
    prep = conn.dialect.identifier_preparer
    mark = _mark(conn)
    name = prep.format_table(table)
    where = prep.format_column(key, use_table=True)
    wanted = ", ".join(prep.format_column(c, use_table=True) for c in (key, *values))
    head = f"SELECT {wanted} FROM {name} {join} WHERE {name}.tenant_id = {mark} AND {where} IN "
    out: list[tuple[Any, ...]] = []
    for start in range(0, len(keys), LOOKUP_CHUNK):
        chunk = keys[start : start + LOOKUP_CHUNK]
        sql = f"{head}({', '.join([mark] * len(chunk))})"
        out.extend(tuple(r) for r in conn.exec_driver_sql(sql, (tenant_id, *chunk)).all())
    return out
