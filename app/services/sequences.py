"""Each webinar's email sequence: reminders, "starting now" and follow-ups by outcome.

The steps are rows an editor changes in the admin (`EmailStep`); every webinar starts with
sensible defaults. Each registration's emails are planned as `PlannedEmail` rows of kind
`step` by the scheduler's planner (`plan_pending`), not in the registration request: a new
registrant is stored with `plan_state` 1, and anything that changes when their emails are due
(another session, an edited sequence, a schedule edit) sets it to 2. The planner claims such
registrants with one conditional UPDATE, reads sessions and steps after the claim inside the
same transaction, cancels their still-scheduled step emails and plans the new ones; a change
committed after the claim sets the state again, so the next pass plans once more and no plan
is left built from stale data.

Rules, all relative to the registrant's session:

- a reminder is due `minutes` before the start, "starting now" at the start, a follow-up
  `minutes` after the end (start plus the video's length);
- a step whose moment has passed when it is planned is not planned (no "starts in 1 hour"
  ten minutes before). For a new registrant, the webinar's late rule may instead send the most
  recent missed reminder at once ("latest"; default "skip": the confirmation says when it is);
- an email already sent for the same step and session is not planned again;
- when it is sent, a step email is checked once more: not after the start for a reminder, not
  more than 15 minutes late for "starting now", not more than a day late for a follow-up, not
  to an unsubscribed or suppressed address, not if the registrant moved to another session,
  and a follow-up only to its audience (what the person did, read from their `Attendance` row
  as the dashboards count it, or from their events with the same rule while there is no row;
  for a segment, whether their contact belongs to it at that moment, worked out once per
  batch and segment; a step whose segment was deleted sends nothing).
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from tortoise import connections
from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.transactions import in_transaction

from app.i18n import format_when, gettext, language_or_default, zone_label
from app.models import (
    AnalyticsEvent,
    Attendance,
    Audience,
    EmailState,
    EmailStep,
    PlannedEmail,
    Registrant,
    StepKind,
    Webinar,
    WebinarSession,
)
from app.services import calendar, content, crypto, delivery, rows, segments, unsubscribe
from app.services.attendance_rows import stayed, video_durations
from app.services.content import FormErrors
from app.settings import get_settings

STEP_EMAIL = "step"
PLAN_NEW = 1
PLAN_AGAIN = 2
PLANNED = 0
LATE_RULES = ("skip", "latest")
MAX_REMINDERS = 10
MINUTES_PER_DAY = 60 * 24
MAX_MINUTES = 30 * MINUTES_PER_DAY  # thirty days either side of a session
SUBJECT_MAX = 200
BODY_MAX = 20_000
STARTING_GRACE = timedelta(minutes=15)
FOLLOW_UP_GRACE = timedelta(days=1)
# The analytics events the room records (see the events store); read here for audiences.
JOIN_EVENTS = ("join", "heartbeat", "leave")
OFFER_CLICK = "offer_click"

VARIABLES: dict[str, str] = {
    "name": "the registrant's name (or nothing)",
    "first_name": "the first word of the name",
    "email": "the registrant's email address",
    "webinar": "the webinar's title",
    "when": "the session's date and time in the registrant's zone and language",
    "join_link": "the personal join link",
    "replay_link": "the link to watch the recording (the same personal link)",
    "register_link": "the webinar's registration page",
}
LINK_VARIABLES = ("join_link", "replay_link", "register_link")
_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


# --- Templates ---------------------------------------------------------------------------------


def unknown_variables(text: str) -> list[str]:
    """The placeholders in `text` that are not variables, in order of appearance."""
    seen: list[str] = []
    for name in _PLACEHOLDER.findall(text):
        if name not in VARIABLES and name not in seen:
            seen.append(name)
    return seen


def fill(text: str, values: Mapping[str, str]) -> str:
    """`text` with each known `{variable}` replaced; anything else is left as written."""
    return _PLACEHOLDER.sub(lambda match: values.get(match[1], match[0]), text)


async def confirmation_of(webinar: Webinar) -> EmailStep | None:
    """The webinar's own confirmation text, or None for the built-in one."""
    return await EmailStep.filter(webinar_id=webinar.id, kind=StepKind.CONFIRMATION).first()


def fill_confirmation(step: EmailStep, values: Mapping[str, str]) -> tuple[str, str, str]:
    """Subject, text and HTML paragraphs of a confirmation for one registrant."""
    subject = _one_line(fill(step.subject, values))
    return subject, fill(step.body, values).strip(), to_html(step.body, values)


def html_values(values: Mapping[str, str]) -> dict[str, str]:
    """Variables as HTML: text escaped, links as clickable anchors."""
    safe = {name: html.escape(value) for name, value in values.items()}
    for name in LINK_VARIABLES:
        if name in values:
            url = html.escape(values[name])
            safe[name] = f'<a href="{url}">{url}</a>'
    return safe


def paragraphs(body: str) -> str:
    """The body as HTML paragraphs (escaped, line breaks kept), its variables left to fill."""
    parts = [part for part in re.split(r"\n\s*\n", body.strip()) if part.strip()]
    return "\n".join(
        "<p>" + html.escape(part.strip()).replace("\n", "<br>\n") + "</p>" for part in parts
    )


def to_html(body: str, values: Mapping[str, str]) -> str:
    """The body as HTML paragraphs: text escaped, links clickable, line breaks kept."""
    return fill(paragraphs(body), html_values(values))


def layout(webinar: Webinar, inner: str, *, language: str, footer: str) -> str:
    """A complete HTML email in the webinar's colours."""
    theme = content.theme_from(webinar.theme)
    return (
        f'<!doctype html>\n<html lang="{html.escape(language)}">\n'
        f'<body style="margin:0;padding:0;background:{theme.background};color:{theme.text};'
        f'font-family:{html.escape(theme.font_stack)};">\n'
        f'<div style="max-width:600px;margin:0 auto;padding:24px;">\n'
        f'<p style="margin:0 0 16px;padding:12px 16px;background:{theme.primary};'
        f'color:{theme.on_primary};font-weight:bold;">{html.escape(webinar.title)}</p>\n'
        f"{inner}\n"
        f'<p style="margin-top:32px;font-size:12px;opacity:0.8;">{footer}</p>\n'
        "</div>\n</body>\n</html>\n"
    )


# --- Defaults and the editor's checks ---------------------------------------------------------


@dataclass(frozen=True)
class StepInput:
    """A valid step from the editor's form."""

    kind: StepKind
    minutes: int
    audience: Audience
    enabled: bool
    subject: str
    body: str
    segment_id: int | None = None  # the audience "segment" only


def default_steps(language: str) -> list[StepInput]:
    """The sequence a new webinar starts with, in its language."""

    def _(message: str) -> str:
        return gettext(language, message)

    hello = _("Hello {first_name},")
    link = _("Your personal join link:") + "\n{join_link}"
    reminder_body = "\n\n".join([hello, _("“{webinar}” starts {when}."), link])

    def reminder(minutes: int, subject: str) -> StepInput:
        return StepInput(
            StepKind.REMINDER, minutes, Audience.EVERYONE, True, subject, reminder_body
        )

    return [
        reminder(24 * 60, _("Tomorrow: {webinar}")),
        reminder(60, _("In one hour: {webinar}")),
        reminder(10, _("Starting in 10 minutes: {webinar}")),
        StepInput(
            StepKind.STARTING,
            0,
            Audience.EVERYONE,
            True,
            _("We're live: {webinar}"),
            "\n\n".join([hello, _("“{webinar}” is starting now."), link]),
        ),
        StepInput(
            StepKind.FOLLOW_UP,
            60,
            Audience.ATTENDED,
            True,
            _("Thank you for joining {webinar}"),
            "\n\n".join(
                [
                    hello,
                    _("thank you for watching “{webinar}” to the end."),
                    _("You can watch it again with your personal link:") + "\n{replay_link}",
                ]
            ),
        ),
        StepInput(
            StepKind.FOLLOW_UP,
            60,
            Audience.LEFT_EARLY,
            True,
            _("The rest of {webinar}"),
            "\n\n".join(
                [
                    hello,
                    _("thank you for joining “{webinar}”. You left before the end."),
                    _("Watch the rest with your personal link:") + "\n{replay_link}",
                ]
            ),
        ),
        StepInput(
            StepKind.FOLLOW_UP,
            60,
            Audience.MISSED,
            True,
            _("Sorry we missed you: {webinar}"),
            "\n\n".join(
                [
                    hello,
                    _("we missed you at “{webinar}”."),
                    _("Watch the recording with your personal link:") + "\n{replay_link}",
                    _("Or register for another session:") + "\n{register_link}",
                ]
            ),
        ),
    ]


def default_confirmation(language: str) -> StepInput:
    """A starting point for a webinar's own confirmation text, in its language."""

    def _(message: str) -> str:
        return gettext(language, message)

    body = [
        _("Hello {first_name},"),
        _("you are registered for “{webinar}”, {when}."),
        _("Your personal join link:") + "\n{join_link}",
        _("Please do not share this link: it is yours alone."),
    ]
    return StepInput(
        StepKind.CONFIRMATION,
        0,
        Audience.EVERYONE,
        True,
        _("You're registered: {webinar}"),
        "\n\n".join(body),
    )


async def ensure_steps(webinar: Webinar) -> None:
    """Give a webinar its default sequence the first time anyone needs it."""
    if webinar.emails_configured:
        return
    async with in_transaction():
        claimed = await Webinar.filter(id=webinar.id, emails_configured=False).update(
            emails_configured=True
        )
        if claimed:
            language = language_or_default(webinar.language)
            await EmailStep.bulk_create(
                [EmailStep(webinar_id=webinar.id, **vars(step)) for step in default_steps(language)]
            )
    webinar.emails_configured = True


async def steps_of(webinar: Webinar) -> list[EmailStep]:
    """The webinar's steps in sequence order: reminders, starting now, follow-ups."""
    await ensure_steps(webinar)
    return sorted(await EmailStep.filter(webinar_id=webinar.id), key=step_order)


def step_order(step: EmailStep | StepInput) -> tuple[int, int, str]:
    """Sort key: by moment relative to the session, then audience."""
    if step.kind == StepKind.CONFIRMATION:
        return (-1, 0, "")
    if step.kind == StepKind.REMINDER:
        return (0, -step.minutes, "")
    if step.kind == StepKind.STARTING:
        return (1, 0, "")
    return (2, step.minutes, f"{list(Audience).index(step.audience):02d}")


def _one_line(raw: str) -> str:
    return " ".join(raw.split())


def check_step(form: Mapping[str, str], *, kind: StepKind | None = None) -> StepInput | FormErrors:
    """A step from the editor's form, or the errors to show next to its fields."""
    errors = FormErrors()
    try:
        chosen = kind or StepKind(form.get("kind", ""))
    except ValueError:
        errors.add("kind", "Choose when this email is sent.")
        return errors
    subject = _one_line(form.get("subject", ""))
    body = form.get("body", "").replace("\r\n", "\n").strip()
    if not subject:
        errors.add("subject", "Enter a subject.")
    elif len(subject) > SUBJECT_MAX:
        errors.add("subject", f"Keep the subject under {SUBJECT_MAX} characters.")
    if not body:
        errors.add("body", "Write the email.")
    elif len(body) > BODY_MAX:
        errors.add("body", f"Keep the email under {BODY_MAX:,} characters.")
    for key, text in (("subject", subject), ("body", body)):
        unknown = unknown_variables(text)
        if unknown and key not in errors.errors:
            names = ", ".join("{" + name + "}" for name in unknown)
            known = ", ".join("{" + name + "}" for name in VARIABLES)
            errors.add(key, f"Unknown variable {names}. Available: {known}.")
    minutes = 0
    if chosen in (StepKind.REMINDER, StepKind.FOLLOW_UP):
        minutes = _minutes(form, errors, chosen)
    audience = Audience.EVERYONE
    segment_id: int | None = None
    if chosen == StepKind.FOLLOW_UP:
        try:
            audience = Audience(form.get("audience", ""))
        except ValueError:
            errors.add("audience", "Choose who gets this follow-up.")
        if audience == Audience.SEGMENT:
            raw_segment = form.get("segment", "").strip()
            if raw_segment.isdigit() and len(raw_segment) < 10:
                segment_id = int(raw_segment)
            else:
                errors.add("segment", "Choose the segment that gets this follow-up.")
    if errors:
        return errors
    # The confirmation carries the personal link: it is always sent.
    enabled = chosen == StepKind.CONFIRMATION or form.get("enabled") in {"1", "on", "true"}
    return StepInput(chosen, minutes, audience, enabled, subject, body, segment_id)


def _minutes(form: Mapping[str, str], errors: FormErrors, kind: StepKind) -> int:
    raw_amount = form.get("amount", "").strip()
    unit = form.get("unit", "minutes")
    factor = {"minutes": 1, "hours": 60, "days": 60 * 24}.get(unit)
    if factor is None:
        errors.add("amount", "Choose minutes, hours or days.")
        return 0
    try:
        amount = int(raw_amount)
    except ValueError:
        errors.add("amount", "Enter a whole number.")
        return 0
    minutes = amount * factor
    low = 1 if kind == StepKind.REMINDER else 0
    if not low <= minutes <= MAX_MINUTES:
        errors.add("amount", f"Enter between {low} minute(s) and 30 days.")
    return minutes


def split_minutes(minutes: int) -> tuple[int, str]:
    """The amount and unit the editor shows for a number of minutes."""
    if minutes and minutes % (60 * 24) == 0:
        return minutes // (60 * 24), "days"
    if minutes and minutes % 60 == 0:
        return minutes // 60, "hours"
    return minutes, "minutes"


def describe(step: EmailStep | StepInput, *, segment_name: str | None = None) -> str:
    """When a step goes out, in the editor's words (`segment_name` for a segment's follow-up)."""
    amount, unit = split_minutes(step.minutes)
    span = f"{amount} {unit[:-1] if amount == 1 else unit}"
    if step.kind == StepKind.REMINDER:
        return f"{span} before the start"
    if step.kind == StepKind.STARTING:
        return "At the start"
    if step.kind == StepKind.CONFIRMATION:
        return "At registration"
    after = "at the end" if not step.minutes else f"{span} after the end"
    said = f"{after}, to {AUDIENCE_LABELS[step.audience]}"
    if step.audience == Audience.SEGMENT:
        if segment_of(step) is None:
            said = f"{after}, to a deleted segment (sends nothing)"
        elif segment_name:
            said += f" “{segment_name}”"  # as written: capitalize() would lower its case
        return said[:1].upper() + said[1:]
    return said.capitalize()


def segment_of(step: EmailStep | StepInput) -> int | None:
    """The segment a follow-up is sent to (None: another audience, or the segment was deleted)."""
    segment_id: int | None = getattr(step, "segment_id", None)
    return segment_id


AUDIENCE_LABELS: dict[Audience, str] = {
    Audience.EVERYONE: "everyone",
    Audience.ATTENDED: "people who watched to the end",
    Audience.LEFT_EARLY: "people who left early",
    Audience.MISSED: "people who missed it",
    Audience.CLICKED_OFFER: "people who clicked the offer",
    Audience.SEGMENT: "the segment",
}


async def save_step(webinar: Webinar, data: StepInput, step: EmailStep | None) -> EmailStep | str:
    """Store a new or changed step and re-plan the webinar's registrants; or why it cannot be."""
    own = EmailStep.filter(webinar_id=webinar.id, kind=StepKind.CONFIRMATION)
    if data.kind == StepKind.CONFIRMATION and step is None and await own.exists():
        return "This webinar already has its own confirmation: edit that one."
    if data.kind == StepKind.REMINDER and (step is None or step.kind != StepKind.REMINDER):
        reminders = await EmailStep.filter(webinar_id=webinar.id, kind=StepKind.REMINDER).count()
        if reminders >= MAX_REMINDERS:
            return f"A webinar has at most {MAX_REMINDERS} reminders."
    async with in_transaction():
        if step is None:
            step = await EmailStep.create(webinar_id=webinar.id, **vars(data))
        else:
            step.update_from_dict(vars(data))
            await step.save()
        await replan_webinar(webinar.id)
    return step


async def delete_step(webinar: Webinar, step: EmailStep) -> None:
    """Remove a step; its planned emails are cancelled by the re-plan.

    Without a confirmation of its own, a webinar sends the built-in one.
    """
    async with in_transaction():
        await step.delete()
        await replan_webinar(webinar.id)


async def set_late_rule(webinar: Webinar, rule: str) -> bool:
    """Store what late registrants get; False for an unknown rule."""
    if rule not in LATE_RULES:
        return False
    webinar.late_reminders = rule
    await Webinar.filter(id=webinar.id).update(late_reminders=rule)
    return True


async def replan_webinar(webinar_id: int) -> int:
    """Mark every registrant of the webinar for planning again; how many."""
    return await Registrant.filter(webinar_id=webinar_id, plan_state=PLANNED).update(
        plan_state=PLAN_AGAIN
    )


async def replan_registrant(registrant_id: int) -> None:
    """Mark one registrant for planning again (their session changed)."""
    await Registrant.filter(id=registrant_id, plan_state=PLANNED).update(plan_state=PLAN_AGAIN)


# --- Planning ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Due:
    """One step email to plan: which step, when."""

    step_id: int
    due_at: datetime


def shifted(moment: datetime, minutes: int, zone: ZoneInfo) -> datetime:
    """`moment` moved by `minutes` (negative: earlier); whole days keep the wall-clock time.

    "1 day before" a Monday 10:00 session is Sunday 10:00 in the registrant's zone, also when
    the clocks change on that Sunday (then 23 or 25 hours before). A wall time that the change
    skips or repeats is read as the zone's rules do (`fold=0`), so it always exists.
    """
    if minutes % MINUTES_PER_DAY:
        return moment + timedelta(minutes=minutes)
    local = moment.astimezone(zone).replace(tzinfo=None) + timedelta(
        days=minutes // MINUTES_PER_DAY
    )
    return local.replace(tzinfo=zone).astimezone(UTC)


def moments(
    steps: Iterable[EmailStep],
    *,
    starts_at: datetime,
    duration: timedelta,
    on_demand: bool,
    zone: ZoneInfo,
) -> list[Due]:
    """When each enabled step of a session falls due (before any late or repeat filter)."""
    ends_at = starts_at + duration
    planned = []
    for step in steps:
        if not step.enabled or step.kind == StepKind.CONFIRMATION:
            continue  # the confirmation goes out with the registration, not on a plan
        if step.kind == StepKind.FOLLOW_UP:
            planned.append(Due(step.id, shifted(ends_at, step.minutes, zone)))
        elif on_demand:
            continue  # the viewer starts when they like: nothing to remind them of
        elif step.kind == StepKind.REMINDER:
            planned.append(Due(step.id, shifted(starts_at, -step.minutes, zone)))
        else:
            planned.append(Due(step.id, starts_at))
    return sorted(planned, key=lambda due: (due.due_at, due.step_id))


def choose(
    candidates: list[Due],
    reminders: set[int],
    *,
    now: datetime,
    starts_at: datetime,
    new: bool,
    late_rule: str,
    already_sent: set[int],
) -> list[Due]:
    """The emails to plan: due later than now and not sent already, plus the late catch-up."""
    planned = [due for due in candidates if due.due_at > now and due.step_id not in already_sent]
    if new and late_rule == "latest" and starts_at > now:
        missed = [
            due
            for due in candidates
            if due.step_id in reminders and due.due_at <= now and due.step_id not in already_sent
        ]
        if missed:
            planned.insert(0, Due(missed[-1].step_id, now))
    return planned


async def plan_pending(now: datetime, *, limit: int = 500) -> int:
    """Plan the step emails of registrants waiting for it; how many registrants were planned."""
    waiting: list[Any] = (
        await Registrant.filter(plan_state__gt=PLANNED)
        .order_by("id")
        .limit(limit)
        .values_list("id", "webinar_id")
    )
    if not waiting:
        return 0
    webinars = {w.id: w for w in await Webinar.filter(id__in={wid for _, wid in waiting})}
    durations: dict[int, timedelta] = {}
    for webinar in webinars.values():
        await ensure_steps(webinar)
        durations[webinar.id] = await calendar.session_duration(webinar)
    ids = [int(rid) for rid, _ in waiting]
    domain = await delivery.message_domain()
    async with in_transaction() as connection:
        claimed = await _claim(connection, ids)
        if not claimed:
            return 0
        steps: dict[int, list[EmailStep]] = {}
        for step in await EmailStep.filter(webinar_id__in=list(webinars)):
            steps.setdefault(step.webinar_id, []).append(step)
        session_ids = {c.session_id for c in claimed if c.session_id is not None}
        found = {s.id: s for s in await WebinarSession.filter(id__in=session_ids)}
        claimed_ids = [c.registrant_id for c in claimed]
        await PlannedEmail.filter(
            registrant_id__in=claimed_ids, kind=STEP_EMAIL, state=EmailState.SCHEDULED
        ).update(state=EmailState.CANCELLED, error="re-planned")
        sent = await _already_sent(claimed_ids)
        planned: list[PlannedEmail] = []
        for claim in claimed:
            session = found.get(claim.session_id) if claim.session_id is not None else None
            owner = webinars.get(claim.webinar_id)
            if session is None or owner is None or session.closed_at is not None:
                continue
            own = steps.get(claim.webinar_id, [])
            candidates = moments(
                own,
                starts_at=session.starts_at,
                duration=durations[claim.webinar_id],
                on_demand=session.kind == "on_demand",
                zone=claim.zone,
            )
            chosen = choose(
                candidates,
                {step.id for step in own if step.kind == StepKind.REMINDER},
                now=now,
                starts_at=session.starts_at,
                new=claim.state == PLAN_NEW,
                late_rule=owner.late_reminders,
                already_sent=sent.get((claim.registrant_id, session.id), set()),
            )
            for due in chosen:
                planned.append(
                    PlannedEmail(
                        kind=STEP_EMAIL,
                        to_email="",
                        registrant_id=claim.registrant_id,
                        due_at=due.due_at,
                        message_id=delivery.new_message_id(domain),
                        context={"step_id": due.step_id, "session_id": session.id},
                    )
                )
        await _fill_addresses(planned)
        await rows.insert_many(connection, planned, returning=())
    return len(claimed)


@dataclass(frozen=True)
class _Claimed:
    registrant_id: int
    webinar_id: int
    session_id: int | None
    state: int
    zone: ZoneInfo


async def _claim(connection: BaseDBAsyncClient, ids: list[int]) -> list[_Claimed]:
    """Set the registrants' state to planned if it still asks for planning; what they hold.

    The session and zone come from the UPDATE's own RETURNING, so they are the row as claimed
    (PostgreSQL locks it until commit): a move committed just before is seen, one committed
    after sets the state again. Whether a registrant is new is read just before; it only
    decides the late registrant's catch-up.
    """
    marks = rows.placeholders(connection, 0, len(ids))
    states = {
        int(row["id"]): int(row["plan_state"])
        for row in await connection.execute_query_dict(
            f"SELECT id, plan_state FROM registrant WHERE id IN ({marks})",  # noqa: S608
            ids,
        )
    }
    claimed = await connection.execute_query_dict(
        f"UPDATE registrant SET plan_state = 0 WHERE id IN ({marks}) "  # noqa: S608
        "AND plan_state > 0 RETURNING id, webinar_id, session_id, timezone",
        ids,
    )
    return [
        _Claimed(
            registrant_id=int(row["id"]),
            webinar_id=int(row["webinar_id"]),
            session_id=None if row["session_id"] is None else int(row["session_id"]),
            state=states.get(int(row["id"]), PLAN_AGAIN),
            zone=calendar.zone_named(str(row["timezone"])),
        )
        for row in claimed
    ]


async def _already_sent(registrant_ids: list[int]) -> dict[tuple[int, int], set[int]]:
    sent: dict[tuple[int, int], set[int]] = {}
    for row in await PlannedEmail.filter(
        registrant_id__in=registrant_ids,
        kind=STEP_EMAIL,
        state__in=[EmailState.SENT, EmailState.SENDING],
    ).values("registrant_id", "context"):
        context = row["context"] or {}
        key = (int(row["registrant_id"]), int(context.get("session_id") or 0))
        sent.setdefault(key, set()).add(int(context.get("step_id") or 0))
    return sent


async def _fill_addresses(planned: list[PlannedEmail]) -> None:
    ids = {email.registrant_id for email in planned}
    if not ids:
        return
    addresses = dict(await Registrant.filter(id__in=ids).values_list("id", "contact__email"))
    for email in planned:
        email.to_email = str(addresses.get(email.registrant_id, ""))


# --- Sending ----------------------------------------------------------------------------------


def values_for(
    registrant: Registrant,
    webinar: Webinar,
    session: WebinarSession,
    *,
    email: str,
    name: str,
    join_link: str,
    when: str | None = None,
) -> dict[str, str]:
    """The variables of one registrant's email (`when` when already known for the session)."""
    if when is None:
        when = session_time(session, registrant)
    base = get_settings().public_base_url
    return {
        "name": name,
        "first_name": name.split()[0] if name.split() else "",
        "email": email,
        "webinar": webinar.title,
        "when": when,
        "join_link": join_link,
        "replay_link": join_link,
        "register_link": f"{base}/w/{webinar.slug}",
    }


def session_time(session: WebinarSession, registrant: Registrant) -> str:
    """When the session starts, in the registrant's zone and language."""
    return _when(session, registrant.timezone, language_or_default(registrant.language))


def _when(session: WebinarSession, timezone: str, language: str) -> str:
    """When the session starts, in a zone (by name) and a supported language."""
    zone = calendar.zone_named(timezone)
    start = session.starts_at
    return f"{format_when(start, zone, language)} ({zone_label(zone, start)})"


def _stale(step: EmailStep, session: WebinarSession, duration: timedelta, now: datetime) -> str:
    if step.kind == StepKind.REMINDER and now >= session.starts_at:
        return "the session has begun: the reminder is stale"
    if step.kind == StepKind.STARTING and now > session.starts_at + STARTING_GRACE:
        return "more than 15 minutes after the start: stale"
    due = session.starts_at + duration + timedelta(minutes=step.minutes)
    if step.kind == StepKind.FOLLOW_UP and now > due + FOLLOW_UP_GRACE:
        return "more than a day late: stale"
    return ""


_LEFT, _RIGHT = "\x01", "\x02"  # literal braces of fixed text, kept out of `fill`


def _literal(text: str) -> str:
    return text.replace("{", _LEFT).replace("}", _RIGHT)


def _restore(text: str) -> str:
    return text.replace(_LEFT, "{").replace(_RIGHT, "}")


@dataclass(frozen=True)
class Compiled:
    """A step's subject, text and HTML for one language, built once and filled per person."""

    subject: str
    text: str
    html: str

    def fill(self, values: Mapping[str, str]) -> tuple[str, str, str]:
        """Subject, text and HTML for one person's variables."""
        return (
            _one_line(_restore(fill(self.subject, values))),
            _restore(fill(self.text, values)),
            _restore(fill(self.html, html_values(values))),
        )


class _Cut:
    """A template cut at its placeholders once: literal text (braces restored) and names in turn.

    Filling is a join, with what `fill` and `_restore` give for values without the two
    marker characters: a known name takes its value, an unknown one stays as written.
    """

    def __init__(self, template: str) -> None:
        self.pieces = _PLACEHOLDER.split(template)  # literal, name, literal, ..., literal
        self.names = frozenset(self.pieces[1::2])
        for index in range(0, len(self.pieces), 2):
            self.pieces[index] = _restore(self.pieces[index])

    def fill(self, values: Mapping[str, str]) -> str:
        """The template with one person's values."""
        out = self.pieces.copy()
        for index in range(1, len(out), 2):
            name = out[index]
            value = values.get(name)
            out[index] = "{" + name + "}" if value is None else value
        return "".join(out)


class _Prepared:
    """A compiled step cut for filling: the subject, text and HTML, and the HTML's variables."""

    def __init__(self, compiled: Compiled) -> None:
        self.subject = _Cut(compiled.subject)
        self.text = _Cut(compiled.text)
        self.html = _Cut(compiled.html)

    def fill(self, values: Mapping[str, str]) -> tuple[str, str, str]:
        """Subject, text and HTML for one person's variables, as `Compiled.fill` gives them."""
        shown = {
            name: _html_value(name, values[name]) for name in self.html.names if name in values
        }
        return (
            _one_line(self.subject.fill(values)),
            self.text.fill(values),
            self.html.fill(shown),
        )


def _html_value(name: str, value: str) -> str:
    """One variable as HTML, as `html_values` gives it."""
    escaped = html.escape(value)
    if name in LINK_VARIABLES:
        return f'<a href="{escaped}">{escaped}</a>'
    return escaped


def compile_step(
    step: EmailStep | StepInput, webinar: Webinar, *, language: str, with_unsubscribe: bool
) -> Compiled:
    """Build a step's templates once; `{unsubscribe_link}` is left for each person's link."""
    footer = gettext(language, "You get this email because you registered for {title}.")
    footer = _literal(footer.format(title=webinar.title))
    stop = gettext(language, "Unsubscribe")
    text = step.body.strip() + "\n\n-- \n" + footer
    footer_html = html.escape(footer)
    if with_unsubscribe:
        text += f"\n{_literal(stop)}: {{unsubscribe_link}}"
        footer_html += f' <a href="{{unsubscribe_link}}">{html.escape(_literal(stop))}</a>'
    shown = Webinar(title=_literal(webinar.title), theme=webinar.theme)
    return Compiled(
        subject=step.subject,
        text=text + "\n",
        html=layout(shown, paragraphs(step.body), language=language, footer=footer_html),
    )


def render_step(
    step: EmailStep | StepInput,
    webinar: Webinar,
    values: Mapping[str, str],
    *,
    language: str,
    unsubscribe_url: str,
) -> tuple[str, str, str]:
    """Subject, text and HTML of a step for one set of variables."""
    compiled = compile_step(
        step, webinar, language=language, with_unsubscribe=bool(unsubscribe_url)
    )
    return compiled.fill({**values, "unsubscribe_link": unsubscribe_url})


@dataclass(frozen=True, slots=True)
class _Person:
    """One registrant of a batch as read for sending: the registration and its contact."""

    registrant_id: int
    contact_id: int
    webinar_id: int
    session_id: int | None
    language: str
    timezone: str
    sealed_token: str
    email: str
    name: str
    unsubscribed: bool
    suppressed: bool


async def _people(ids: set[int]) -> dict[int, _Person]:
    """The batch's registrants with their contacts, in one query read as plain rows."""
    if not ids:
        return {}
    connection = connections.get("default")
    among, values = rows.any_of(connection.capabilities.dialect, 0, sorted(ids), sql_type="int")
    _, found = await connection.execute_query(
        "SELECT r.id, r.contact_id, r.webinar_id, r.session_id, r.language, r.timezone, "  # noqa: S608
        "r.join_token_sealed, c.email, c.name, c.unsubscribed_at IS NOT NULL, "
        "c.suppressed_at IS NOT NULL FROM registrant r JOIN contact c ON c.id = r.contact_id "
        f"WHERE r.id {among}",
        values,
    )
    people = (
        _Person(
            registrant_id=int(row[0]),
            contact_id=int(row[1]),
            webinar_id=int(row[2]),
            session_id=None if row[3] is None else int(row[3]),
            language=str(row[4]),
            timezone=str(row[5]),
            sealed_token=str(row[6] or ""),
            email=str(row[7]),
            name=str(row[8]),
            unsubscribed=bool(row[9]),
            suppressed=bool(row[10]),
        )
        for row in found
    )
    return {person.registrant_id: person for person in people}


def _by_doing(step: EmailStep | None) -> bool:
    """Whether a step's audience is decided by what the person did in the session."""
    return (
        step is not None
        and step.kind == StepKind.FOLLOW_UP
        and step.audience not in (Audience.EVERYONE, Audience.SEGMENT)
    )


async def _join_link(person: _Person) -> str:
    """The person's join link: their sealed token opened, else a new one (a new secret key)."""
    from app.services import registration  # the join link lives with registrations

    token = crypto.unseal(person.sealed_token) if person.sealed_token else None
    if token is None:
        token = await registration.usable_token(await Registrant.get(id=person.registrant_id))
    return registration.join_url(token)


@delivery.bulk_renderer(STEP_EMAIL)
async def _render_steps(rows: list[delivery.Claimed], now: datetime) -> list[delivery.Rendered]:
    """Reminders, "starting now" and follow-ups as they read when sent, many at once.

    What the rows need is read in a few queries (the people as plain rows, not model objects),
    each step's templates are built and cut once per language, what is shared by a webinar or
    a session's moment is worked out once, and each person's email is only filled in.
    """
    steps = {
        step.id: step
        for step in await EmailStep.filter(
            id__in={int(row.context.get("step_id") or 0) for row in rows}
        )
    }
    people = await _people({row.registrant_id for row in rows if row.registrant_id})
    webinars = {
        webinar.id: webinar
        for webinar in await Webinar.filter(id__in={p.webinar_id for p in people.values()})
    }
    sessions = {
        session.id: session
        for session in await WebinarSession.filter(
            id__in={p.session_id for p in people.values() if p.session_id is not None}
        )
    }
    durations = {
        webinar_id: await calendar.session_duration(webinar)
        for webinar_id, webinar in webinars.items()
    }
    # What people did matters only to follow-ups sent by it, so a batch of reminders reads none.
    doings = await _doings(
        [
            (person.registrant_id, person.session_id)
            for row in rows
            if (person := people.get(row.registrant_id or 0)) is not None
            and person.session_id is not None
            and _by_doing(steps.get(int(row.context.get("step_id") or 0)))
        ]
    )
    segment_members = await _segment_members(rows, steps, people, now)
    base = get_settings().public_base_url
    prepared: dict[tuple[int, str], _Prepared] = {}
    shared: dict[tuple[int, int, str, str], dict[str, str]] = {}  # webinar, session, zone, language
    answer: list[delivery.Rendered] = []
    for row in rows:
        context = row.context
        step = steps.get(int(context.get("step_id") or 0))
        person = people.get(row.registrant_id or 0)
        session = sessions.get(person.session_id or 0) if person is not None else None
        reason = _unwanted(step, person, session, context, durations, doings, segment_members, now)
        if reason or step is None or person is None or session is None:
            answer.append(delivery.Rendered(skip=reason))
            continue
        webinar = webinars[person.webinar_id]
        language = language_or_default(person.language)
        key = (step.id, language)
        template = prepared.get(key)
        if template is None:
            compiled = compile_step(step, webinar, language=language, with_unsubscribe=True)
            template = prepared[key] = _Prepared(compiled)
        moment = (webinar.id, session.id, person.timezone, language)
        common = shared.get(moment)
        if common is None:
            common = shared[moment] = {
                "webinar": webinar.title,
                "when": _when(session, person.timezone, language),
                "register_link": f"{base}/w/{webinar.slug}",
            }
        link = await _join_link(person)
        words = person.name.split()
        stop = unsubscribe.url_for(person.contact_id)
        values = {
            **common,
            "name": person.name,
            "first_name": words[0] if words else "",
            "email": person.email,
            "join_link": link,
            "replay_link": link,
            "unsubscribe_link": stop,
        }
        subject, text, document = template.fill(values)
        answer.append(
            delivery.Rendered(
                to=person.email,
                to_name=person.name,
                subject=subject,
                text=text,
                html=document,
                headers=unsubscribe.headers_with(stop),
            )
        )
    return answer


async def _segment_members(
    rows: list[delivery.Claimed],
    steps: Mapping[int, EmailStep],
    people: Mapping[int, _Person],
    now: datetime,
) -> dict[int, set[int]]:
    """Per segment of the batch's segment follow-ups, which of their contacts belong to it now."""
    wanted: dict[int, set[int]] = {}
    for row in rows:
        step = steps.get(int(row.context.get("step_id") or 0))
        person = people.get(row.registrant_id or 0)
        if step is None or person is None or step.audience != Audience.SEGMENT:
            continue
        segment_id = segment_of(step)
        if segment_id is not None:
            wanted.setdefault(segment_id, set()).add(person.contact_id)
    found: dict[int, set[int]] = {}
    for segment_id, contact_ids in wanted.items():
        found.update(await segments.members_by_segment([segment_id], contact_ids, now=now))
    return found


@dataclass
class _Doings:
    """What one registrant did in one session, as the dashboards count it."""

    joined: bool = False
    stayed: bool = False
    clicked_offer: bool = False


async def _doings(pairs: list[tuple[int, int]]) -> dict[tuple[int, int], _Doings]:
    """Per (registrant, session): their Attendance row, else their events with the same rules."""
    if not pairs:
        return {}
    wanted = set(pairs)
    found: dict[tuple[int, int], _Doings] = {}
    attended = await Attendance.filter(
        registrant_id__in={r for r, _ in pairs}, session_id__in={s for _, s in pairs}
    ).values_list("registrant_id", "session_id", "first_join_at", "stayed_to_end", "clicked_offer")
    for registrant_id, session_id, first_join_at, stayed_to_end, clicked_offer in attended:
        key = (int(registrant_id), int(session_id))
        if key in wanted:
            joined = first_join_at is not None
            found[key] = _Doings(joined, joined and bool(stayed_to_end), bool(clicked_offer))
    missing = wanted - found.keys()
    if missing:
        found.update(await _doings_from_events(missing))
    return found


async def _doings_from_events(wanted: set[tuple[int, int]]) -> dict[tuple[int, int], _Doings]:
    """For attendees without an Attendance row yet: their events, by the rows' rules."""
    events = await AnalyticsEvent.filter(
        registrant_id__in={r for r, _ in wanted},
        session_id__in={s for _, s in wanted},
        kind__in=[*JOIN_EVENTS, OFFER_CLICK],
    ).values_list("registrant_id", "session_id", "webinar_id", "kind", "video_seconds")
    found: dict[tuple[int, int], _Doings] = {}
    furthest: dict[tuple[int, int], tuple[int, float]] = {}
    for registrant_id, session_id, webinar_id, kind, seconds in events:
        key = (int(registrant_id), int(session_id))
        if key not in wanted:
            continue
        doing = found.setdefault(key, _Doings())
        if kind == OFFER_CLICK:
            doing.clicked_offer = True
            continue
        doing.joined = True
        _, far = furthest.get(key, (0, 0.0))
        furthest[key] = (int(webinar_id or 0), max(far, float(seconds or 0.0)))
    durations = await video_durations({webinar_id for webinar_id, _ in furthest.values()})
    for key, (webinar_id, far) in furthest.items():
        found[key].stayed = stayed(far, durations[webinar_id])
    return found


def _unwanted(
    step: EmailStep | None,
    person: _Person | None,
    session: WebinarSession | None,
    context: Mapping[str, Any],
    durations: Mapping[int, timedelta],
    doings: Mapping[tuple[int, int], _Doings],
    segment_members: Mapping[int, set[int]],
    now: datetime,
) -> str:
    """Why this email must not go out now ("" when it should); `session` is the person's."""
    if step is None or not step.enabled:
        return "the step was removed or switched off"
    if person is None:
        return "the registration was deleted"
    if person.unsubscribed:
        return "the contact unsubscribed"
    if person.suppressed:
        return "the address is suppressed"
    if session is None or session.id != context.get("session_id"):
        return "the registrant is in another session now"
    duration = durations[person.webinar_id]
    stale = _stale(step, session, duration, now)
    if stale:
        return stale
    if step.kind != StepKind.FOLLOW_UP or step.audience == Audience.EVERYONE:
        return ""
    if step.audience == Audience.SEGMENT:
        segment_id = segment_of(step)
        if segment_id is None:
            return "its segment was deleted"
        if person.contact_id in segment_members.get(segment_id, set()):
            return ""
        return "not in the segment now"
    doing = doings.get((person.registrant_id, session.id), _Doings())
    if step.audience == Audience.CLICKED_OFFER:
        matches = doing.clicked_offer
    else:
        matches = audience_of(doing.joined, doing.stayed) == step.audience
    return "" if matches else f"not for this audience ({step.audience.value})"


def audience_of(joined: bool, stayed_to_end: bool) -> Audience:
    """Watched to the end, left early or missed (stayed: `attendance_rows.stayed`)."""
    if not joined:
        return Audience.MISSED
    if stayed_to_end:
        return Audience.ATTENDED
    return Audience.LEFT_EARLY
