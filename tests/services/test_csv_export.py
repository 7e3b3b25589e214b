"""CSV files for spreadsheets: formulas neutralised, numbers kept as numbers, accents readable."""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from app.services.csv_export import csv_bytes, safe_cell


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ('=HYPERLINK("http://evil.example","x")', '\'=HYPERLINK("http://evil.example","x")'),
        ("+1+cmd|' /C calc'!A0", "'+1+cmd|' /C calc'!A0"),
        ("-2+3", "'-2+3"),
        ("@SUM(A1:A2)", "'@SUM(A1:A2)"),
        ("\t=1+1", "'\t=1+1"),
        ("\r=1+1", "'\r=1+1"),
        ("-5", "'-5"),  # text that looks like a number is still text someone typed
        ("Ann = Bob", "Ann = Bob"),
        ("Zoë Müller", "Zoë Müller"),
        ("", ""),
        (None, ""),
        (True, "true"),
        (False, "false"),
        (-5, "-5"),
        (-2.5, "-2.5"),
        (Decimal("-0.25"), "-0.25"),
        (date(2025, 3, 31), "2025-03-31"),
        (datetime(2025, 3, 31, 14, 5, tzinfo=UTC), "2025-03-31T14:05:00+00:00"),
    ],
)
def test_safe_cell(value: object, expected: str) -> None:
    assert safe_cell(value) == expected


def test_csv_bytes_starts_with_a_bom_and_reads_back() -> None:
    body = csv_bytes(
        ["Name", "=Score"],
        [('Zoë, "the" analyst', 12), ("=cmd|'/C calc'!A0", -3), ("line\nbreak", None)],
    )
    assert body.startswith(b"\xef\xbb\xbf")
    assert b"\r\n" in body
    text = body.decode("utf-8-sig")
    rows = list(csv.reader(io.StringIO(text, newline="")))
    assert rows == [
        ["Name", "'=Score"],
        ['Zoë, "the" analyst', "12"],
        ["'=cmd|'/C calc'!A0", "-3"],
        ["line\nbreak", ""],
    ]


def test_csv_bytes_with_no_rows_is_the_header() -> None:
    assert csv_bytes(["A", "B"], []) == "\ufeffA,B\r\n".encode()
