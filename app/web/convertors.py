"""Path convertors for row ids: `{name:id}` and `{name:bigid}`.

A number too large for its column becomes 0, an id no row has, so the page answers 404 as for any
other row that does not exist (the database would otherwise refuse the query with an error).
"""

from __future__ import annotations

from starlette.convertors import Convertor, register_url_convertor

from app.services.ids import MAX_BIG_ID, MAX_ID


class IdConvertor(Convertor[int]):
    """A positive INTEGER id (0 for a number past the column's range)."""

    regex = "[0-9]{1,10}"
    largest = MAX_ID

    def convert(self, value: str) -> int:
        """The id as a number; 0 (no row) for a value past the column's range."""
        number = int(value)
        return number if number <= self.largest else 0

    def to_string(self, value: int) -> str:
        """The id as it stands in a path."""
        return str(int(value))


class BigIdConvertor(IdConvertor):
    """A positive BIGINT id."""

    regex = "[0-9]{1,19}"
    largest = MAX_BIG_ID


def register() -> None:
    """Make `id` and `bigid` known to route paths (before the routes are built)."""
    register_url_convertor("id", IdConvertor())
    register_url_convertor("bigid", BigIdConvertor())
