"""Analytics pages: the overview across webinars, each webinar's dashboard, and their CSV files.

Every figure comes from app.services.engagement; this module reads the filters from the query
string, lays the figures out as tables and chart descriptions (drawn by static/js/charts.js), and
writes the same tables as CSV for the download links.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response

from app.models import Schedule, Webinar, WebinarSession
from app.services import audit, demo_history, engagement, ids
from app.services.csv_export import csv_bytes
from app.services.engagement import Filters
from app.services.permissions import Permission, can
from app.web import analytics_dashboard as dashboard
from app.web import analytics_overview as overview_page
from app.web.access import client_ip, staff_route, staff_user
from app.web.analytics_charts import Links
from app.web.analytics_interactions import option_labels
from app.web.templating import render, render_error
from app.web.webinar_admin import webinar_missing, webinar_of

ACTIVE = "/admin/analytics"
# Enough to pick from; a webinar with more (just-in-time sessions every few minutes) is narrowed
# with the dates first, and a session chosen through a link is always listed.
SESSION_OPTIONS = 300
DATE_PATTERN = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
FIRST_YEAR, LAST_YEAR = 2000, 2100
FIELD_MAX = 40
KIND_NAMES = {"scheduled": "scheduled", "jit": "just-in-time", "on_demand": "on demand"}


@dataclass
class FilterInput:
    """The filters as typed (shown again as they were) and as understood."""

    form: dict[str, str]
    errors: dict[str, str] = field(default_factory=dict)
    start: date | None = None
    end: date | None = None
    session_id: int | None = None

    def query(self) -> str:
        """The valid filters as a query string ("" when none), for links that keep them."""
        pairs = [
            ("start", self.start.isoformat() if self.start else ""),
            ("end", self.end.isoformat() if self.end else ""),
            ("session", str(self.session_id) if self.session_id else ""),
        ]
        kept = [(name, value) for name, value in pairs if value]
        return urlencode(kept)

    def filters(self, webinar_id: int | None) -> Filters:
        """The engagement filters these stand for."""
        return Filters(
            webinar_id=webinar_id, session_id=self.session_id, start=self.start, end=self.end
        )


def _date(raw: str) -> date:
    """A typed date; ValueError with what to do instead when it is not one."""
    if not DATE_PATTERN.fullmatch(raw):
        raise ValueError("Enter a date like 2025-03-31.")
    try:
        value = date.fromisoformat(raw)
    except ValueError:
        raise ValueError("No such date.") from None
    if not FIRST_YEAR <= value.year <= LAST_YEAR:
        raise ValueError(f"Enter a date between {FIRST_YEAR} and {LAST_YEAR}.")
    return value


def read_filters(params: Mapping[str, str], *, sessions: bool) -> FilterInput:
    """The date range (and session, when `sessions`) of a query string, with what is wrong."""
    names = ("start", "end", "session") if sessions else ("start", "end")
    form = {name: str(params.get(name, "")).strip()[:FIELD_MAX] for name in names}
    found = FilterInput(form=form)
    for name in ("start", "end"):
        if not form[name]:
            continue
        try:
            setattr(found, name, _date(form[name]))
        except ValueError as error:
            found.errors[name] = str(error)
    if found.start and found.end and found.end < found.start:
        found.errors["end"] = "The end comes before the start: choose a later date."
        found.end = None
    if sessions and form["session"]:
        if form["session"].isascii() and form["session"].isdigit():
            # A number too large for an id is a session of no webinar: nothing to show.
            number = int(form["session"])
            found.session_id = number if ids.is_id(number) else 0
        else:
            found.errors["session"] = "Choose one of this webinar's sessions."
    return found


async def _session_options(webinar: Webinar, chosen: int | None) -> list[tuple[int, str]]:
    """The webinar's sessions for the select, latest first, labelled in the webinar's zone."""
    rows = (
        await WebinarSession.filter(webinar_id=webinar.id)
        .order_by("-starts_at", "-id")
        .limit(SESSION_OPTIONS)
        .values("id", "starts_at", "kind")
    )
    if chosen is not None and all(row["id"] != chosen for row in rows):
        rows += await WebinarSession.filter(id=chosen, webinar_id=webinar.id).values(
            "id", "starts_at", "kind"
        )
    zone = await _zone_of(webinar)
    sample = await demo_history.sample_session_ids(webinar.id)
    return [
        (row["id"], _session_label(row["starts_at"], row["kind"], zone, row["id"] in sample))
        for row in rows
    ]


async def _zone_of(webinar: Webinar) -> ZoneInfo:
    schedule = await Schedule.get_or_none(webinar_id=webinar.id)
    try:
        return ZoneInfo(schedule.timezone) if schedule and schedule.timezone else ZoneInfo("UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def _session_label(starts_at: datetime, kind: str, zone: ZoneInfo, sample: bool = False) -> str:
    local = starts_at.astimezone(zone)
    when = f"{local:%a} {local.day} {local:%b %Y, %H:%M} {local.tzname()}"
    label = when if kind == "scheduled" else f"{when} · {KIND_NAMES.get(kind, kind)}"
    return f"{label} · sample data" if sample else label


def _bad_filters(found: FilterInput) -> Response:
    lines = [f"{name}: {message}" for name, message in found.errors.items()]
    return PlainTextResponse("\n".join(lines) + "\n", status_code=400)


def _csv(body: bytes, name: str) -> Response:
    return Response(
        body,
        media_type="text/csv; charset=utf-8",
        headers={
            "Content-Disposition": f'attachment; filename="{name}.csv"',
            "Cache-Control": "no-store",
        },
    )


def _suffix(found: FilterInput) -> str:
    """The filters in a file name: "-from-2025-03-01-to-2025-03-31-session-7"."""
    parts = []
    if found.start:
        parts.append(f"-from-{found.start.isoformat()}")
    if found.end:
        parts.append(f"-to-{found.end.isoformat()}")
    if found.session_id:
        parts.append(f"-session-{found.session_id}")
    return "".join(parts)


# --- the overview -------------------------------------------------------------------------------


@staff_route(Permission.VIEW_ANALYTICS)
async def overview(request: Request) -> Response:
    """Every webinar's figures side by side, with totals, for a date range."""
    found = read_filters(request.query_params, sessions=False)
    context: dict[str, Any] = {
        "form": found.form,
        "errors": found.errors,
        "query": found.query(),
        "active": ACTIVE,
        "sample_history": await demo_history.has_sample_history(),
    }
    if found.errors:
        return render(request, "admin/analytics.html", context, status=400)
    rows = await engagement.webinar_overview(found.start, found.end)
    totals = await engagement.funnel(found.filters(None))
    summary = await engagement.attendance_summary(found.filters(None))
    context.update(overview_page.overview_context(rows, totals, summary, found.query()))
    return render(request, "admin/analytics.html", context)


@staff_route(Permission.VIEW_ANALYTICS)
async def overview_csv(request: Request) -> Response:
    """The overview table as CSV, for the same date range."""
    found = read_filters(request.query_params, sessions=False)
    if found.errors:
        return _bad_filters(found)
    rows = await engagement.webinar_overview(found.start, found.end)
    table = overview_page.overview_table(rows)
    return _csv(csv_bytes(table.header, table.rows), "webinars" + _suffix(found))


# --- one webinar ------------------------------------------------------------------------------


async def _checked_session(webinar: Webinar, found: FilterInput) -> None:
    if found.session_id is None:
        return
    if not await WebinarSession.exists(id=found.session_id, webinar_id=webinar.id):
        found.errors["session"] = "Choose one of this webinar's sessions."
        found.session_id = None


@staff_route(Permission.VIEW_ANALYTICS)
async def webinar_dashboard(request: Request) -> Response:
    """One webinar's funnel, watch time, drop-off, interactions and chat, filtered."""
    webinar = await webinar_of(request)
    if webinar is None:
        return webinar_missing(request)
    found = read_filters(request.query_params, sessions=True)
    await _checked_session(webinar, found)
    user = staff_user(request)
    context: dict[str, Any] = {
        "webinar": webinar,
        "tab": "analytics",
        "can_edit": can(user.role, Permission.EDIT_WEBINARS),
        "form": found.form,
        "errors": found.errors,
        "sessions": await _session_options(webinar, found.session_id),
        "sample_sessions": len(await demo_history.sample_session_ids(webinar.id)),
        "query": found.query(),
        "active": ACTIVE,
    }
    if found.errors:
        return render(request, "admin/analytics_webinar.html", context, status=400)
    filters = found.filters(webinar.id)
    figures = dashboard.Figures(
        funnel=await engagement.funnel(filters),
        attendance=await engagement.attendance_summary(filters),
        drop_off=await engagement.drop_off(filters),
        interactions=await engagement.interaction_results(filters),
        chat=await engagement.chat_summary(filters),
    )
    links = Links(
        base=f"/admin/analytics/webinars/{webinar.id}",
        query=found.query(),
        prefix=f"webinar-{webinar.id}",
        suffix=_suffix(found),
    )
    options = await option_labels(figures.interactions)
    context.update(dashboard.webinar_context(figures, options, links=links))
    return render(request, "admin/analytics_webinar.html", context)


@staff_route(Permission.VIEW_ANALYTICS)
async def webinar_csv(request: Request) -> Response:
    """The data of one chart of a webinar's dashboard as CSV, with the page's filters."""
    webinar = await webinar_of(request)
    if webinar is None:
        return webinar_missing(request)
    chart = str(request.path_params["chart"])
    if dashboard.chart_kind(chart) is None:
        return render_error(
            request,
            status=404,
            title="No such chart",
            message="This dashboard has no chart of that name. Go back to the dashboard.",
        )
    found = read_filters(request.query_params, sessions=True)
    await _checked_session(webinar, found)
    if found.errors:
        return _bad_filters(found)
    table = await dashboard.chart_table(chart, found.filters(webinar.id))
    if table is None:
        return render_error(
            request,
            status=404,
            title="No such chart",
            message="This webinar has no interaction of that number. Go back to the dashboard.",
        )
    name = f"webinar-{webinar.id}-{chart}{_suffix(found)}"
    return _csv(csv_bytes(table.header, table.rows), name)


@staff_route(Permission.EDIT_WEBINARS)
async def sample_remove(request: Request) -> Response:
    """Take the demo's sample history away (its poll and offer stay)."""
    webinar = await webinar_of(request)
    if webinar is None:
        return webinar_missing(request)
    removed = await demo_history.remove(webinar)
    await audit.record(
        action="demo.sample_removed",
        actor=staff_user(request),
        target=f"webinar {webinar.id}",
        ip=client_ip(request),
        details={"people": removed},
    )
    return RedirectResponse(f"/admin/analytics/webinars/{webinar.id}", status_code=303)
