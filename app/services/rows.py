"""Many rows in one statement: a multi-row INSERT built from unsaved model objects.

Tortoise's `bulk_create` sends one execute per row (pipelined, but each row is still a
separate bind and execute on the server) and cannot say which rows a conflict skipped. The
group commit of registrations writes every table of a batch with one statement instead, and
learns the new ids (and the skipped rows) from `RETURNING`, which SQLite (3.35 and newer) and
PostgreSQL both understand. Values go through each field's own `to_db_value`, as Tortoise's
single inserts do, so the stored rows are the same.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tortoise.backends.base.client import BaseDBAsyncClient
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
    if connection.capabilities.dialect == "postgres":
        return ", ".join(f"${start + i + 1}" for i in range(count))
    return ", ".join("?" * count)


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
