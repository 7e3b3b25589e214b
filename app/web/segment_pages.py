"""Segments in the admin: saved filters over contacts, counted, previewed and exported as CSV.

Looking, counting and exporting (also rules not saved yet) need VIEW_ANALYTICS; saving and
deleting need EDIT_PEOPLE, so analysts explore and export but change nothing. Counting and
exporting typed rules are POSTs (the form carries its CSRF token) that change nothing.
"""

from __future__ import annotations

import re
from typing import Any

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from app.models import Segment
from app.services import audit, auth, segment_forms, segments
from app.services.content import FormErrors
from app.services.permissions import Permission, can
from app.web.access import client_ip, staff_route, staff_user
from app.web.templating import render, render_error

ACTIVE = "/admin/segments"
FIELD_MAX = 300
_NOTICES = {"saved": "Segment saved.", "deleted": "Segment deleted."}
# The editor's fields as labelled on the page, for the list of problems beside the count.
LABELS = {
    "name": "Name",
    "webinar": "Webinar",
    "attendance": "Attendance",
    "watch": "Watched at least",
    "answer": "Answered",
    "clicked_offer": "Clicked the offer",
    "field_key": "Registration field",
    "field_value": "Answer to that field",
    "account": "Account",
    "date_of": "Dates of",
    "start": "From",
    "end": "To",
}


def _can_edit(request: Request) -> bool:
    return can(staff_user(request).role, Permission.EDIT_PEOPLE)


async def _typed(request: Request) -> dict[str, str]:
    """The editor's fields as posted, bounded, plus which segment was being edited."""
    raw = await request.form()
    form = {name: str(raw.get(name) or "")[:FIELD_MAX] for name in segment_forms.FORM_FIELDS}
    form["segment"] = str(raw.get("segment") or "")[:12]
    form["partial"] = str(raw.get("partial") or "")[:1]
    await raw.close()
    return form


async def _segment_of(request: Request) -> Segment | None:
    segment_id = segments.int_or_none(request.path_params["segment_id"])
    return await Segment.get_or_none(id=segment_id) if segment_id is not None else None


async def _editing(form: dict[str, str]) -> Segment | None:
    segment_id = segments.int_or_none(form.get("segment", ""))
    return await Segment.get_or_none(id=segment_id) if segment_id is not None else None


def _missing(request: Request) -> Response:
    return render_error(
        request,
        status=404,
        title="Segment not found",
        message="This segment does not exist (any more). Go back to the list of segments.",
    )


@staff_route(Permission.VIEW_ANALYTICS)
async def segments_page(request: Request) -> Response:
    """Every saved segment with its rules in words."""
    return render(
        request,
        "admin/segments.html",
        {
            "segments": await segment_forms.segment_list(),
            "can_edit": _can_edit(request),
            "notice": _NOTICES.get(request.query_params.get("done", ""), ""),
            "active": ACTIVE,
        },
    )


async def _editor(
    request: Request,
    segment: Segment | None,
    form: dict[str, str],
    *,
    rules: segments.Rules | None,
    errors: FormErrors | None = None,
    error: str = "",
    notice: str = "",
    status: int = 200,
    partial: bool = False,
) -> Response:
    """The editor, with the count and preview of the members when the rules are valid."""
    context: dict[str, Any] = {
        "segment": segment,
        "form": form,
        "errors": errors.errors if errors else {},
        "rules": rules,
        "labels": LABELS,
        "count": None,
        "members": [],
        "active": ACTIVE,
    }
    if rules is not None:
        found = await segments.members(rules, now=auth.utcnow())
        context["count"] = len(found)
        context["members"] = await segments.preview(found, now=auth.utcnow())
        context["summary"] = await segment_forms.describe(rules)
    if partial:
        return render(request, "admin/_segment_preview.html", context, status=status)
    context.update(
        {
            "choices": await segment_forms.choices(),
            "attendance": segments.ATTENDANCE,
            "date_of": segments.DATE_OF,
            "used_by": await segments.used_by(segment) if segment is not None else [],
            "can_edit": _can_edit(request),
            "error": error,
            "notice": notice,
        }
    )
    return render(request, "admin/segment.html", context, status=status)


@staff_route(Permission.VIEW_ANALYTICS)
async def segment_new(request: Request) -> Response:
    """The editor for a new segment (its rules may start from the query, e.g. an account)."""
    form = {"date_of": "session"}
    for name in ("account", "webinar", "attendance"):
        if name in request.query_params:
            form[name] = request.query_params[name][:FIELD_MAX]
    checked = await segment_forms.check_rules(form)
    if isinstance(checked, FormErrors):
        return await _editor(request, None, form, rules=None, errors=checked)
    return await _editor(request, None, form, rules=checked)


@staff_route(Permission.VIEW_ANALYTICS)
async def segment_page(request: Request) -> Response:
    """A saved segment: its rules, how many belong and who, and its export."""
    segment = await _segment_of(request)
    if segment is None:
        return _missing(request)
    form = await segment_forms.form_of(segment)
    return await _editor(
        request,
        segment,
        form,
        rules=segments.rules_from(segment.rules),
        notice=_NOTICES.get(request.query_params.get("done", ""), ""),
    )


@staff_route(Permission.VIEW_ANALYTICS)
async def segment_check(request: Request) -> Response:
    """Count and preview the rules as typed, without saving them."""
    form = await _typed(request)
    segment = await _editing(form)
    checked = await segment_forms.check_rules(form)
    partial = form.get("partial") == "1"
    if isinstance(checked, FormErrors):
        # The live count asks for the section alone: it lists the problems, and is no failure.
        status = 200 if partial else 400
        return await _editor(
            request, segment, form, rules=None, errors=checked, status=status, partial=partial
        )
    return await _editor(request, segment, form, rules=checked, partial=partial)


@staff_route(Permission.EDIT_PEOPLE)
async def segment_save(request: Request) -> Response:
    """Save a new segment or a changed one."""
    segment: Segment | None = None
    if "segment_id" in request.path_params:
        segment = await _segment_of(request)
        if segment is None:
            return _missing(request)
    form = await _typed(request)
    checked = await segment_forms.check_rules(form)
    errors = checked if isinstance(checked, FormErrors) else FormErrors()
    name = await segment_forms.check_name(form.get("name", ""), segment, errors)
    if errors or isinstance(checked, FormErrors):
        return await _editor(
            request,
            segment,
            form,
            rules=None,
            errors=errors,
            error="Check the highlighted fields.",
            status=400,
        )
    saved = await segments.save(segment, name=name, rules=checked, actor=staff_user(request))
    await _audit(
        request,
        "segment.saved",
        saved,
        {"name": saved.name, "rules": segments.rules_to_json(checked)},
    )
    return RedirectResponse(f"/admin/segments/{saved.id}?done=saved", status_code=303)


@staff_route(Permission.EDIT_PEOPLE)
async def segment_delete(request: Request) -> Response:
    """Delete a segment; follow-up emails sent to it send nothing from then on."""
    segment = await _segment_of(request)
    if segment is None:
        return _missing(request)
    steps = [step.id for step in await segments.used_by(segment)]
    await segments.delete(segment)
    await _audit(request, "segment.deleted", segment, {"name": segment.name, "steps": steps})
    return RedirectResponse("/admin/segments?done=deleted", status_code=303)


def _filename(name: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:60] or "segment"
    return f"{slug}-{auth.utcnow().date().isoformat()}.csv"


async def _csv(
    request: Request, rules: segments.Rules, name: str, segment: Segment | None
) -> Response:
    found = await segments.members(rules, now=auth.utcnow())
    body = await segments.export_csv(found, now=auth.utcnow())
    await audit.record(
        action="segment.exported",
        actor=staff_user(request),
        target=(f"segment {segment.id} ({segment.name})" if segment else "unsaved segment")[:255],
        ip=client_ip(request),
        details={"members": len(found), "rules": segments.rules_to_json(rules)},
    )
    return Response(
        body,
        media_type="text/csv; charset=utf-8",
        headers={
            "Content-Disposition": f'attachment; filename="{_filename(name)}"',
            "Cache-Control": "no-store",
        },
    )


@staff_route(Permission.VIEW_ANALYTICS)
async def segment_export(request: Request) -> Response:
    """The members of a saved segment as CSV."""
    segment = await _segment_of(request)
    if segment is None:
        return _missing(request)
    return await _csv(request, segments.rules_from(segment.rules), segment.name, segment)


@staff_route(Permission.VIEW_ANALYTICS)
async def segment_export_typed(request: Request) -> Response:
    """The members of the rules as typed (saved or not) as CSV."""
    form = await _typed(request)
    segment = await _editing(form)
    checked = await segment_forms.check_rules(form)
    if isinstance(checked, FormErrors):
        return await _editor(
            request,
            segment,
            form,
            rules=None,
            errors=checked,
            error="Check the highlighted fields.",
            status=400,
        )
    return await _csv(request, checked, form.get("name") or "segment", segment)


async def _audit(request: Request, action: str, segment: Segment, details: dict[str, Any]) -> None:
    await audit.record(
        action=action,
        actor=staff_user(request),
        target=f"segment {segment.id} ({segment.name})"[:255],
        ip=client_ip(request),
        details=details,
    )
