"""The overview across webinars: one row per webinar, totals, and a chart of the busiest."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from app.services import engagement
from app.web.analytics_charts import (
    ChartView,
    Stat,
    Table,
    chart_spec,
    formulas,
    number,
    percent,
    percent_cell,
    short,
)

CHART_MAX = 12


def overview_table(rows: Sequence[engagement.WebinarRow]) -> Table:
    """One row per webinar."""
    return Table(
        [
            "Webinar id",
            "Webinar",
            "Status",
            "Sessions",
            "Visitors",
            "Registered",
            "Attended",
            "Attendance rate (%)",
            "Average watch share (%)",
            "Conversions",
            "Conversion rate (%)",
        ],
        [
            [
                row.webinar_id,
                row.title,
                row.status,
                row.sessions,
                row.visitors,
                row.registered,
                row.attended,
                percent_cell(row.attendance_rate),
                percent_cell(row.average_watch_share),
                row.conversions,
                percent_cell(row.conversion_rate),
            ]
            for row in rows
        ],
    )


@dataclass(frozen=True)
class OverviewRow:
    """One webinar in the overview table, as shown."""

    webinar_id: int
    title: str
    url: str
    sessions: str
    visitors: str
    registered: str
    attended: str
    attendance_rate: str
    watch_share: str
    converted: str


def _overview_chart(rows: Sequence[engagement.WebinarRow], url: str) -> ChartView | None:
    ranked = sorted(rows, key=lambda row: (-row.registered, -row.attended, row.webinar_id))
    active = [row for row in ranked if row.registered or row.attended]
    shown = active[:CHART_MAX]
    if not shown:
        return None
    title = "Registered and attended by webinar"
    if len(shown) < len(active):
        title += f" (the {len(shown)} with the most registrations)"
    spec = chart_spec(
        kind="bar",
        title=title,
        file="webinars-registered-attended",
        labels=[short(row.title) for row in shown],
        series=[
            {"label": "Registered", "data": [row.registered for row in shown]},
            {"label": "Attended", "data": [row.attended for row in shown]},
        ],
        x_title="Webinar",
        y_title="People",
    )
    table = Table(
        ["Webinar", "Registered", "Attended", "Attendance rate (%)"],
        [
            [row.title, row.registered, row.attended, percent_cell(row.attendance_rate)]
            for row in shown
        ],
    )
    summary = "; ".join(
        f"{row.title}: {number(row.registered)} registered, {number(row.attended)} attended"
        for row in shown
    )
    return ChartView(
        name="webinars", title=title, summary=summary + ".", spec=spec, table=table, csv_url=url
    )


def overview_context(
    rows: Sequence[engagement.WebinarRow],
    totals: engagement.Funnel,
    summary: engagement.AttendanceSummary,
    query: str,
) -> dict[str, Any]:
    """What the overview's template shows."""
    suffix = f"?{query}" if query else ""
    csv = f"/admin/analytics/webinars.csv{suffix}"
    return {
        "rows": [
            OverviewRow(
                webinar_id=row.webinar_id,
                title=row.title,
                url=f"/admin/analytics/webinars/{row.webinar_id}{suffix}",
                sessions=number(row.sessions),
                visitors=number(row.visitors),
                registered=number(row.registered),
                attended=number(row.attended),
                attendance_rate=percent(row.attendance_rate),
                watch_share=percent(row.average_watch_share),
                converted=number(row.conversions),
            )
            for row in rows
        ],
        "has_data": any(row.visitors or row.registered or row.attended for row in rows),
        "totals": [
            Stat("Webinars", number(len(rows))),
            Stat("Sessions", number(sum(row.sessions for row in rows))),
            Stat("Visitors", number(totals.visitors)),
            Stat("Registered", number(totals.registered)),
            Stat(
                "Attended",
                number(totals.attended),
                f"{percent(summary.attendance_rate)} of registered",
            ),
            Stat("Average watched", percent(summary.average_watch_share), "of the video"),
            Stat("Converted", number(totals.converted)),
        ],
        "chart_view": _overview_chart(rows, csv),
        "csv_url": csv,
        "formula_list": formulas(engagement.WebinarRow),
    }
