"""The interactions on a webinar's dashboard: answers as charts and tables, clicks as figures."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from app.models import Interaction
from app.services import engagement
from app.services.interactions import clock
from app.web.analytics_charts import (
    KIND_LABELS,
    ChartView,
    Links,
    Stat,
    Table,
    chart_spec,
    number,
    percent,
    percent_cell,
    short,
)

INTERACTION_PREFIX = "interaction-"
# Kinds whose answers are drawn as bars; offers, links and downloads are counted as clicks.
CHARTED = frozenset({"poll", "quiz", "nps", "rating"})


@dataclass(frozen=True)
class InteractionCard:
    """One interaction's results on the dashboard."""

    id: int
    title: str
    kind_label: str
    opens_at: str
    facts: list[Stat]
    chart: ChartView | None
    empty: str


@dataclass(frozen=True)
class AnswerRow:
    """One bar of an interaction's chart: an option or score, its answers and their share."""

    label: str
    count: int
    share: float | None


def _answer_rows(item: engagement.InteractionSummary, options: Sequence[str]) -> list[AnswerRow]:
    results = item.results
    total = int(results.get("total") or 0)
    counts = [int(count) for count in results.get("counts", [])]
    rows: list[AnswerRow] = []
    correct = set(results.get("correct", []))
    for index, count in enumerate(counts):
        if item.kind == "nps":
            label = str(index)
        elif item.kind == "rating":
            label = str(index + 1)
        else:
            label = options[index] if index < len(options) else f"Option {index + 1}"
            if item.kind == "quiz" and index in correct:
                label += " (correct)"
        rows.append(AnswerRow(label, count, engagement.share(count, total)))
    return rows


def _tones(item: engagement.InteractionSummary) -> list[str] | None:
    """Bar colours that carry meaning: NPS groups, and a quiz's correct options."""
    counts = item.results.get("counts", [])
    if item.kind == "nps":
        return ["good" if s >= 9 else "neutral" if s >= 7 else "bad" for s in range(len(counts))]
    if item.kind == "quiz":
        correct = set(item.results.get("correct", []))
        return ["good" if i in correct else "muted" for i in range(len(counts))]
    return None


def interaction_table(item: engagement.InteractionSummary, options: Sequence[str]) -> Table:
    """One interaction's results: the answers given, then its own measure."""
    results = item.results
    header = ["Result", "Count", "Share (%)"]
    if item.kind in engagement.CLICKABLE:
        return Table(header, [["Clicked", item.clicked, percent_cell(item.click_through)]])
    if item.kind == "question":
        return Table(header, [["Questions asked", item.responses, None]])
    total = int(results.get("total") or 0)
    rows: list[list[object]] = [["Answers", total, None]]
    rows += [[row.label, row.count, percent_cell(row.share)] for row in _answer_rows(item, options)]
    if item.kind == "quiz":
        rows.append(["Answered correctly", None, percent_cell(results.get("correct_share"))])
    elif item.kind == "nps":
        for key, label in (
            ("promoters", "Promoters (9-10)"),
            ("passives", "Passives (7-8)"),
            ("detractors", "Detractors (0-6)"),
        ):
            count = int(results.get(key) or 0)
            rows.append([label, count, percent_cell(engagement.share(count, total))])
        rows.append(["NPS score", results.get("score"), None])
    elif item.kind == "rating":
        rows.append(["Average rating", results.get("average"), None])
    return Table(header, rows)


def interactions_table(
    items: Sequence[engagement.InteractionSummary], options: dict[int, list[str]]
) -> Table:
    """Every interaction's results, one result per row."""
    rows: list[list[object]] = []
    for item in items:
        lead: list[object] = [
            item.interaction_id,
            item.title,
            KIND_LABELS.get(item.kind, item.kind),
            clock(item.opens_at),
        ]
        own = interaction_table(item, options.get(item.interaction_id, []))
        rows.extend([*lead, *row] for row in own.rows)
    header = ["Interaction id", "Interaction", "Kind", "Opens at", "Result", "Count", "Share (%)"]
    return Table(header, rows)


def _nps(score: int | None) -> str:
    if score is None:
        return "—"
    return f"{score:+d}" if score else "0"


def _facts(item: engagement.InteractionSummary) -> list[Stat]:
    results = item.results
    answers = Stat("Answers", number(int(results.get("total") or 0)))
    if item.kind in engagement.CLICKABLE:
        return [
            Stat("Clicked", number(item.clicked), "people"),
            Stat("Click-through", percent(item.click_through), "of attendees"),
        ]
    if item.kind == "question":
        return [Stat("Questions asked", number(item.responses))]
    if item.kind == "quiz":
        score = percent(results.get("correct_share")) if results.get("total") else "—"
        return [answers, Stat("Score", score, "answered correctly")]
    if item.kind == "nps":
        return [
            Stat("NPS score", _nps(results.get("score"))),
            Stat("Promoters", number(int(results.get("promoters") or 0))),
            Stat("Passives", number(int(results.get("passives") or 0))),
            Stat("Detractors", number(int(results.get("detractors") or 0))),
            answers,
        ]
    if item.kind == "rating":
        average = results.get("average")
        scale = len(results.get("counts", []))
        return [
            Stat("Average rating", "—" if average is None else f"{average:.1f} / {scale}"),
            answers,
        ]
    return [answers]


def _interaction_chart(
    item: engagement.InteractionSummary, options: Sequence[str], *, links: Links
) -> ChartView:
    rows = _answer_rows(item, options)
    name = f"{INTERACTION_PREFIX}{item.interaction_id}"
    horizontal = item.kind in {"poll", "quiz"}
    title = f"{KIND_LABELS.get(item.kind, item.kind)}: {item.title}"
    series: dict[str, Any] = {"label": "Answers", "data": [row.count for row in rows]}
    tones = _tones(item)
    if tones:
        series["tones"] = tones
    category = {"nps": "Score (0-10)", "rating": "Rating"}.get(item.kind, "Option")
    spec = chart_spec(
        kind="bar",
        title=title,
        file=links.file(name),
        labels=[short(row.label) for row in rows],
        series=[series],
        x_title="Answers" if horizontal else category,
        y_title=category if horizontal else "Answers",
        horizontal=horizontal,
        # Empty bars carry no label: a row of "0 · 0.0%" would hide the ones that matter.
        value_labels=[
            f"{number(row.count)} · {percent(row.share)}" if row.count else "" for row in rows
        ],
    )
    return ChartView(
        name=name,
        title=title,
        summary="; ".join(f"{row.label}: {number(row.count)}" for row in rows) + ".",
        spec=spec,
        table=interaction_table(item, options),
        csv_url=links.csv(name),
    )


def interaction_card(
    item: engagement.InteractionSummary, options: Sequence[str], *, links: Links
) -> InteractionCard:
    """One interaction's figures, with a chart of its answers when it takes some."""
    chart: ChartView | None = None
    empty = ""
    if item.kind in CHARTED:
        if int(item.results.get("total") or 0) == 0:
            empty = "No answers yet."
        else:
            chart = _interaction_chart(item, options, links=links)
    kind_label = KIND_LABELS.get(item.kind, item.kind)
    if item.session_id is not None:
        kind_label += " · pushed live"
    return InteractionCard(
        id=item.interaction_id,
        title=item.title,
        kind_label=kind_label,
        opens_at=clock(item.opens_at),
        facts=_facts(item),
        chart=chart,
        empty=empty,
    )


async def option_labels(items: Sequence[engagement.InteractionSummary]) -> dict[int, list[str]]:
    """The option texts of the polls and quizzes among `items` (their results count by index)."""
    ids = [item.interaction_id for item in items if item.kind in {"poll", "quiz"}]
    if not ids:
        return {}
    rows = await Interaction.filter(id__in=ids).values("id", "config")
    labels: dict[int, list[str]] = {}
    for row in rows:
        config = row["config"] if isinstance(row["config"], dict) else {}
        labels[row["id"]] = [str(option) for option in config.get("options", [])]
    return labels
