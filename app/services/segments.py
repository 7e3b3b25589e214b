"""Segments: saved filters over contacts, to look at, export, or send a follow-up email to.

A segment's rules are conditions on one registration. A contact belongs to the segment when
at least one of their registrations meets every condition that is set:

- webinar: the registration is for this webinar (none: any webinar);
- session or registration date: the registration's session starts, or the registration was
  made, between two dates (inclusive, UTC);
- attended: they joined a session of it; missed: its session has started and they never joined;
- watched at least X%: the time they watched is at least X% of the webinar's video;
- answered: their answer to this poll or quiz includes this option;
- clicked the offer: they clicked an offer in a session of it;
- custom field: their answer to this registration field equals this value (ignoring case;
  yes/no for checkboxes; an empty value: any answer);
- account: the contact's email domain belongs to this account.

With no condition at all, everyone who ever registered belongs.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from tortoise.expressions import Subquery
from tortoise.queryset import QuerySet

from app.models import (
    Attendance,
    Contact,
    EmailStep,
    InteractionResponse,
    Registrant,
    Segment,
    StaffUser,
)
from app.services import accounts, people
from app.services.csv_export import csv_bytes

PREVIEW_SIZE = 20
MAX_ID = 2**31  # ids are 32-bit integers in the database: anything bigger names no row
ATTENDANCE = {"": "Attended or not", "attended": "Attended", "missed": "Missed"}
DATE_OF = {"session": "Session date", "registration": "Registration date"}
EXPORT_HEADER = ["email", "name", "company", "registrations", "attended", "watch %", "score"]
_TRUE = frozenset({"yes", "true", "on", "1", "ja"})
_FALSE = frozenset({"no", "false", "off", "0", "nein"})


@dataclass(frozen=True)
class Rules:
    """A segment's conditions (see the module's description)."""

    webinar_id: int | None = None
    attendance: str = ""  # "", "attended", "missed"
    min_watch_percent: int | None = None
    interaction_id: int | None = None
    option: int | None = None
    clicked_offer: bool = False
    field_key: str = ""
    field_value: str = ""
    account: str = ""  # an account key: an Account id, or a domain
    date_of: str = "session"
    start: date | None = None
    end: date | None = None


def rules_to_json(rules: Rules) -> dict[str, Any]:
    """The rules as stored in a Segment row."""
    data = asdict(rules)
    data["start"] = rules.start.isoformat() if rules.start else None
    data["end"] = rules.end.isoformat() if rules.end else None
    return data


def int_or_none(value: object) -> int | None:
    """A row id or whole number from a stored or typed value, or None (also when too big)."""
    if isinstance(value, str) and value.strip().isdigit() and len(value.strip()) <= 9:
        value = int(value.strip())
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < MAX_ID:
        return value
    return None


def _date_or_none(value: object) -> date | None:
    if not isinstance(value, str):
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        return None


def rules_from(data: Mapping[str, Any] | None) -> Rules:
    """Rules from a stored JSON object; anything unreadable is left unset."""
    data = data or {}
    attendance = str(data.get("attendance") or "")
    date_of = str(data.get("date_of") or "session")
    return Rules(
        webinar_id=int_or_none(data.get("webinar_id")),
        attendance=attendance if attendance in ATTENDANCE else "",
        min_watch_percent=int_or_none(data.get("min_watch_percent")),
        interaction_id=int_or_none(data.get("interaction_id")),
        option=int_or_none(data.get("option")),
        clicked_offer=data.get("clicked_offer") is True,
        field_key=str(data.get("field_key") or ""),
        field_value=str(data.get("field_value") or ""),
        account=str(data.get("account") or ""),
        date_of=date_of if date_of in DATE_OF else "session",
        start=_date_or_none(data.get("start")),
        end=_date_or_none(data.get("end")),
    )


# --- Who belongs ------------------------------------------------------------------------------


def _day_start(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


def field_matches(answer: Any, wanted: str) -> bool:
    """Whether a stored custom-field answer equals the wanted value (see the module's rules)."""
    if answer is None or answer == "" or answer == []:
        return False
    if not wanted:
        return answer is not False
    target = wanted.casefold()
    if isinstance(answer, bool):
        return target in (_TRUE if answer else _FALSE)
    if isinstance(answer, list):
        return any(field_matches(item, wanted) for item in answer)
    return " ".join(str(answer).split()).casefold() == target


def chose(answer: Any, option: int) -> bool:
    """Whether a poll or quiz answer includes an option."""
    if isinstance(answer, list):
        return option in answer
    return isinstance(answer, int) and not isinstance(answer, bool) and answer == option


async def _account_domains(key: str) -> list[str]:
    ref = await accounts.resolve(key)
    return list(ref.domains) if ref is not None else []


async def members(rules: Rules, *, now: datetime, among: Collection[int] | None = None) -> set[int]:
    """The contacts in the segment (only those of `among` when given)."""
    query = Registrant.all()
    if rules.webinar_id is not None:
        query = query.filter(webinar_id=rules.webinar_id)
    if rules.account:
        query = query.filter(contact__company_domain__in=await _account_domains(rules.account))
    if rules.start or rules.end:
        column = "session__starts_at" if rules.date_of == "session" else "created_at"
        if rules.start:
            query = query.filter(**{f"{column}__gte": _day_start(rules.start)})
        if rules.end:
            query = query.filter(**{f"{column}__lt": _day_start(rules.end + timedelta(days=1))})
    if rules.attendance == "missed":
        query = query.filter(session__starts_at__lte=now)
    answering = rules.interaction_id is not None and rules.option is not None
    if among is None and not rules.field_key and not answering and _needs_a_visit(rules):
        return await _visitors_among(rules, query)
    columns = ["id", "contact_id"] + (["answers"] if rules.field_key else [])
    found: list[Any] = []
    if among is None:
        found = await query.values_list(*columns)
    else:
        for part in people.chunks(sorted(set(among))):
            found += await query.filter(contact_id__in=part).values_list(*columns)
    candidates: dict[int, int] = {}
    for row in found:
        if rules.field_key:
            answer = (row[2] or {}).get(rules.field_key)
            if not field_matches(answer, rules.field_value):
                continue
        candidates[int(row[0])] = int(row[1])
    if candidates and rules.interaction_id is not None and rules.option is not None:
        responses: list[Any] = await InteractionResponse.filter(
            interaction_id=rules.interaction_id
        ).values_list("registrant_id", "answer")
        answered = {int(rid) for rid, answer in responses if chose(answer, rules.option)}
        candidates = {rid: cid for rid, cid in candidates.items() if rid in answered}
    if candidates and (rules.attendance or rules.min_watch_percent or rules.clicked_offer):
        candidates = await _by_attendance(rules, candidates, whole=among is None)
    return set(candidates.values())


def _needs_a_visit(rules: Rules) -> bool:
    """Whether only registrations with a visit to the room can meet the rules."""
    if rules.attendance == "missed":
        return False
    return rules.attendance == "attended" or rules.clicked_offer or bool(rules.min_watch_percent)


async def _visitors_among(rules: Rules, registrations: QuerySet[Registrant]) -> set[int]:
    """The members when only visits count: read from the Attendance rows of the registrations.

    The database picks the rows of the matching registrations, so what is read is the (fewer)
    visits rather than every registration; each condition holds as in `_by_attendance` (some
    visit of the registration meets it).
    """
    joined = Attendance.filter(
        first_join_at__isnull=False, registrant_id__in=Subquery(registrations.values("id"))
    )
    if rules.webinar_id is not None:
        joined = joined.filter(webinar_id=rules.webinar_id)
    rows: list[Any] = await joined.values_list(
        "registrant_id", "webinar_id", "watched_seconds", "clicked_offer"
    )
    videos = await people.video_seconds({int(row[1]) for row in rows})
    enough = (rules.min_watch_percent or 0) / 100
    visited: set[int] = set()
    clicked: set[int] = set()
    watched: set[int] = set()
    for registrant_id, webinar_id, seconds, offer in rows:
        rid = int(registrant_id)
        visited.add(rid)
        if offer:
            clicked.add(rid)
        share = people.watch_share(float(seconds or 0.0), videos[int(webinar_id)])
        if rules.min_watch_percent and share >= enough - 1e-9:
            watched.add(rid)
    kept = visited
    if rules.clicked_offer:
        kept &= clicked
    if rules.min_watch_percent:
        kept &= watched
    found = await people.rows_where_in(Registrant.all(), "id", kept, "contact_id")
    return {int(contact_id) for _, contact_id in found}


async def _by_attendance(
    rules: Rules, candidates: dict[int, int], *, whole: bool
) -> dict[int, int]:
    """The candidates whose attendance meets the rules' attendance conditions."""
    joined = Attendance.filter(first_join_at__isnull=False)
    if rules.webinar_id is not None:
        joined = joined.filter(webinar_id=rules.webinar_id)

    async def read(query: QuerySet[Attendance], ids: set[int], *columns: str) -> list[Any]:
        # Narrow columns only (no dates): reading the rows is what costs at scale.
        if whole and len(ids) > people.CHUNK:
            return list(await query.values_list(*columns))  # most rows: one pass over the table
        found: list[Any] = []
        for part in people.chunks(sorted(ids)):
            found += await query.filter(registrant_id__in=part).values_list(*columns)
        return found

    kept = set(candidates)
    if rules.attendance:
        attended = {int(row[0]) for row in await read(joined, kept, "registrant_id")}
        kept = kept & attended if rules.attendance == "attended" else kept - attended
    if rules.clicked_offer and kept:
        clicked = await read(joined.filter(clicked_offer=True), kept, "registrant_id")
        kept &= {int(row[0]) for row in clicked}
    if rules.min_watch_percent and kept:
        rows = await read(joined, kept, "registrant_id", "webinar_id", "watched_seconds")
        videos = await people.video_seconds({int(row[1]) for row in rows})
        enough = rules.min_watch_percent / 100
        kept &= {
            int(rid)
            for rid, wid, watched in rows
            if people.watch_share(float(watched or 0.0), videos[int(wid)]) >= enough - 1e-9
        }
    return {rid: candidates[rid] for rid in kept}


async def members_by_segment(
    segment_ids: Collection[int], contact_ids: Collection[int], *, now: datetime
) -> dict[int, set[int]]:
    """For each segment, which of these contacts belong to it now (one pass per segment)."""
    found: dict[int, set[int]] = {segment_id: set() for segment_id in segment_ids}
    if not segment_ids or not contact_ids:
        return found
    for segment in await Segment.filter(id__in=list(segment_ids)):
        found[segment.id] = await members(rules_from(segment.rules), now=now, among=contact_ids)
    return found


# --- Looking at and exporting members ---------------------------------------------------------


@dataclass(frozen=True)
class Member:
    """A member as the preview lists them."""

    contact: Contact
    company: str
    account_key: str
    summary: people.ContactSummary


async def preview(contact_ids: Collection[int], *, now: datetime) -> list[Member]:
    """The newest members, with their figures."""
    newest = sorted(contact_ids, reverse=True)[:PREVIEW_SIZE]
    contacts = await Contact.filter(id__in=newest).order_by("-id")
    figures = await people.summaries(newest, now)
    domains = {c.company_domain for c in contacts}
    names = await accounts.company_names(domains)
    keys = await accounts.account_keys(domains)
    return [
        Member(c, names.get(c.company_domain, ""), keys.get(c.company_domain, ""), figures[c.id])
        for c in contacts
    ]


async def export_csv(contact_ids: Collection[int], *, now: datetime) -> bytes:
    """The members as a CSV file for a spreadsheet, by email address."""
    table: list[list[object]] = []
    found = await people.rows_where_in(
        Contact.all(), "id", set(contact_ids), "email", "name", "company_domain"
    )
    rows = [(int(cid), str(email), str(name), str(domain)) for cid, email, name, domain in found]
    names = await accounts.company_names({row[3] for row in rows})
    figures = await people.summaries(contact_ids, now)
    for cid, email, name, domain in sorted(rows, key=lambda row: row[1]):
        summary = figures[cid]
        share = summary.watch_share
        table.append(
            [
                email,
                name,
                names.get(domain, ""),
                summary.registrations,
                summary.attended,
                round(share * 100) if share is not None else None,
                summary.score,
            ]
        )
    return csv_bytes(EXPORT_HEADER, table)


# --- Saving and deleting ----------------------------------------------------------


async def save(segment: Segment | None, *, name: str, rules: Rules, actor: StaffUser) -> Segment:
    """Store a new or changed segment."""
    if segment is None:
        return await Segment.create(name=name, rules=rules_to_json(rules), created_by=actor)
    segment.name = name
    segment.rules = rules_to_json(rules)
    await segment.save()
    return segment


async def used_by(segment: Segment) -> list[EmailStep]:
    """The follow-up emails sent to this segment."""
    return await EmailStep.filter(segment_id=segment.id).prefetch_related("webinar")


async def delete(segment: Segment) -> None:
    """Remove a segment; follow-ups sent to it send nothing from then on."""
    await Segment.filter(id=segment.id).delete()
