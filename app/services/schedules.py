"""A webinar's schedule: the editor's form, its preview, and edits that keep sent links working.

An edit may remove starts people registered for. `plan_edit` lists them with what will happen to
each registrant (moved to the nearest session still offered, or asked to pick a new time), and
`apply_edit` saves the schedule and does exactly that in one transaction, then emails each of
them. Their personal join link never changes: it names the registrant, not the session.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from tortoise.functions import Count
from tortoise.transactions import in_transaction

from app.i18n import format_when, gettext, zone_label
from app.models import (
    Contact,
    EmailState,
    PlannedEmail,
    Registrant,
    Schedule,
    StaffUser,
    Webinar,
    WebinarSession,
)
from app.schedule import (
    Kind,
    Repeat,
    ScheduleRuleError,
    ScheduleRules,
    Slot,
    SlotKind,
    next_jit_slot,
    parse_schedule,
    parse_zone,
    replay_window,
    slot_exists,
    upcoming_sessions,
)
from app.schedule.rules import (
    JIT_GRIDS,
    MAX_CUTOFF_MINUTES,
    MAX_JIT_LEAD_MINUTES,
    MAX_REPLAY_HOURS,
    MAX_UPCOMING,
    WEEKDAYS,
)
from app.services import audit, crypto, delivery, registration, sequences, sessions
from app.services.content import FormErrors
from app.settings import get_settings

# The notice to a registrant whose session an edit removed (moved, or asked to pick again).
CHANGE_EMAIL = "schedule_change"

FormValues = Mapping[str, Sequence[str]]
POLICIES = ("move", "notify")
MAX_ROWS = 200  # time, date and blackout rows an editor may send
MAX_CAPACITY = 1_000_000
# Sessions still offered that an orphaned registrant may be moved to, looked at in one pass.
MAX_CANDIDATES = 4096
JIT_CANDIDATES = 12

_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_TIME = re.compile(r"(\d{2}):(\d{2})(?::00(?:\.0+)?)?")
_DATETIME = re.compile(r"(\d{4}-\d{2}-\d{2})[T ](\d{2}:\d{2})(?::00(?:\.0+)?)?")
_INDEX = re.compile(r"\[\d+\]$")
# Where an error of parse_schedule is shown: the form input behind each rules key.
_ERROR_INPUT = {
    "jit": "jit_every",
    "jit.every_minutes": "jit_every",
    "jit.lead_minutes": "jit_lead",
    "hours": "hours_opens",
    "hours.opens": "hours_opens",
    "hours.closes": "hours_closes",
}
_WORDS = {"start_date": "the start date", "end_date": "the end date"}


@dataclass(frozen=True)
class ScheduleInput:
    """A validated schedule: the Schedule row's columns, and the rules they parse to."""

    kind: str
    timezone: str
    attendee_local: bool
    rules: dict[str, Any]
    blackout_dates: list[str]
    orphan_policy: str
    parsed: ScheduleRules


@dataclass(frozen=True)
class PreviewRow:
    """One upcoming start as the editor's preview shows it."""

    starts_at: datetime
    webinar_time: str  # in the webinar's zone
    viewer_time: str  # in the chosen viewer zone ("" when none is chosen)
    just_in_time: bool
    shifted: bool
    note: str  # plain words for a start moved by a daylight-saving gap
    replay_until: str  # when the replay expires ("" without replays)


@dataclass(frozen=True)
class Move:
    """What happens to one registrant of a session an edit removes."""

    registrant_id: int
    name: str
    email: str
    zone: ZoneInfo
    old_session_id: int
    old_start: datetime
    destination: Slot | None  # None: they are asked to pick a new time

    @property
    def old_when(self) -> str:
        """The removed start in the registrant's zone."""
        return _when(self.old_start, self.zone)

    @property
    def new_when(self) -> str:
        """The new start in the registrant's zone ("" without one)."""
        return "" if self.destination is None else _when(self.destination.starts_at, self.zone)


@dataclass(frozen=True)
class AffectedSession:
    """A stored future session that the new rules no longer define, for some registrants."""

    session_id: int
    starts_at: datetime
    when: str  # in the webinar's (new) zone
    moves: tuple[Move, ...]


@dataclass(frozen=True)
class EditPlan:
    """Every registrant an edit would orphan, and where each would go."""

    policy: str
    sessions: tuple[AffectedSession, ...] = ()

    @property
    def moves(self) -> list[Move]:
        """Every affected registrant, session by session."""
        return [move for session in self.sessions for move in session.moves]

    def __bool__(self) -> bool:
        """Whether anyone is affected."""
        return bool(self.sessions)


@dataclass(frozen=True)
class EditResult:
    """What a saved edit did."""

    schedule: Schedule
    moved: list[Move] = field(default_factory=list)
    notified: list[Move] = field(default_factory=list)


@dataclass(frozen=True)
class SessionRow:
    """One stored session in the admin's list of sessions."""

    session_id: int
    webinar_id: int
    webinar_title: str
    starts_at: datetime
    when: str  # in the webinar's zone
    kind: str
    registrants: int


# --- The editor's form -------------------------------------------------------------------------


def default_form() -> dict[str, list[str]]:
    """The editor's values for a webinar without a schedule yet."""
    return {
        "kind": ["recurring"],
        "timezone": ["UTC"],
        "repeat": ["weekly"],
        "week": ["1"],
        "weekday": ["mon"],
        "jit_every": ["15"],
        "jit_lead": ["5"],
        "replay_hours": ["48"],
        "upcoming_count": ["3"],
        "cutoff_minutes": ["0"],
        "orphan_policy": ["move"],
    }


def form_from_schedule(schedule: Schedule | None) -> dict[str, list[str]]:
    """The editor's values for a stored schedule (the inverse of `form_to_rules`)."""
    values = default_form()
    if schedule is None:
        return values
    rules: Mapping[str, Any] = schedule.rules or {}

    def put(name: str, value: object) -> None:
        if value is not None and value != "":
            values[name] = [str(value)]

    put("kind", schedule.kind)
    put("timezone", schedule.timezone)
    put("orphan_policy", schedule.orphan_policy)
    if schedule.attendee_local:
        put("attendee_local", "1")
    for key in ("repeat", "anchor_date", "weekday", "start_date", "end_date"):
        put(key, rules.get(key))
    week = rules.get("week")
    put("week", "-1" if week == "last" else week)
    for key in ("upcoming_count", "cutoff_minutes", "capacity"):
        put(key, rules.get(key))
    values["weekdays"] = [str(day) for day in rules.get("weekdays") or []]
    values["times"] = [str(moment) for moment in rules.get("times") or []]
    values["dates"] = [str(moment).replace(" ", "T") for moment in rules.get("dates") or []]
    values["blackout_dates"] = [str(day) for day in schedule.blackout_dates or []]
    jit = rules.get("jit")
    if isinstance(jit, Mapping):
        put("jit", "1")
        put("jit_every", jit.get("every_minutes", 15))
        put("jit_lead", jit.get("lead_minutes", 5))
    hours = rules.get("hours")
    if isinstance(hours, Mapping):
        put("hours_opens", hours.get("opens"))
        put("hours_closes", hours.get("closes"))
    if rules.get("watch_now") is True:
        put("watch_now", "1")
    if rules.get("replay_hours") is not None:
        put("replays", "1")
        put("replay_hours", rules.get("replay_hours"))
    return values


class _Reader:
    """Reads the editor's form, collecting an error per input."""

    def __init__(self, form: FormValues) -> None:
        self.form = form
        self.errors = FormErrors()

    def one(self, name: str) -> str:
        values = self.form.get(name) or []
        return values[0].strip()[:200] if values else ""

    def rows(self, name: str) -> list[str]:
        # Blank rows are the spare inputs the editor always offers.
        found = [value.strip()[:40] for value in self.form.get(name) or [] if value.strip()]
        if len(found) > MAX_ROWS:
            self.errors.add(name, f"At most {MAX_ROWS} entries.")
        return found[:MAX_ROWS]

    def flag(self, name: str) -> bool:
        return self.one(name).lower() in {"1", "on", "true", "yes"}

    def number(self, name: str, low: int, high: int, *, default: int | None = None) -> int | None:
        raw = self.one(name)
        if not raw:
            if default is None:
                self.errors.add(name, "Enter a number.")
            return default
        if not raw.isdigit() or len(raw) > 9 or not low <= int(raw) <= high:
            self.errors.add(name, f"Enter a whole number from {low} to {high}.")
            return default
        return int(raw)

    def optional_number(self, name: str, low: int, high: int) -> int | None:
        return self.number(name, low, high) if self.one(name) else None

    def date(self, name: str) -> str | None:
        raw = self.one(name)
        if not raw:
            return None
        if not _is_date(raw):
            self.errors.add(name, f"Enter a real date (YYYY-MM-DD), not “{raw}”.")
            return None
        return raw

    def dates(self, name: str) -> list[str]:
        found = []
        for raw in self.rows(name):
            if _is_date(raw):
                found.append(raw)
            else:
                self.errors.add(name, f"Enter real dates (YYYY-MM-DD); “{raw}” is not one.")
        return found

    def times(self, name: str) -> list[str]:
        found = []
        for raw in self.rows(name):
            match = _TIME.fullmatch(raw)
            if match and int(match[1]) < 24 and int(match[2]) < 60:
                found.append(f"{match[1]}:{match[2]}")
            else:
                self.errors.add(name, f"Enter times as HH:MM (24-hour); “{raw}” is not one.")
        return found

    def time(self, name: str) -> str | None:
        raw = self.one(name)
        if not raw:
            return None
        match = _TIME.fullmatch(raw)
        if match and int(match[1]) < 24 and int(match[2]) < 60:
            return f"{match[1]}:{match[2]}"
        self.errors.add(name, f"Enter a time as HH:MM (24-hour), not “{raw}”.")
        return None

    def datetimes(self, name: str) -> list[str]:
        found = []
        for raw in self.rows(name):
            match = _DATETIME.fullmatch(raw)
            clock = _TIME.fullmatch(match[2]) if match else None
            if match and clock and _is_date(match[1]) and int(clock[1]) < 24 and int(clock[2]) < 60:
                found.append(f"{match[1]}T{match[2]}")
            else:
                self.errors.add(name, f"Enter a date and a time for each session; “{raw}” is not.")
        return found


def _is_date(raw: str) -> bool:
    if not _DATE.fullmatch(raw):
        return False
    try:
        date.fromisoformat(raw)
    except ValueError:
        return False
    return True


def form_to_rules(form: FormValues) -> ScheduleInput | FormErrors:
    """The schedule an editor's form describes, or an error per input; nothing is stored."""
    read = _Reader(form)
    kind = read.one("kind")
    if kind not in {member.value for member in Kind}:
        read.errors.add("kind", "Choose an event type.")
    timezone = read.one("timezone")
    if not timezone:
        read.errors.add("timezone", "Choose a time zone.")
    else:
        try:
            parse_zone(timezone)
        except ScheduleRuleError as exc:
            read.errors.add("timezone", _sentence(exc.message))
    policy = read.one("orphan_policy")
    if policy not in POLICIES:
        read.errors.add("orphan_policy", "Choose what happens to registrants of a removed session.")
    rules: dict[str, Any] = {}
    if kind == Kind.RECURRING:
        _recurrence(read, rules)
        rules["times"] = read.times("times")
    elif kind == Kind.SPECIFIC:
        rules["dates"] = read.datetimes("dates")
    if kind in (Kind.RECURRING, Kind.SPECIFIC):
        _sessions(read, rules)
    start = read.date("start_date")
    end = read.date("end_date")
    if start is not None:
        rules["start_date"] = start
    if end is not None:
        rules["end_date"] = end
    blackout = sorted(set(read.dates("blackout_dates")))
    attendee_local = read.flag("attendee_local") and kind != Kind.ON_DEMAND
    if read.errors:
        return read.errors
    try:
        parsed = parse_schedule(
            rules,
            kind=kind,
            timezone=timezone,
            attendee_local=attendee_local,
            blackout_dates=blackout,
        )
    except ScheduleRuleError as exc:
        name = _INDEX.sub("", exc.field)
        read.errors.add(_ERROR_INPUT.get(name, name), _sentence(exc.message))
        return read.errors
    return ScheduleInput(
        kind=kind,
        timezone=timezone,
        attendee_local=attendee_local,
        rules=rules,
        blackout_dates=blackout,
        orphan_policy=policy,
        parsed=parsed,
    )


def _recurrence(read: _Reader, rules: dict[str, Any]) -> None:
    repeat = read.one("repeat")
    if repeat not in {member.value for member in Repeat}:
        read.errors.add("repeat", "Choose how often the webinar repeats.")
        return
    rules["repeat"] = repeat
    if repeat in (Repeat.WEEKLY, Repeat.BIWEEKLY):
        days = [day for day in read.rows("weekdays") if day in WEEKDAYS]
        rules["weekdays"] = sorted(set(days), key=WEEKDAYS.index)
        anchor = read.date("anchor_date")
        if repeat == Repeat.BIWEEKLY and anchor is not None:
            rules["anchor_date"] = anchor
    elif repeat == Repeat.MONTHLY:
        week = read.one("week")
        if week in {"-1", "last"}:
            rules["week"] = "last"
        elif week in {"1", "2", "3", "4"}:
            rules["week"] = int(week)
        else:
            read.errors.add("week", "Choose which week of the month.")
        weekday = read.one("weekday")
        if weekday not in WEEKDAYS:
            read.errors.add("weekday", "Choose a weekday.")
        rules["weekday"] = weekday


def _sessions(read: _Reader, rules: dict[str, Any]) -> None:
    if read.flag("jit"):
        every = read.number("jit_every", min(JIT_GRIDS), max(JIT_GRIDS))
        if every is not None and every not in JIT_GRIDS:
            read.errors.add("jit_every", "Choose every 15, 30 or 60 minutes.")
        lead = read.number("jit_lead", 0, MAX_JIT_LEAD_MINUTES, default=5)
        rules["jit"] = {"every_minutes": every, "lead_minutes": lead}
        opens, closes = read.time("hours_opens"), read.time("hours_closes")
        if opens and closes:
            rules["hours"] = {"opens": opens, "closes": closes}
        elif opens and not read.one("hours_closes"):
            read.errors.add("hours_closes", "Enter when the hours end too, or clear both.")
        elif closes and not read.one("hours_opens"):
            read.errors.add("hours_opens", "Enter when the hours begin too, or clear both.")
    if read.flag("watch_now"):
        rules["watch_now"] = True
    if read.flag("replays"):
        rules["replay_hours"] = read.number("replay_hours", 1, MAX_REPLAY_HOURS)
    rules["upcoming_count"] = read.number("upcoming_count", 1, MAX_UPCOMING, default=3)
    rules["cutoff_minutes"] = read.number("cutoff_minutes", 0, MAX_CUTOFF_MINUTES, default=0)
    capacity = read.optional_number("capacity", 1, MAX_CAPACITY)
    if capacity is not None:
        rules["capacity"] = capacity


def _sentence(message: str) -> str:
    for name, words in _WORDS.items():
        message = message.replace(name, words)
    return message[:1].upper() + message[1:] + ("" if message.endswith(".") else ".")


# --- Preview -----------------------------------------------------------------------------------


def _when(moment: datetime, zone: ZoneInfo) -> str:
    local = moment.astimezone(zone)
    return f"{local:%a} {local.day} {local:%b %Y, %H:%M} {local.tzname()}"


def shift_note(slot: Slot) -> str:
    """Plain words for a start that a daylight-saving gap moved ("" when it was not moved)."""
    if not slot.shifted:
        return ""
    wall, local = slot.wall, slot.local
    return (
        f"{wall:%H:%M} does not exist on {wall.day} {wall:%B} (clocks go forward): "
        f"runs at {local:%H:%M}"
    )


def preview(
    rules: ScheduleRules,
    now: datetime,
    *,
    viewer_zone: ZoneInfo | None = None,
    count: int = 10,
    duration: timedelta = timedelta(0),
) -> list[PreviewRow]:
    """The next starts as visitors (in `viewer_zone`) would be offered them, with notes."""
    rows = []
    for slot in upcoming_sessions(rules, now, count=count, viewer_zone=viewer_zone):
        window = replay_window(slot.starts_at, duration, rules)
        rows.append(
            PreviewRow(
                starts_at=slot.starts_at,
                webinar_time=_when(slot.starts_at, rules.zone),
                viewer_time="" if viewer_zone is None else _when(slot.starts_at, viewer_zone),
                just_in_time=slot.kind is SlotKind.JIT,
                shifted=slot.shifted,
                note=shift_note(slot),
                replay_until="" if window is None else _when(window[1], rules.zone),
            )
        )
    return rows


# --- Safe edits --------------------------------------------------------------------------------


def _zone_of(registrant: Registrant, fallback: ZoneInfo) -> ZoneInfo:
    try:
        return parse_zone(registrant.timezone)
    except ScheduleRuleError:
        return fallback


def _candidates(
    rules: ScheduleRules, now: datetime, old: datetime, viewer_zone: ZoneInfo | None
) -> list[Slot]:
    """Starts offered now, nearest to `old` first (later before earlier at equal distance)."""
    count = 32
    while True:
        found = upcoming_sessions(rules, now, count=count, viewer_zone=viewer_zone)
        if len(found) < count or found[-1].starts_at > old or count >= MAX_CANDIDATES:
            break
        count *= 4
    if rules.jit is not None:
        # upcoming_sessions offers only the next just-in-time start; the grid around the old
        # start may hold a nearer one.
        found += _jit_around(rules, now, old, viewer_zone)
    by_start: dict[datetime, Slot] = {}
    for slot in sorted(found, key=lambda s: s.kind is SlotKind.JIT):
        by_start.setdefault(slot.starts_at, slot)
    return sorted(
        by_start.values(),
        key=lambda s: (abs(s.starts_at - old), s.starts_at < old),
    )


def _jit_around(
    rules: ScheduleRules, now: datetime, old: datetime, viewer_zone: ZoneInfo | None
) -> list[Slot]:
    assert rules.jit is not None
    anytime = replace(rules, cutoff=timedelta(0))
    step = timedelta(seconds=1)
    cursor = old - timedelta(minutes=rules.jit.every)
    found: list[Slot] = []
    for _ in range(JIT_CANDIDATES):
        # next_jit_slot gives the first grid start at or after `cursor` this way.
        slot = next_jit_slot(anytime, cursor - rules.jit.lead - step, viewer_zone=viewer_zone)
        if slot is None:
            break
        if slot.starts_at >= now + rules.jit.lead and slot.starts_at > now + rules.cutoff:
            found.append(slot)
        cursor = slot.starts_at + step
    return found


async def plan_edit(
    webinar: Webinar, new_rules: ScheduleRules, now: datetime, *, policy: str = "move"
) -> EditPlan:
    """Registrants of stored future sessions the new rules no longer define, and their fate."""
    if policy not in POLICIES:
        raise ValueError(f"unknown orphan policy {policy!r}")
    stored = (
        await WebinarSession.filter(
            webinar_id=webinar.id, starts_at__gt=now, kind__in=("scheduled", "jit")
        )
        .annotate(seats=Count("registrants"))
        .filter(seats__gt=0)
        .order_by("starts_at", "id")
    )
    counts: dict[datetime, int] = {}
    taken: dict[datetime, int] = {}  # seats this plan gives away
    affected: list[AffectedSession] = []
    for session in stored:
        registrants = (
            await Registrant.filter(session_id=session.id)
            .order_by("created_at", "id")
            .prefetch_related("contact")
        )
        moves: list[Move] = []
        for registrant in registrants:
            zone = _zone_of(registrant, new_rules.zone)
            viewer = zone if new_rules.attendee_local else None
            if slot_exists(new_rules, session.starts_at, viewer_zone=viewer):
                continue
            destination = None
            if policy == "move":
                options = _candidates(new_rules, now, session.starts_at, viewer)
                missing = [s.starts_at for s in options if s.starts_at not in counts]
                counts.update(dict.fromkeys(missing, 0))
                counts.update(await sessions.registered_counts(webinar, missing))
                destination = next(
                    (
                        slot
                        for slot in options
                        if new_rules.capacity is None
                        or counts[slot.starts_at] + taken.get(slot.starts_at, 0)
                        < new_rules.capacity
                    ),
                    None,
                )
                if destination is not None:
                    taken[destination.starts_at] = taken.get(destination.starts_at, 0) + 1
            contact = registrant.contact
            moves.append(
                Move(
                    registrant_id=registrant.id,
                    name=contact.name,
                    email=contact.email,
                    zone=zone,
                    old_session_id=session.id,
                    old_start=session.starts_at,
                    destination=destination,
                )
            )
        if moves:
            affected.append(
                AffectedSession(
                    session_id=session.id,
                    starts_at=session.starts_at,
                    when=_when(session.starts_at, new_rules.zone),
                    moves=tuple(moves),
                )
            )
    return EditPlan(policy=policy, sessions=tuple(affected))


async def apply_edit(
    webinar: Webinar,
    schedule_input: ScheduleInput,
    now: datetime,
    *,
    actor: StaffUser | None,
    ip: str = "",
) -> EditResult:
    """Save the schedule and move or release orphaned registrants in one transaction; email them."""
    rules = schedule_input.parsed
    plan = await plan_edit(webinar, rules, now, policy=schedule_input.orphan_policy)
    # Created before the transaction: session_for_slot absorbs a concurrent insert by catching
    # the unique violation, which PostgreSQL would not let a transaction survive. An unused
    # session row is harmless (rows are created lazily anyway).
    targets: dict[int, WebinarSession] = {}
    for move in plan.moves:
        if move.destination is not None:
            targets[move.registrant_id] = await sessions.session_for_slot(
                webinar, move.destination, capacity=rules.capacity
            )
    moved: list[Move] = []
    notified: list[Move] = []
    async with in_transaction():
        schedule = await _save_schedule(webinar, schedule_input)
        for move in plan.moves:
            target = targets.get(move.registrant_id)
            # Conditional on the old session: someone who re-registered meanwhile is left alone.
            # Their reminders and follow-ups are planned again for the new time.
            changed = await Registrant.filter(
                id=move.registrant_id, session_id=move.old_session_id
            ).update(
                session_id=None if target is None else target.id,
                plan_state=sequences.PLAN_AGAIN,
            )
            if not changed:
                continue
            await _follow_emails(move, target, now)
            # Planned in the same transaction: the notice goes out exactly when the move holds.
            await delivery.plan(
                CHANGE_EMAIL,
                to_email=move.email,
                due_at=now,
                registrant_id=move.registrant_id,
                context={
                    "name": move.name,
                    "zone": move.zone.key,
                    "old_start": move.old_start.isoformat(),
                    "new_start": None if target is None else target.starts_at.isoformat(),
                },
            )
            (notified if target is None else moved).append(move)
    await audit.record(
        action="schedule.changed",
        actor=actor,
        target=f"webinar {webinar.id} ({webinar.slug})"[:255],
        ip=ip,
        details={
            "kind": schedule_input.kind,
            "timezone": schedule_input.timezone,
            "policy": schedule_input.orphan_policy,
            "moved": len(moved),
            "notified": len(notified),
        },
    )
    return EditResult(schedule=schedule, moved=moved, notified=notified)


async def _save_schedule(webinar: Webinar, data: ScheduleInput) -> Schedule:
    values: dict[str, Any] = {
        "kind": data.kind,
        "timezone": data.timezone,
        "attendee_local": data.attendee_local,
        "rules": data.rules,
        "blackout_dates": data.blackout_dates,
        "orphan_policy": data.orphan_policy,
    }
    schedule = await Schedule.get_or_none(webinar_id=webinar.id)
    if schedule is None:
        return await Schedule.create(webinar_id=webinar.id, **values)
    schedule.update_from_dict(values)
    await schedule.save()
    return schedule


async def _follow_emails(move: Move, target: WebinarSession | None, now: datetime) -> None:
    """Planned emails move with their registrant; any that would now go out late are cancelled."""
    # The email with the join link is not tied to the session's time: it reads the registrant's
    # session when it is sent, so it stays as planned.
    planned = await PlannedEmail.filter(
        registrant_id=move.registrant_id, state=EmailState.SCHEDULED
    ).exclude(kind=registration.LINK_EMAIL)
    for email in planned:
        # Conditional on the state: an email the scheduler has just claimed is not touched.
        pending = PlannedEmail.filter(id=email.id, state=EmailState.SCHEDULED)
        if target is None:
            await pending.update(state=EmailState.CANCELLED)
            continue
        due = email.due_at + (target.starts_at - move.old_start)
        if due <= now:
            await pending.update(state=EmailState.CANCELLED)
            continue
        context = dict(email.context or {})
        if "session_id" in context:
            context["session_id"] = target.id
        if "starts_at" in context:
            context["starts_at"] = target.starts_at.isoformat()
        await pending.update(due_at=due, context=context)


@delivery.renderer(CHANGE_EMAIL)
async def _render_change_email(row: PlannedEmail, now: datetime) -> delivery.Rendered:
    """The notice to a registrant whose session an edit removed, in the webinar's language."""
    registrant = await Registrant.get_or_none(id=row.registrant_id).prefetch_related(
        "contact", "webinar"
    )
    if registrant is None:
        return delivery.Rendered(skip="the registration was deleted")
    contact, webinar = registrant.contact, registrant.webinar
    assert isinstance(contact, Contact)
    assert isinstance(webinar, Webinar)
    if contact.suppressed_at is not None:
        return delivery.Rendered(skip="the address is suppressed")
    context = row.context
    zone = ZoneInfo(context["zone"])
    new_start = datetime.fromisoformat(context["new_start"]) if context["new_start"] else None
    if new_start is not None and new_start <= now:
        return delivery.Rendered(skip="the new session has begun: the notice is stale")
    language = webinar.language

    def _(message: str) -> str:
        return gettext(language, message)

    def when(moment: datetime) -> str:
        return f"{format_when(moment, zone, language)} ({zone_label(zone, moment)})"

    base = get_settings().public_base_url
    name = context.get("name") or ""
    greeting = _("Hello {name},").format(name=name) if name else _("Hello,")
    removed = _("The session of “{title}” you registered for ({when}) no longer takes place.")
    old_start = datetime.fromisoformat(context["old_start"])
    lines = [greeting, "", removed.format(title=webinar.title, when=when(old_start)), ""]
    if new_start is not None:
        subject = _("New time for “{title}”").format(title=webinar.title)
        lines += [_("We moved your registration to the nearest session:"), when(new_start), ""]
        token = crypto.unseal(registrant.join_token_sealed)
        if token:
            lines += [_("Your personal join link stays the same:"), f"{base}/j/{token}"]
        else:
            lines += [_("Use the join link from your confirmation email.")]
    else:
        subject = _("Please pick a new time for “{title}”").format(title=webinar.title)
        lines += [_("Please pick a new time here:"), f"{base}/w/{webinar.slug}"]
    lines += ["", _("Sorry for the change.")]
    return delivery.Rendered(to=row.to_email, subject=subject, text="\n".join(lines) + "\n")


# --- The admin's session list ------------------------------------------------------------------


async def session_overview(
    now: datetime, *, upcoming_limit: int = 100, past_limit: int = 50
) -> tuple[list[SessionRow], list[SessionRow]]:
    """Stored sessions of every webinar: upcoming (soonest first) and recent past (latest first)."""
    upcoming = (
        await WebinarSession.filter(starts_at__gte=now)
        .order_by("starts_at", "id")
        .limit(upcoming_limit)
        .prefetch_related("webinar")
    )
    past = (
        await WebinarSession.filter(starts_at__lt=now)
        .order_by("-starts_at", "-id")
        .limit(past_limit)
        .prefetch_related("webinar")
    )
    every = upcoming + past
    ids = [session.id for session in every]
    seats: dict[int, int] = {}
    if ids:
        rows = (
            await Registrant.filter(session_id__in=ids)
            .group_by("session_id")
            .annotate(n=Count("id"))
            .values("session_id", "n")
        )
        seats = {row["session_id"]: int(row["n"]) for row in rows}
    webinar_ids = {session.webinar.id for session in every}
    zones: dict[int, ZoneInfo] = {}
    for row in await Schedule.filter(webinar_id__in=webinar_ids).values("webinar_id", "timezone"):
        try:
            zones[row["webinar_id"]] = parse_zone(row["timezone"])
        except ScheduleRuleError:
            continue

    def rows_of(items: list[WebinarSession]) -> list[SessionRow]:
        return [
            SessionRow(
                session_id=session.id,
                webinar_id=session.webinar.id,
                webinar_title=session.webinar.title,
                starts_at=session.starts_at,
                when=_when(session.starts_at, zones.get(session.webinar.id, ZoneInfo("UTC"))),
                kind=session.kind,
                registrants=seats.get(session.id, 0),
            )
            for session in items
        ]

    return rows_of(upcoming), rows_of(past)
