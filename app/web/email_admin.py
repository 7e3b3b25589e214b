"""The emails tab of a webinar: its sequence of reminders and follow-ups, edited without code.

Handlers read the form and answer; what a step means and when it is sent is decided in
app.services.sequences.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from app.i18n import language_or_default
from app.models import Audience, EmailStep, Registrant, Segment, StepKind, Webinar, WebinarSession
from app.services import audit, auth, mail, sequences, sessions
from app.services.content import FormErrors
from app.services.permissions import Permission, can
from app.settings import get_settings
from app.web.access import client_ip, staff_route, staff_user
from app.web.templating import render
from app.web.webinar_admin import webinar_missing, webinar_of

ACTIVE = "/admin/webinars"
FIELDS = ("kind", "subject", "body", "amount", "unit", "audience", "segment", "enabled")
FIELD_MAX = sequences.BODY_MAX + 1  # one more than allowed, so that too long is reported
SAMPLE_NAME = "Ada Lovelace"
SAMPLE_EMAIL = "ada@example.com"
AUDIENCES = [
    (Audience.ATTENDED.value, "People who watched to the end"),
    (Audience.LEFT_EARLY.value, "People who joined but left early"),
    (Audience.MISSED.value, "People who missed it"),
    (Audience.CLICKED_OFFER.value, "People who clicked the offer"),
    (Audience.SEGMENT.value, "People in a segment"),
    (Audience.EVERYONE.value, "Everyone"),
]
UNITS = [("minutes", "minutes"), ("hours", "hours"), ("days", "days")]
LATE_RULES = [
    ("skip", "Nothing more: the confirmation already says when it starts"),
    ("latest", "The most recent reminder they missed, at once"),
]
_NOTICES = {
    "saved": "Email saved. Registrants' emails are planned again within seconds.",
    "deleted": "Email removed. Its planned messages are cancelled.",
    "late": "Saved what late registrants get.",
}


def _form_of(step: EmailStep) -> dict[str, str]:
    amount, unit = sequences.split_minutes(step.minutes)
    return {
        "kind": step.kind.value,
        "subject": step.subject,
        "body": step.body,
        "amount": str(amount),
        "unit": unit,
        "audience": step.audience.value,
        "segment": str(sequences.segment_of(step) or ""),
        "enabled": "on" if step.enabled else "",
    }


def _new_form(kind: StepKind) -> dict[str, str]:
    if kind == StepKind.REMINDER:
        return {"kind": kind.value, "amount": "2", "unit": "hours", "enabled": "on",
                "subject": "Soon: {webinar}",
                "body": "Hello {first_name},\n\n“{webinar}” starts {when}.\n\n"
                "Your personal join link:\n{join_link}"}  # fmt: skip
    return {"kind": StepKind.FOLLOW_UP.value, "amount": "1", "unit": "days", "enabled": "on",
            "audience": Audience.EVERYONE.value, "subject": "About {webinar}",
            "body": "Hello {first_name},\n\nthank you for registering for “{webinar}”.\n\n"
            "Watch the recording with your personal link:\n{replay_link}"}  # fmt: skip


async def _sample(webinar: Webinar, request: Request) -> tuple[dict[str, str], str]:
    """Variables for a preview: the signed-in person as the registrant, the next session."""
    user = staff_user(request)
    now = auth.utcnow()
    rules = await sessions.load_rules(webinar)
    start = now + timedelta(days=1)
    if rules is not None:
        offer = await sessions.offer(webinar, rules, now)
        if offer.slots:
            start = offer.slots[0].starts_at
    zone = rules.zone if rules is not None else None
    language = language_or_default(webinar.language)
    registrant = Registrant(timezone=zone.key if zone else "UTC", language=language)
    session = WebinarSession(starts_at=start)
    base = get_settings().public_base_url
    values = sequences.values_for(
        registrant,
        webinar,
        session,
        email=user.email or SAMPLE_EMAIL,
        name=user.name or SAMPLE_NAME,
        join_link=f"{base}/j/your-personal-link",
    )
    return values, language


async def _page(
    request: Request, webinar: Webinar, *, notice: str = "", error: str = "", status: int = 200
) -> Response:
    steps = await sequences.steps_of(webinar)
    names = dict(await Segment.all().values_list("id", "name"))
    return render(
        request,
        "admin/webinar_emails.html",
        {
            "webinar": webinar,
            "tab": "emails",
            "steps": [
                (
                    step,
                    sequences.describe(
                        step, segment_name=names.get(sequences.segment_of(step) or 0)
                    ),
                )
                for step in steps
            ],
            "own_confirmation": any(step.kind == StepKind.CONFIRMATION for step in steps),
            "late_rules": LATE_RULES,
            "reminders": sum(1 for step in steps if step.kind == StepKind.REMINDER),
            "max_reminders": sequences.MAX_REMINDERS,
            "can_edit": can(staff_user(request).role, Permission.EDIT_WEBINARS),
            "notice": notice,
            "error": error,
            "active": ACTIVE,
        },
        status=status,
    )


async def _editor(
    request: Request,
    webinar: Webinar,
    form: dict[str, str],
    *,
    step: EmailStep | None,
    errors: FormErrors | None = None,
    notice: str = "",
    error: str = "",
    status: int = 200,
) -> Response:
    values, language = await _sample(webinar, request)
    preview: dict[str, str] | None = None
    choices: list[tuple[int, str]] = (
        await Segment.all().order_by("name", "id").values_list("id", "name")
    )
    checked = sequences.check_step(form)
    if isinstance(checked, sequences.StepInput):
        subject, text, _ = sequences.render_step(
            checked, webinar, values, language=language, unsubscribe_url=""
        )
        preview = {
            "subject": subject,
            "text": text,
            "html": sequences.to_html(checked.body, values),
            "when": sequences.describe(
                checked, segment_name=dict(choices).get(checked.segment_id or 0)
            ),
        }
    kind = form.get("kind", "")
    return render(
        request,
        "admin/webinar_email_step.html",
        {
            "webinar": webinar,
            "tab": "emails",
            "step": step,
            "form": form,
            "kind": kind,
            "errors": (errors.errors if errors else {}),
            "preview": preview,
            "variables": sequences.VARIABLES,
            "audiences": AUDIENCES,
            "segments": choices,
            "segment_deleted": step is not None
            and step.audience == Audience.SEGMENT
            and sequences.segment_of(step) is None,
            "units": UNITS,
            "can_edit": can(staff_user(request).role, Permission.EDIT_WEBINARS),
            "notice": notice,
            "error": error,
            "active": ACTIVE,
        },
        status=status,
    )


async def _step_of(request: Request, webinar: Webinar) -> EmailStep | None:
    return await EmailStep.get_or_none(id=request.path_params["step_id"], webinar_id=webinar.id)


@staff_route(Permission.VIEW_WEBINARS)
async def emails_page(request: Request) -> Response:
    """The webinar's sequence: when each email goes out, to whom, and what late registrants get."""
    webinar = await webinar_of(request)
    if webinar is None:
        return webinar_missing(request)
    return await _page(
        request, webinar, notice=_NOTICES.get(request.query_params.get("done", ""), "")
    )


@staff_route(Permission.EDIT_WEBINARS)
async def late_rule_save(request: Request) -> Response:
    """Store what someone who registers after a reminder's moment gets."""
    webinar = await webinar_of(request)
    if webinar is None:
        return webinar_missing(request)
    form = await request.form()
    rule = str(form.get("late_reminders") or "")
    await form.close()
    if not await sequences.set_late_rule(webinar, rule):
        return await _page(request, webinar, error="Choose one of the options.", status=400)
    await _audit(request, webinar, "emails.late_rule", {"rule": rule})
    return RedirectResponse(f"/admin/webinars/{webinar.id}/emails?done=late", status_code=303)


@staff_route(Permission.VIEW_WEBINARS)
async def step_new(request: Request) -> Response:
    """The editor for a new reminder or follow-up."""
    webinar = await webinar_of(request)
    if webinar is None:
        return webinar_missing(request)
    wanted = request.query_params.get("kind")
    if wanted == StepKind.CONFIRMATION.value:
        start = sequences.default_confirmation(language_or_default(webinar.language))
        form = {"kind": start.kind.value, "subject": start.subject, "body": start.body}
        return await _editor(request, webinar, form, step=None)
    kind = StepKind.FOLLOW_UP if wanted == StepKind.FOLLOW_UP.value else StepKind.REMINDER
    return await _editor(request, webinar, _new_form(kind), step=None)


@staff_route(Permission.VIEW_WEBINARS)
async def step_page(request: Request) -> Response:
    """The editor of one email of the sequence, with its preview."""
    webinar = await webinar_of(request)
    if webinar is None:
        return webinar_missing(request)
    step = await _step_of(request, webinar)
    if step is None:
        return webinar_missing(request)
    return await _editor(request, webinar, _form_of(step), step=step)


@staff_route(Permission.EDIT_WEBINARS)
async def step_save(request: Request) -> Response:
    """Preview, save, send a test of, or delete one email of the sequence."""
    webinar = await webinar_of(request)
    if webinar is None:
        return webinar_missing(request)
    step: EmailStep | None = None
    if "step_id" in request.path_params:
        step = await _step_of(request, webinar)
        if step is None:
            return webinar_missing(request)
    raw = await request.form()
    form = {name: str(raw.get(name) or "")[:FIELD_MAX] for name in FIELDS}
    action = str(raw.get("action") or "save")
    await raw.close()
    if step is not None:
        form["kind"] = step.kind.value  # a step keeps its kind; the form cannot change it
    if action == "delete" and step is not None:
        await sequences.delete_step(webinar, step)
        await _audit(request, webinar, "emails.step_deleted", {"step": step.id})
        return RedirectResponse(
            f"/admin/webinars/{webinar.id}/emails?done=deleted", status_code=303
        )
    checked = sequences.check_step(form)
    segment_id = checked.segment_id if isinstance(checked, sequences.StepInput) else None
    if segment_id is not None and not await Segment.exists(id=segment_id):
        checked = FormErrors()
        checked.add("segment", "That segment was deleted: choose another.")
    if isinstance(checked, FormErrors):
        return await _editor(request, webinar, form, step=step, errors=checked, status=400)
    if action == "preview":
        return await _editor(request, webinar, form, step=step)
    if action == "test":
        return await _send_test(request, webinar, form, step, checked)
    saved = await sequences.save_step(webinar, checked, step)
    if isinstance(saved, str):
        return await _editor(request, webinar, form, step=step, error=saved, status=400)
    await _audit(
        request,
        webinar,
        "emails.step_saved",
        {"step": saved.id, "kind": saved.kind.value, "minutes": saved.minutes},
    )
    return RedirectResponse(f"/admin/webinars/{webinar.id}/emails?done=saved", status_code=303)


async def _send_test(
    request: Request,
    webinar: Webinar,
    form: dict[str, str],
    step: EmailStep | None,
    checked: sequences.StepInput,
) -> Response:
    """Send the email as it stands (saved or not) to the signed-in person."""
    user = staff_user(request)
    values, language = await _sample(webinar, request)
    subject, text, document = sequences.render_step(
        checked, webinar, values, language=language, unsubscribe_url=""
    )
    try:
        await mail.send_now(to=user.email, subject=f"[Test] {subject}", text=text, html=document)
    except Exception as failure:  # the editor sees why, the form keeps what was typed
        message = f"The test email could not be sent: {type(failure).__name__}: {failure}"
        return await _editor(request, webinar, form, step=step, error=message[:300], status=502)
    return await _editor(request, webinar, form, step=step, notice=f"Test sent to {user.email}.")


async def _audit(request: Request, webinar: Webinar, action: str, details: dict[str, Any]) -> None:
    await audit.record(
        action=action,
        actor=staff_user(request),
        target=f"webinar {webinar.id} ({webinar.slug})"[:255],
        ip=client_ip(request),
        details=details,
    )
