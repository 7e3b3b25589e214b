"""The schedule tab of a webinar: the no-code editor, its preview, and the confirmation of edits.

Handlers read the form and answer; what the form means and what an edit does is decided in
app.services.schedules.
"""

from __future__ import annotations

from datetime import timedelta
from functools import lru_cache
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo, available_timezones

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from app.models import Schedule, Video, Webinar
from app.schedule import ScheduleRuleError, ScheduleRules, parse_zone, watch_now_available
from app.services import auth, schedules
from app.services.content import FormErrors
from app.services.permissions import Permission, can
from app.services.sessions import rules_of
from app.web import page_cache
from app.web.access import client_ip, staff_route, staff_user
from app.web.templating import render
from app.web.webinar_admin import webinar_missing, webinar_of

ACTIVE = "/admin/webinars"
SPARE_ROWS = 2  # empty rows always offered, so that rows can be added without JavaScript
PREVIEW_COUNT = 10
FIELDS = (
    "kind",
    "timezone",
    "attendee_local",
    "repeat",
    "weekdays",
    "anchor_date",
    "week",
    "weekday",
    "times",
    "dates",
    "jit",
    "jit_every",
    "jit_lead",
    "hours_opens",
    "hours_closes",
    "watch_now",
    "replays",
    "replay_hours",
    "upcoming_count",
    "cutoff_minutes",
    "capacity",
    "start_date",
    "end_date",
    "blackout_dates",
    "orphan_policy",
)
MAX_VALUES = schedules.MAX_ROWS + 1  # one more than allowed, so that too many is reported
WEEKDAYS = [
    ("mon", "Monday"),
    ("tue", "Tuesday"),
    ("wed", "Wednesday"),
    ("thu", "Thursday"),
    ("fri", "Friday"),
    ("sat", "Saturday"),
    ("sun", "Sunday"),
]
REPEATS = [
    ("daily", "Every day"),
    ("weekdays", "Every weekday (Monday to Friday)"),
    ("weekly", "Every week on chosen days"),
    ("biweekly", "Every two weeks on chosen days"),
    ("monthly", "Once a month"),
]
WEEKS = [("1", "First"), ("2", "Second"), ("3", "Third"), ("4", "Fourth"), ("-1", "Last")]
_NOTICE = "Schedule saved."


@lru_cache(maxsize=1)
def zone_names() -> list[str]:
    """Every IANA zone an editor may choose, sorted."""
    # "localtime" follows the server's own setting and "Factory" is no place.
    return sorted(available_timezones() - {"localtime", "Factory", "posixrules"})


class FormView:
    """The editor's submitted (or stored) values, as the template reads them."""

    def __init__(self, values: dict[str, list[str]]) -> None:
        self.values = values

    def get(self, name: str) -> str:
        """The first value of an input ('' when absent)."""
        found = self.values.get(name) or []
        return found[0] if found else ""

    def all(self, name: str) -> list[str]:
        """Every value of a repeated input."""
        return list(self.values.get(name) or [])

    def has(self, name: str, value: str) -> bool:
        """Whether a checkbox or option with this value is chosen."""
        return value in (self.values.get(name) or [])

    def checked(self, name: str) -> bool:
        """Whether an on/off checkbox is on."""
        return self.get(name).lower() in {"1", "on", "true", "yes"}

    def rows(self, name: str) -> list[str]:
        """The filled rows of a repeated input plus a few empty ones."""
        return [value for value in self.all(name) if value.strip()] + [""] * SPARE_ROWS

    def hidden(self) -> list[tuple[str, str]]:
        """Every (name, value) pair, to carry the form through the confirmation page."""
        return [(name, value) for name in FIELDS for value in self.values.get(name) or []]


async def _duration(webinar: Webinar) -> timedelta:
    video_id = getattr(webinar, "video_id", None)
    video = await Video.get_or_none(id=video_id) if video_id is not None else None
    if video is None or video.duration_seconds is None:
        return timedelta(0)
    return timedelta(seconds=video.duration_seconds)


def _viewer_zone(raw: str) -> ZoneInfo | None:
    if not raw:
        return None
    try:
        return parse_zone(raw)
    except ScheduleRuleError:
        return None


async def _editor(
    request: Request,
    webinar: Webinar,
    values: dict[str, list[str]],
    *,
    errors: FormErrors | None = None,
    rules: ScheduleRules | None = None,
    viewer: str = "",
    notice: str = "",
    status: int = 200,
) -> Response:
    zone = _viewer_zone(viewer)
    now = auth.utcnow()
    rows = None
    watch_now = False
    if rules is not None:
        rows = schedules.preview(
            rules,
            now,
            viewer_zone=zone,
            count=PREVIEW_COUNT,
            duration=await _duration(webinar),
        )
        watch_now = watch_now_available(rules, now, viewer_zone=zone)
    problems = errors.errors if errors else {}
    return render(
        request,
        "admin/webinar_schedule.html",
        {
            "webinar": webinar,
            "tab": "schedule",
            "can_edit": can(staff_user(request).role, Permission.EDIT_WEBINARS),
            "form": FormView(values),
            "errors": problems,
            "error": (
                f"Check the {'field' if len(problems) == 1 else 'fields'} marked below: "
                "nothing was saved."
                if problems
                else ""
            ),
            "notice": notice,
            "rules": rules,
            "preview": rows,
            "watch_now": watch_now,
            "viewer_zone": zone.key if zone else "",
            "zones": zone_names(),
            "weekdays": WEEKDAYS,
            "repeats": REPEATS,
            "weeks": WEEKS,
            "active": ACTIVE,
        },
        status=status,
    )


def _notice(request: Request) -> str:
    params = request.query_params
    if params.get("saved") != "1":
        return ""
    parts = [_NOTICE]
    moved, notified = params.get("moved", "0"), params.get("notified", "0")
    if moved.isdigit() and int(moved):
        parts.append(f"{int(moved)} registrant(s) moved to the nearest session and emailed.")
    if notified.isdigit() and int(notified):
        parts.append(f"{int(notified)} registrant(s) emailed to pick a new time.")
    return " ".join(parts)


@staff_route(Permission.VIEW_WEBINARS)
async def schedule_page(request: Request) -> Response:
    """The schedule editor with the stored schedule and a preview of its next sessions."""
    webinar = await webinar_of(request)
    if webinar is None:
        return webinar_missing(request)
    schedule = await Schedule.get_or_none(webinar_id=webinar.id)
    rules = None
    if schedule is not None:
        try:
            rules = rules_of(schedule)
        except ScheduleRuleError:
            rules = None
    return await _editor(
        request,
        webinar,
        schedules.form_from_schedule(schedule),
        rules=rules,
        viewer=request.query_params.get("viewer_zone", "")[:64],
        notice=_notice(request),
    )


@staff_route(Permission.EDIT_WEBINARS)
async def schedule_save(request: Request) -> Response:
    """Preview, save, or confirm an edit that moves or releases registrants."""
    webinar = await webinar_of(request)
    if webinar is None:
        return webinar_missing(request)
    form = await request.form()
    values = {
        name: [value[:200] for value in form.getlist(name) if isinstance(value, str)][:MAX_VALUES]
        for name in FIELDS
    }
    action = str(form.get("action") or "save")
    viewer = str(form.get("viewer_zone") or "")[:64]
    await form.close()
    result = schedules.form_to_rules(values)
    if isinstance(result, FormErrors):
        return await _editor(request, webinar, values, errors=result, viewer=viewer, status=400)
    if action in {"preview", "back"}:
        return await _editor(request, webinar, values, rules=result.parsed, viewer=viewer)
    now = auth.utcnow()
    if action != "confirm":
        plan = await schedules.plan_edit(webinar, result.parsed, now, policy=result.orphan_policy)
        if plan:
            return _confirm(request, webinar, values, result, plan)
    done = await schedules.apply_edit(
        webinar, result, now, actor=staff_user(request), ip=client_ip(request)
    )
    query: dict[str, Any] = {"saved": 1}
    if done.moved:
        query["moved"] = len(done.moved)
    if done.notified:
        query["notified"] = len(done.notified)
    page_cache.forget_all()  # visitors see the new times at once
    return RedirectResponse(
        f"/admin/webinars/{webinar.id}/schedule?{urlencode(query)}", status_code=303
    )


def _confirm(
    request: Request,
    webinar: Webinar,
    values: dict[str, list[str]],
    result: schedules.ScheduleInput,
    plan: schedules.EditPlan,
) -> Response:
    return render(
        request,
        "admin/webinar_schedule_confirm.html",
        {
            "webinar": webinar,
            "tab": "schedule",
            "form": FormView(values),
            "plan": plan,
            "zone": result.parsed.zone.key,
            "active": ACTIVE,
        },
    )
