"""People across webinars: what each contact did, and their engagement score.

Everything here reads the Attendance rows (one per attendee and session, kept up to date from
the room's events), never the raw events, so that a page of contacts costs a few queries.
A registration counts as attended when one of its Attendance rows has a first join.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from tortoise.expressions import Q
from tortoise.functions import Max
from tortoise.queryset import QuerySet

from app.models import (
    Attendance,
    Contact,
    Interaction,
    Registrant,
    Webinar,
    WebinarSession,
)

# Big enough to keep the number of queries low, well under the bind-parameter limits.
CHUNK = 5000
PAGE_SIZE = 50
# A session's length when its webinar has no video with a known duration (as the calendar).
DEFAULT_VIDEO_SECONDS = 3600.0
SEARCH_MAX = 200

# --- The engagement score ------------------------------------------------------------------

SCORE_WINDOW = timedelta(days=180)
ANSWERS_CAP = 5
CHAT_CAP = 5
OFFERS_CAP = 2
_X = "\N{MULTIPLICATION SIGN}"
SCORE_FORMULA: tuple[str, ...] = (
    "Counted over the registrations whose session started in the last 180 days:",
    f"30 {_X} attended ÷ registered",
    f"+ 30 {_X} the average watch share of the sessions attended "
    "(time watched ÷ the video's length, at most 100%)",
    f"+ 15 {_X} answers to polls, quizzes and questions (up to {ANSWERS_CAP}) ÷ {ANSWERS_CAP}",
    f"+ 10 {_X} chat messages written (up to {CHAT_CAP}) ÷ {CHAT_CAP}",
    f"+ 15 {_X} sessions in which they clicked an offer (up to {OFFERS_CAP}) ÷ {OFFERS_CAP}",
    "rounded to a whole number from 0 to 100; 0 without a registration in that time.",
)


@dataclass(frozen=True)
class ScoreInputs:
    """What the score is computed from (the registrations of the window only)."""

    registered: int = 0
    attended: int = 0
    watch_shares: tuple[float, ...] = ()  # one per attended registration, 0 to 1
    answers: int = 0
    chat_messages: int = 0
    offer_sessions: int = 0


@dataclass(frozen=True)
class ScorePart:
    """One weighted term of the score, for showing how a score came about."""

    label: str
    points: float
    weight: int
    detail: str


@dataclass(frozen=True)
class Score:
    """An engagement score and its terms."""

    total: int
    parts: tuple[ScorePart, ...]


def engagement_score(inputs: ScoreInputs) -> Score:
    """The 0-100 score of SCORE_FORMULA from its inputs."""
    if inputs.registered <= 0:
        return Score(0, ())
    attended = min(inputs.attended, inputs.registered)
    shares = [min(1.0, max(0.0, share)) for share in inputs.watch_shares]
    watch = sum(shares) / len(shares) if shares else 0.0
    answers = min(inputs.answers, ANSWERS_CAP)
    chats = min(inputs.chat_messages, CHAT_CAP)
    offers = min(inputs.offer_sessions, OFFERS_CAP)
    terms = (
        ScorePart(
            "Attendance",
            30 * attended / inputs.registered,
            30,
            f"{attended} of {inputs.registered} registrations attended",
        ),
        ScorePart(
            "Watch share",
            30 * watch,
            30,
            f"{round(watch * 100)}% watched on average" if shares else "nothing watched",
        ),
        ScorePart(
            "Interactions",
            15 * answers / ANSWERS_CAP,
            15,
            f"{inputs.answers} answer{'s' if inputs.answers != 1 else ''}",
        ),
        ScorePart(
            "Chat",
            10 * chats / CHAT_CAP,
            10,
            f"{inputs.chat_messages} message{'s' if inputs.chat_messages != 1 else ''}",
        ),
        ScorePart(
            "Offer clicks",
            15 * offers / OFFERS_CAP,
            15,
            f"clicked in {inputs.offer_sessions} session"
            f"{'s' if inputs.offer_sessions != 1 else ''}",
        ),
    )
    # Half rounds up, as by hand; the tolerance keeps 22.4999999 (float noise for 22.5) from
    # rounding down.
    total = math.floor(sum(part.points for part in terms) + 0.5 + 1e-9)
    return Score(max(0, min(100, total)), terms)


# --- What each registration came to ---------------------------------------------------------


@dataclass
class RegistrationFacts:
    """One registration and what its Attendance rows (those with a join) add up to."""

    registrant_id: int
    contact_id: int
    webinar_id: int
    session_id: int | None
    starts_at: datetime | None = None
    attended: bool = False
    watched_seconds: float = 0.0
    watch_share: float = 0.0
    answers: int = 0
    chat_messages: int = 0
    clicked_offer: bool = False


def chunks(values: Sequence[int], size: int = CHUNK) -> Iterator[list[int]]:
    """The values in lists of at most `size`."""
    for first in range(0, len(values), size):
        yield list(values[first : first + size])


async def video_seconds(webinar_ids: Iterable[int]) -> dict[int, float]:
    """Each webinar's video length in seconds (DEFAULT_VIDEO_SECONDS when unknown)."""
    wanted = sorted(set(webinar_ids))
    found: dict[int, float] = dict.fromkeys(wanted, DEFAULT_VIDEO_SECONDS)
    for part in chunks(wanted):
        rows: list[Any] = await Webinar.filter(id__in=part).values_list(
            "id", "video__duration_seconds"
        )
        for webinar_id, seconds in rows:
            if seconds is not None and seconds > 0:
                found[int(webinar_id)] = float(seconds)
    return found


def watch_share(watched_seconds: float, video: float) -> float:
    """Time watched as a share of the video, 0 to 1."""
    if video <= 0:
        return 0.0
    return max(0.0, min(1.0, watched_seconds / video))


async def rows_where_in(
    query: QuerySet[Any], column: str, ids: Collection[int], *columns: str
) -> list[Any]:
    """`column` and `columns` of the query's rows whose `column` is one of `ids`.

    For many ids one pass over the table is cheaper than building and sending long IN lists.
    """
    if len(ids) > CHUNK:
        wanted = set(ids)
        every: list[Any] = await query.values_list(column, *columns)
        return [row for row in every if row[0] in wanted]
    found: list[Any] = []
    for part in chunks(sorted(ids)):
        found += await query.filter(**{f"{column}__in": part}).values_list(column, *columns)
    return found


async def registration_facts(
    contact_ids: Iterable[int] | None = None, *, registrant_ids: Iterable[int] | None = None
) -> list[RegistrationFacts]:
    """The registrations of these contacts (or these registrants) with their attendance."""
    facts: dict[int, RegistrationFacts] = {}
    columns = ("webinar_id", "session_id")
    if registrant_ids is None:
        rows = await rows_where_in(
            Registrant.all(), "contact_id", set(contact_ids or ()), "id", *columns
        )
        found = [(rid, cid, wid, sid) for cid, rid, wid, sid in rows]
    else:
        found = await rows_where_in(
            Registrant.all(), "id", set(registrant_ids), "contact_id", *columns
        )
    for rid, cid, wid, sid in found:
        facts[int(rid)] = RegistrationFacts(
            int(rid), int(cid), int(wid), None if sid is None else int(sid)
        )
    if not facts:
        return []
    session_ids = sorted({f.session_id for f in facts.values() if f.session_id is not None})
    starts: dict[int, datetime] = {}
    for part in chunks(session_ids):
        starts.update(await WebinarSession.filter(id__in=part).values_list("id", "starts_at"))
    videos = await video_seconds(f.webinar_id for f in facts.values())
    # No date columns: turning stored dates into datetimes is what costs for many rows.
    joined = Attendance.filter(first_join_at__isnull=False)
    counters = ("watched_seconds", "clicked_offer", "chat_messages", "responses")
    for rid, watched, clicked, chats, answers in await rows_where_in(
        joined, "registrant_id", facts.keys(), *counters
    ):
        fact = facts[int(rid)]
        fact.attended = True
        fact.watched_seconds = max(fact.watched_seconds, float(watched or 0.0))
        fact.clicked_offer = fact.clicked_offer or bool(clicked)
        fact.chat_messages += int(chats or 0)
        fact.answers += int(answers or 0)
    for fact in facts.values():
        if fact.session_id is not None:
            fact.starts_at = starts.get(fact.session_id)
        fact.watch_share = watch_share(fact.watched_seconds, videos[fact.webinar_id])
    return sorted(facts.values(), key=lambda f: (f.contact_id, f.registrant_id))


async def last_activity(contact_ids: Iterable[int]) -> dict[int, datetime]:
    """When each contact last registered or was seen in a session (absent: neither)."""
    latest: dict[int, datetime] = {}
    wanted = set(contact_ids)
    for model, column in ((Registrant, "created_at"), (Attendance, "last_seen_at")):
        query = model.filter(**{f"{column}__isnull": False}).annotate(latest=Max(column))
        rows: list[Any] = []
        if len(wanted) > CHUNK:  # as rows_where_in: one pass instead of long IN lists
            every = await query.group_by("contact_id").values_list("contact_id", "latest")
            rows = [row for row in every if row[0] in wanted]
        else:
            for part in chunks(sorted(wanted)):
                rows += (
                    await query.filter(contact_id__in=part)
                    .group_by("contact_id")
                    .values_list("contact_id", "latest")
                )
        for cid, moment in rows:
            if moment is not None and (int(cid) not in latest or moment > latest[int(cid)]):
                latest[int(cid)] = moment
    return latest


def registration_state(fact: RegistrationFacts, now: datetime) -> str:
    """Attended, upcoming, missed, or no session (released by a schedule change)."""
    if fact.attended:
        return "attended"
    if fact.starts_at is None:
        return "no session"
    return "upcoming" if fact.starts_at > now else "missed"


def score_inputs(facts: Iterable[RegistrationFacts], now: datetime) -> ScoreInputs:
    """The score's inputs from one contact's registrations (those of the window only)."""
    counted = [
        fact
        for fact in facts
        if fact.starts_at is not None and now - SCORE_WINDOW < fact.starts_at <= now
    ]
    attended = [fact for fact in counted if fact.attended]
    return ScoreInputs(
        registered=len(counted),
        attended=len(attended),
        watch_shares=tuple(fact.watch_share for fact in attended),
        answers=sum(fact.answers for fact in counted),
        chat_messages=sum(fact.chat_messages for fact in counted),
        offer_sessions=sum(1 for fact in counted if fact.clicked_offer),
    )


@dataclass(frozen=True)
class ContactSummary:
    """A contact's figures for lists and exports (all time, except the score)."""

    registrations: int = 0
    attended: int = 0
    watch_share: float | None = None  # average over the attended registrations
    last_activity: datetime | None = None
    score: int = 0


def summarise(
    facts: Sequence[RegistrationFacts], now: datetime, latest: datetime | None
) -> ContactSummary:
    """One contact's summary from their registrations and their last activity."""
    attended = [fact for fact in facts if fact.attended]
    return ContactSummary(
        registrations=len(facts),
        attended=len(attended),
        watch_share=(sum(f.watch_share for f in attended) / len(attended)) if attended else None,
        last_activity=latest,
        score=engagement_score(score_inputs(facts, now)).total,
    )


async def summaries(contact_ids: Iterable[int], now: datetime) -> dict[int, ContactSummary]:
    """The summary of each contact (an empty one for a contact without registrations)."""
    wanted = sorted(set(contact_ids))
    grouped: dict[int, list[RegistrationFacts]] = {cid: [] for cid in wanted}
    for fact in await registration_facts(wanted):
        grouped[fact.contact_id].append(fact)
    latest = await last_activity(wanted)
    return {cid: summarise(facts, now, latest.get(cid)) for cid, facts in grouped.items()}


# --- The list of contacts -------------------------------------------------------------------


@dataclass(frozen=True)
class ContactPage:
    """One page of the contact list."""

    contacts: list[Contact]
    summaries: dict[int, ContactSummary]
    total: int
    page: int
    pages: int


async def contact_page(*, query: str, page: int, now: datetime) -> ContactPage:
    """Contacts whose email or name contains `query`, newest first, with their figures."""
    rows = Contact.all()
    query = query.strip()[:SEARCH_MAX]
    if query:
        rows = rows.filter(Q(email__icontains=query) | Q(name__icontains=query))
    total = await rows.count()
    pages = max(1, (total + PAGE_SIZE - 1) // PAGE_SIZE)
    page = min(max(1, page), pages)
    items = (
        await rows.order_by("-created_at", "-id").offset((page - 1) * PAGE_SIZE).limit(PAGE_SIZE)
    )
    return ContactPage(
        contacts=list(items),
        summaries=await summaries([c.id for c in items], now),
        total=total,
        page=page,
        pages=pages,
    )


# --- Answers in words ---------------------------------------------------------------------


def option_texts(interaction: Interaction, answer: Any) -> str:
    """The chosen options of a poll or quiz as their text."""
    options = list((interaction.config or {}).get("options", []))
    chosen = answer if isinstance(answer, list) else [answer]
    texts = [
        str(options[index])
        if isinstance(index, int) and 0 <= index < len(options)
        else f"option {index}"
        for index in chosen
    ]
    return ", ".join(texts)
