"""Row ids that arrive from outside (URLs, forms, socket events), checked before any query.

A number too large for the column is not a row that exists: PostgreSQL refuses it with an error
rather than finding nothing, so ids are checked here and answered as unknown.
"""

from __future__ import annotations

MAX_ID = 2**31 - 1  # an INTEGER primary key
MAX_BIG_ID = 2**63 - 1  # a BIGINT primary key (messages, events, emails)


def is_id(value: object, *, big: bool = False) -> bool:
    """Whether `value` can be the id of a row: a whole number from 1 to the column's largest."""
    if not isinstance(value, int) or isinstance(value, bool):
        return False
    return 0 < value <= (MAX_BIG_ID if big else MAX_ID)
