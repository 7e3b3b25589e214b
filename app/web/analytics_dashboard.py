"""A webinar's dashboard: funnel, key figures, drop-off and chat as tables and charts.

The CSV endpoint asks the query layer only for the figures of the chart it serves.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from app.services import engagement
from app.services.engagement import Filters
from app.services.interactions import clock
from app.web.analytics_charts import (
    KIND_LABELS,
    ChartView,
    Links,
    Marker,
    Stat,
    Table,
    chart_spec,
    duration,
    formulas,
    number,
    percent,
    percent_cell,
    short,
)
from app.web.analytics_interactions import (
    INTERACTION_PREFIX,
    interaction_card,
    interaction_table,
    interactions_table,
    option_labels,
)

FUNNEL = "funnel"
DROP_OFF = "drop-off"
INTERACTIONS = "interactions"
CHAT = "chat"
SUMMARY = "summary"
CHARTS = (FUNNEL, SUMMARY, DROP_OFF, INTERACTIONS, CHAT)


@dataclass(frozen=True)
class Figures:
    """Everything the webinar dashboard shows, as the query layer returns it."""

    funnel: engagement.Funnel
    attendance: engagement.AttendanceSummary
    drop_off: engagement.DropOff
    interactions: list[engagement.InteractionSummary]
    chat: engagement.ChatSummary


def chart_kind(name: str) -> str | None:
    """Which chart a CSV name stands for (None when no chart has that name)."""
    if name in CHARTS:
        return name
    if name.startswith(INTERACTION_PREFIX):
        rest = name.removeprefix(INTERACTION_PREFIX)
        if rest.isascii() and rest.isdigit() and len(rest) < 12:
            return INTERACTIONS
    return None


# --- the funnel ---------------------------------------------------------------------------------


def funnel_table(funnel: engagement.Funnel) -> Table:
    """Each stage with its people and shares."""
    return Table(
        ["Stage", "People", "Share of the previous stage (%)", "Share of visitors (%)"],
        [
            [
                stage.label,
                stage.count,
                percent_cell(stage.share_of_previous),
                percent_cell(stage.share_of_visitors),
            ]
            for stage in funnel.stages
        ],
    )


def funnel_chart(funnel: engagement.Funnel, *, links: Links) -> ChartView:
    """The funnel as horizontal bars, each labelled with its people and share."""
    stages = funnel.stages
    labels = []
    for stage in stages:
        text = number(stage.count)
        if stage.share_of_previous is not None:
            text += f" · {percent(stage.share_of_previous)} of previous"
        labels.append(text)
    title = "Funnel: visitors to converted"
    summary = "; ".join(f"{stage.label}: {number(stage.count)}" for stage in stages) + "."
    spec = chart_spec(
        kind="bar",
        title=title,
        file=links.file(FUNNEL),
        labels=[stage.label for stage in stages],
        series=[{"label": "People", "data": [stage.count for stage in stages]}],
        x_title="People",
        y_title="Stage",
        horizontal=True,
        value_labels=labels,
    )
    return ChartView(
        name=FUNNEL,
        title=title,
        summary=summary,
        spec=spec,
        table=funnel_table(funnel),
        csv_url=links.csv(FUNNEL),
    )


# --- the key figures ----------------------------------------------------------------------------


def summary_table(
    funnel: engagement.Funnel,
    attendance: engagement.AttendanceSummary,
    chat: engagement.ChatSummary,
) -> Table:
    """Every key figure of the dashboard, one per row."""
    return Table(
        ["Figure", "Value"],
        [
            ["Visitors", funnel.visitors],
            ["Registered", funnel.registered],
            ["Attended", funnel.attended],
            ["Stayed to the end", funnel.stayed_to_end],
            ["Converted", funnel.converted],
            ["Attendance rate (%)", percent_cell(attendance.attendance_rate)],
            ["Average watch time (seconds)", _rounded(attendance.average_watch_seconds)],
            ["Median watch time (seconds)", _rounded(attendance.median_watch_seconds)],
            ["Average watch share (%)", percent_cell(attendance.average_watch_share)],
            ["Attendee messages", chat.attendee_messages],
            ["Questions", chat.questions],
            ["Team replies", chat.team_replies],
            ["Answered messages", chat.answered],
            ["Median response time (seconds)", _rounded(chat.median_response_seconds)],
            ["90th percentile response time (seconds)", _rounded(chat.p90_response_seconds)],
        ],
    )


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def key_stats(funnel: engagement.Funnel) -> list[Stat]:
    """The funnel's counts at the top of the dashboard."""
    visitors_note = "not counted per session" if funnel.visitors is None else ""
    return [
        Stat("Visitors", number(funnel.visitors), visitors_note),
        Stat("Registered", number(funnel.registered)),
        Stat("Attended", number(funnel.attended)),
        Stat("Stayed to the end", number(funnel.stayed_to_end)),
        Stat("Converted", number(funnel.converted)),
    ]


def watch_stats(attendance: engagement.AttendanceSummary) -> list[Stat]:
    """Attendance rate and watch time."""
    return [
        Stat(
            "Attendance rate",
            percent(attendance.attendance_rate),
            f"{number(attendance.attended)} of {number(attendance.registered)} registered",
        ),
        Stat("Average watch time", duration(attendance.average_watch_seconds)),
        Stat("Median watch time", duration(attendance.median_watch_seconds)),
        Stat("Average watch share", percent(attendance.average_watch_share), "of the video"),
    ]


# --- the drop-off curve -------------------------------------------------------------------------


def _numbered_markers(drop: engagement.DropOff) -> list[tuple[int, engagement.Marker]]:
    ordered = sorted(drop.markers, key=lambda marker: (marker.seconds, marker.interaction_id))
    return [(index, marker) for index, marker in enumerate(ordered, start=1)]


def drop_off_table(drop: engagement.DropOff) -> Table:
    """Viewers per minute of the video, with the interactions opening in each minute."""
    opening: dict[int, list[str]] = {}
    for _, marker in _numbered_markers(drop):
        minute = min(int(marker.seconds // 60), max(len(drop.viewers) - 1, 0))
        opening.setdefault(minute, []).append(
            f"{KIND_LABELS.get(marker.kind, marker.kind)}: {marker.title}"
        )
    return Table(
        ["Minute", "From", "To", "Viewers", "Interactions opening"],
        [
            [
                minute,
                clock(minute * 60),
                clock((minute + 1) * 60),
                viewers,
                "; ".join(opening.get(minute, [])),
            ]
            for minute, viewers in enumerate(drop.viewers)
        ],
    )


def drop_off_chart(drop: engagement.DropOff, *, links: Links) -> ChartView | None:
    """The viewers per minute as a line, the interactions as numbered markers."""
    if drop.attended == 0:
        return None
    numbered = _numbered_markers(drop)
    markers = [
        Marker(
            number=index,
            at=clock(marker.seconds),
            kind=KIND_LABELS.get(marker.kind, marker.kind),
            title=marker.title,
        )
        for index, marker in numbered
    ]
    peak = max(drop.viewers, default=0)
    peak_minute = drop.viewers.index(peak) if drop.viewers else 0
    last = drop.viewers[-1] if drop.viewers else 0
    title = "Viewers per minute of the video"
    summary = (
        f"{number(drop.attended)} attendees; most viewers: {number(peak)} in minute "
        f"{clock(peak_minute * 60)}; {number(last)} in the last minute."
    )
    spec = chart_spec(
        kind="line",
        title=title,
        file=links.file(DROP_OFF),
        labels=[clock(minute * 60) for minute in range(len(drop.viewers))],
        series=[{"label": "Viewers", "data": list(drop.viewers)}],
        x_title="Minute of the video",
        y_title="Viewers",
        markers=[{"x": marker.seconds / 60, "label": str(index)} for index, marker in numbered],
        notes=[f"{m.number}  {m.at}  {m.kind}: {short(m.title)}" for m in markers],
    )
    return ChartView(
        name=DROP_OFF,
        title=title,
        summary=summary,
        spec=spec,
        table=drop_off_table(drop),
        csv_url=links.csv(DROP_OFF),
        markers=markers,
        tall=True,
    )


# --- chat ---------------------------------------------------------------------------------------


def chat_table(chat: engagement.ChatSummary) -> Table:
    """Attendee messages per minute of the video."""
    return Table(
        ["Minute", "From", "To", "Attendee messages"],
        [
            [minute, clock(minute * 60), clock((minute + 1) * 60), count]
            for minute, count in enumerate(chat.by_minute)
        ],
    )


def chat_chart(chat: engagement.ChatSummary, *, links: Links) -> ChartView | None:
    """Chat volume over the video as bars."""
    if chat.attendee_messages == 0:
        return None
    busiest = max(chat.by_minute, default=0)
    minute = chat.by_minute.index(busiest) if chat.by_minute else 0
    title = "Attendee messages per minute of the video"
    spec = chart_spec(
        kind="bar",
        title=title,
        file=links.file(CHAT),
        labels=[clock(m * 60) for m in range(len(chat.by_minute))],
        series=[{"label": "Attendee messages", "data": list(chat.by_minute)}],
        x_title="Minute of the video",
        y_title="Attendee messages",
    )
    return ChartView(
        name=CHAT,
        title=title,
        summary=(
            f"{number(chat.attendee_messages)} attendee messages; the busiest minute, "
            f"{clock(minute * 60)}, had {number(busiest)}."
        ),
        spec=spec,
        table=chat_table(chat),
        csv_url=links.csv(CHAT),
    )


def chat_stats(chat: engagement.ChatSummary) -> list[Stat]:
    """Chat volume and the team's response time."""
    return [
        Stat("Attendee messages", number(chat.attendee_messages)),
        Stat("Questions", number(chat.questions)),
        Stat("Team replies", number(chat.team_replies)),
        Stat("Answered", number(chat.answered), "attendee messages"),
        Stat("Median response time", duration(chat.median_response_seconds)),
        Stat("90% answered within", duration(chat.p90_response_seconds)),
    ]


# --- the pages ----------------------------------------------------------------------------------


def has_data(figures: Figures) -> bool:
    """Whether anything at all was recorded for these filters."""
    return bool(
        (figures.funnel.visitors or 0)
        or figures.funnel.registered
        or figures.funnel.attended
        or figures.chat.attendee_messages
        or any(item.responses or item.clicked for item in figures.interactions)
    )


def webinar_context(
    figures: Figures, options: dict[int, list[str]], *, links: Links
) -> dict[str, Any]:
    """What the webinar dashboard's template shows."""
    drop = drop_off_chart(figures.drop_off, links=links)
    return {
        "has_data": has_data(figures),
        "key_stats": key_stats(figures.funnel),
        "summary_csv": links.csv(SUMMARY),
        "funnel_chart": funnel_chart(figures.funnel, links=links),
        "funnel_formulas": formulas(figures.funnel),
        "watch_stats": watch_stats(figures.attendance),
        "attendance_formulas": formulas(figures.attendance),
        "drop_off_chart": drop,
        "drop_off_duration": duration(figures.drop_off.duration_seconds)
        if figures.drop_off.duration_seconds
        else "",
        "drop_off_empty": "No one has watched yet"
        + (" in these sessions." if links.query else "."),
        "drop_off_formulas": formulas(figures.drop_off),
        "interactions": [
            interaction_card(item, options.get(item.interaction_id, []), links=links)
            for item in figures.interactions
        ],
        "interactions_csv": links.csv(INTERACTIONS),
        "interaction_formulas": formulas(engagement.InteractionSummary)
        if figures.interactions
        else [],
        "chat_chart": chat_chart(figures.chat, links=links),
        "chat_stats": chat_stats(figures.chat),
        "chat_formulas": formulas(figures.chat),
    }


async def chart_table(chart: str, f: Filters) -> Table | None:
    """The table of one chart for its CSV file; None when it names no interaction here."""
    if chart == FUNNEL:
        return funnel_table(await engagement.funnel(f))
    if chart == SUMMARY:
        return summary_table(
            await engagement.funnel(f),
            await engagement.attendance_summary(f),
            await engagement.chat_summary(f),
        )
    if chart == DROP_OFF:
        return drop_off_table(await engagement.drop_off(f))
    if chart == CHAT:
        return chat_table(await engagement.chat_summary(f))
    items = await engagement.interaction_results(f)
    if chart == INTERACTIONS:
        return interactions_table(items, await option_labels(items))
    wanted = chart.removeprefix(INTERACTION_PREFIX)
    for item in items:
        if str(item.interaction_id) == wanted:
            return interaction_table(
                item, (await option_labels([item])).get(item.interaction_id, [])
            )
    return None
