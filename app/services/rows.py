"""Many rows in one statement: a multi-row INSERT built from unsaved objects or plain values.

Tortoise's `bulk_create` sends one execute per row (pipelined, but each row is still a
separate bind and execute on the server) and cannot say which rows a conflict skipped. The
group commit of registrations writes every table of a batch with one statement instead, and
learns the new ids (and the skipped rows) from `RETURNING`, which SQLite (3.35 and newer) and
PostgreSQL both understand. Values go through each field's own `to_db_value`, as Tortoise's
single inserts do, so the stored rows are the same. `insert_rows` takes the values as plain
tuples instead, for callers that write many rows and do not need the objects.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from tortoise import timezone
from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.fields import Field
from tortoise.models import Model

# Well under the bind-parameter limits of both databases (32,766 and 32,767).
MAX_PARAMETERS = 30_000


def _columns(model: type[Model]) -> list[tuple[str, str]]:
    """(field name, column name) of every column an insert writes."""
    meta = model._meta
    return [
        (name, column)
        for name, column in meta.fields_db_projection.items()
        if not meta.fields_map[name].generated
    ]


def placeholders(connection: BaseDBAsyncClient, start: int, count: int) -> str:
    """`count` bind parameters for the connection's dialect, numbered after `start`."""
    return marks(connection.capabilities.dialect, start, count)


async def insert_many(
    connection: BaseDBAsyncClient,
    objects: Sequence[Model],
    *,
    returning: Sequence[str] = ("id",),
    ignore_conflicts: bool = False,
) -> list[dict[str, Any]]:
    """Insert unsaved objects of one model; the `returning` columns of the rows inserted.

    With `ignore_conflicts`, a row that would break a unique constraint is skipped and has
    no entry in the answer (whose order is not guaranteed: match rows by a unique column).
    """
    if not objects:
        return []
    model = type(objects[0])
    columns = _columns(model)
    fields = model._meta.fields_map
    per_statement = max(1, MAX_PARAMETERS // len(columns))
    table = model._meta.db_table
    names = ", ".join(f'"{column}"' for _, column in columns)
    answer: list[dict[str, Any]] = []
    for first in range(0, len(objects), per_statement):
        chunk = objects[first : first + per_statement]
        values: list[Any] = []
        groups = []
        for obj in chunk:
            groups.append(f"({placeholders(connection, len(values), len(columns))})")
            values.extend(fields[name].to_db_value(getattr(obj, name), obj) for name, _ in columns)
        # Table and column names come from the model's metadata, values only as parameters.
        sql = f'INSERT INTO "{table}" ({names}) VALUES {", ".join(groups)}'  # noqa: S608
        if ignore_conflicts:
            sql += " ON CONFLICT DO NOTHING"
        if returning:
            sql += " RETURNING " + ", ".join(f'"{column}"' for column in returning)
            answer.extend(await connection.execute_query_dict(sql, values))
        else:
            await connection.execute_query(sql, values)
    return answer


# --- rows given as plain values ---------------------------------------------------------------


@dataclass(frozen=True)
class _Shape:
    """How the rows of one model with a given set of named fields become an INSERT."""

    names: str  # the quoted column list
    width: int
    converters: tuple[Field[Any], ...]  # the named fields, in order
    fillers: tuple[Callable[[], Any], ...]  # a database value for each other column
    pg_types: tuple[str, ...]  # each column's PostgreSQL type, named fields first


def _filler(model: type[Model], field: Field[Any]) -> Callable[[], Any]:
    """A database value for a column the caller left out, as the ORM would have stored it."""
    if getattr(field, "auto_now", False) or getattr(field, "auto_now_add", False):
        return timezone.localtime
    default = field.default
    if callable(default):
        return lambda: field.to_db_value(default(), model)
    if default is not None:
        constant = field.to_db_value(default, model)
        return lambda: constant
    if field.null:
        return lambda: None
    raise ValueError(f"{model.__name__}.{field.model_field_name} has no default: give a value")


@lru_cache(maxsize=64)
def _shape(model: type[Model], names: tuple[str, ...]) -> _Shape:
    columns = dict(_columns(model))
    unknown = [name for name in names if name not in columns]
    if unknown:
        raise ValueError(f"{model.__name__} has no column field {', '.join(unknown)}")
    rest = [name for name in columns if name not in names]
    fields = model._meta.fields_map
    return _Shape(
        names=", ".join(f'"{columns[name]}"' for name in (*names, *rest)),
        width=len(columns),
        converters=tuple(fields[name] for name in names),
        fillers=tuple(_filler(model, fields[name]) for name in rest),
        pg_types=tuple(
            str(fields[name].get_for_dialect("postgres", "SQL_TYPE")) for name in (*names, *rest)
        ),
    )


Statement = tuple[str, list[Any]]


def marks(dialect: str, start: int, count: int) -> str:
    """`count` bind parameters for a dialect, numbered after `start`."""
    if dialect == "postgres":
        return ", ".join(f"${start + i + 1}" for i in range(count))
    return ", ".join("?" * count)


def any_of(
    dialect: str, start: int, values: Sequence[Any], *, sql_type: str = ""
) -> tuple[str, list[Any]]:
    """`column <this>` matching any of `values`, and its parameters, numbered after `start`.

    PostgreSQL gets one array parameter (of `sql_type`, when the column's type does not tell),
    so the statement reads the same whatever the number of values and its prepared form is
    reused; SQLite a list of parameters.
    """
    if dialect == "postgres":
        cast = f"::{sql_type}[]" if sql_type else ""
        return f"= ANY(${start + 1}{cast})", [list(values)]
    return f"IN ({marks(dialect, start, len(values))})", list(values)


def insert_statements(
    dialect: str,
    model: type[Model],
    names: Sequence[str],
    values: Sequence[Sequence[Any]],
    *,
    returning: Sequence[str] = ("id",),
    ignore_conflicts: bool = False,
    on_conflict: str = "",
) -> list[Statement]:
    """The statements (SQL and parameters) that `insert_rows` runs, for callers that run them.

    `on_conflict` is an upsert's own `ON CONFLICT (...) DO UPDATE ...` clause (constant SQL).
    """
    if not values:
        return []
    shape = _shape(model, tuple(names))
    table = model._meta.db_table
    suffix = " ON CONFLICT DO NOTHING" if ignore_conflicts else ""
    if on_conflict:
        suffix = " " + on_conflict
    if returning:
        suffix += " RETURNING " + ", ".join(f'"{column}"' for column in returning)
    if dialect == "postgres":
        # One array per column: the statement reads the same for any number of rows, so
        # PostgreSQL parses and plans it once per connection, and no parameter limit applies.
        columns: list[list[Any]] = [[] for _ in range(shape.width)]
        for row in values:
            for column, value in zip(columns, _db_values(shape, model, row), strict=True):
                column.append(value)
        arrays = ", ".join(f"${i + 1}::{kind}[]" for i, kind in enumerate(shape.pg_types))
        sql = f'INSERT INTO "{table}" ({shape.names}) SELECT * FROM unnest({arrays}){suffix}'  # noqa: S608
        return [(sql, columns)]
    statements: list[Statement] = []
    per_statement = max(1, MAX_PARAMETERS // shape.width)
    for first in range(0, len(values), per_statement):
        flat: list[Any] = []
        groups = []
        for row in values[first : first + per_statement]:
            groups.append(f"({marks(dialect, len(flat), shape.width)})")
            flat.extend(_db_values(shape, model, row))
        # Table and column names come from the model's metadata, values only as parameters.
        sql = f'INSERT INTO "{table}" ({shape.names}) VALUES {", ".join(groups)}{suffix}'  # noqa: S608
        statements.append((sql, flat))
    return statements


async def insert_rows(
    connection: BaseDBAsyncClient,
    model: type[Model],
    names: Sequence[str],
    values: Sequence[Sequence[Any]],
    *,
    returning: Sequence[str] = ("id",),
    ignore_conflicts: bool = False,
) -> list[dict[str, Any]]:
    """Insert rows given as tuples of the named fields' values, without model objects.

    Every other column gets the model's default (now for `auto_now` fields), and each value
    goes through its field's `to_db_value`: the stored rows are those `insert_many` would
    store from model objects, at a fraction of the cost. The answer is as `insert_many`'s.
    """
    answer: list[dict[str, Any]] = []
    statements = insert_statements(
        connection.capabilities.dialect,
        model,
        names,
        values,
        returning=returning,
        ignore_conflicts=ignore_conflicts,
    )
    for sql, parameters in statements:
        if returning:
            answer.extend(await connection.execute_query_dict(sql, parameters))
        else:
            await connection.execute_query(sql, parameters)
    return answer


def _db_values(shape: _Shape, model: type[Model], row: Sequence[Any]) -> list[Any]:
    """One row's database values: the named fields converted, then every other column."""
    if len(row) != len(shape.converters):
        raise ValueError(f"{len(row)} values for {len(shape.converters)} fields")
    converted = [
        field.to_db_value(value, model) for field, value in zip(shape.converters, row, strict=True)
    ]
    converted.extend(fill() for fill in shape.fillers)
    return converted
