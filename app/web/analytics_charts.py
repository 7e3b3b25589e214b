"""The pieces the analytics pages are made of: tables, charts, figures, and how numbers read.

Each chart has one table (the numbers in the page's table and in its CSV file) and one
description for static/js/charts.js (`chart_spec`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

LABEL_MAX = 40
KIND_LABELS = {
    "poll": "Poll",
    "quiz": "Quiz",
    "nps": "NPS",
    "rating": "Rating",
    "question": "Question",
    "offer": "Offer",
    "download": "Download",
    "link": "Link",
}


@dataclass(frozen=True)
class Table:
    """A header and rows: one chart's numbers, on the page and in its CSV file."""

    header: list[str]
    rows: list[list[object]]


@dataclass(frozen=True)
class Marker:
    """An interaction's place on the drop-off chart, numbered as in the list under it."""

    number: int
    at: str
    kind: str
    title: str


@dataclass(frozen=True)
class ChartView:
    """A chart: its description for the browser, its table and the link to its CSV file."""

    name: str
    title: str
    summary: str
    spec: dict[str, Any]
    table: Table
    csv_url: str
    markers: list[Marker] = field(default_factory=list)
    tall: bool = False


@dataclass(frozen=True)
class Stat:
    """One figure with its label (and a note under it)."""

    label: str
    value: str
    note: str = ""


@dataclass(frozen=True)
class Links:
    """Where a dashboard's CSV files are and what its downloads are called, filters included."""

    base: str  # the dashboard's address
    query: str  # its filters as a query string
    prefix: str  # file names start with this ("webinar-12") ...
    suffix: str = ""  # ... and end with the filters ("-from-2025-03-01")

    def csv(self, chart: str) -> str:
        """The address of a chart's CSV file with the page's filters."""
        return f"{self.base}/{chart}.csv" + (f"?{self.query}" if self.query else "")

    def file(self, chart: str) -> str:
        """A chart's file name, without its extension."""
        return f"{self.prefix}-{chart}{self.suffix}"


# --- formatting -------------------------------------------------------------------------------


def number(value: int | float | None) -> str:
    """A count with thousands separators; a dash when there is none."""
    if value is None:
        return "—"
    if isinstance(value, float) and not value.is_integer():
        return f"{value:,.1f}"
    return f"{int(value):,}"


def percent(share: float | None) -> str:
    """A share (0.425) as a percentage ("42.5%"); a dash when it cannot be computed."""
    if share is None:
        return "—"
    return f"{share * 100:.1f}%"


def percent_cell(share: float | None) -> float | None:
    """A share as a percentage number for tables and CSV files (42.5), None when undefined."""
    return None if share is None else round(share * 100, 1)


def duration(seconds: float | None) -> str:
    """Seconds in words a person reads at a glance: "45 s", "12 min 5 s", "1 h 3 min"."""
    if seconds is None:
        return "—"
    whole = round(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes} min"
    if minutes:
        return f"{minutes} min {secs} s" if secs else f"{minutes} min"
    return f"{secs} s"


def short(text: str) -> str:
    """A label short enough for a chart axis (the table keeps it whole)."""
    return text if len(text) <= LABEL_MAX else text[: LABEL_MAX - 1].rstrip() + "…"


def formulas(*shapes: object) -> list[str]:
    """The plain-English formulas of result shapes (their FORMULAS), each once, in order."""
    found: list[str] = []
    for shape in shapes:
        for text in getattr(shape, "FORMULAS", {}).values():
            if text not in found:
                found.append(text)
    return found


def chart_spec(
    *,
    kind: str,
    title: str,
    file: str,
    labels: Sequence[str],
    series: list[dict[str, Any]],
    x_title: str,
    y_title: str,
    horizontal: bool = False,
    value_labels: Sequence[str] | None = None,
    markers: Sequence[dict[str, Any]] = (),
    notes: Sequence[str] = (),
) -> dict[str, Any]:
    """The description of a chart that static/js/charts.js draws."""
    return {
        "type": kind,
        "title": title,
        "file": file,
        "labels": list(labels),
        "series": series,
        "x_title": x_title,
        "y_title": y_title,
        "horizontal": horizontal,
        "value_labels": list(value_labels) if value_labels is not None else None,
        "markers": list(markers),
        "notes": list(notes),
    }
