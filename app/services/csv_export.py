"""CSV files made to be opened in a spreadsheet: formulas neutralised, accents kept.

A spreadsheet runs a cell starting with = + - @ (and, in some, a tab or carriage return) as a
formula, so a name typed into a form could make a spreadsheet call out or run a command when
someone opens the export. Text cells starting with one of those get a leading apostrophe, which
spreadsheets show as plain text. Numbers are written as numbers: a negative number is no formula.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from datetime import date, datetime, time
from decimal import Decimal
from typing import Final

FORMULA_STARTS: Final = ("=", "+", "-", "@", "\t", "\r")
# Spreadsheets find the encoding of a CSV file by this mark; without it accents come out garbled.
BOM: Final = "\ufeff"


def safe_cell(value: object) -> str:
    """A cell's text: None empty, numbers as they are, text that a spreadsheet would run escaped."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float | Decimal):
        return str(value)
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    text = str(value)
    if text.startswith(FORMULA_STARTS):
        return "'" + text
    return text


def csv_bytes(header: list[str], rows: Iterable[Sequence[object]]) -> bytes:
    """A whole CSV file (UTF-8 with a byte order mark, CRLF line ends) with every cell made safe."""
    buffer = io.StringIO()
    buffer.write(BOM)
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow([safe_cell(name) for name in header])
    for row in rows:
        writer.writerow([safe_cell(cell) for cell in row])
    return buffer.getvalue().encode("utf-8")
