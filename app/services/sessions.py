"""Sessions offered to visitors, and the WebinarSession rows behind the ones people register for.

Sessions are stored lazily: the schedule rules say which starts exist, and a row is created the
first time someone registers for a start (one row per webinar, instant and kind).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from tortoise.exceptions import IntegrityError
from tortoise.functions import Count
from tortoise.transactions import in_transaction

from app.models import Registrant, Schedule, Webinar, WebinarSession
from app.schedule import (
    ScheduleRuleError,
    ScheduleRules,
    Slot,
    SlotKind,
    choose_session_with_capacity,
    parse_schedule,
    upcoming_sessions,
    watch_now_available,
)

ON_DEMAND = "on_demand"


@dataclass(frozen=True)
class Offer:
    """What a visitor may register for right now."""

    slots: list[Slot]  # scheduled and just-in-time starts, earliest first, with a free seat
    watch_now: bool  # whether "watch now" (on demand) is open
    zone: ZoneInfo  # the zone the times were computed in


def rules_of(schedule: Schedule) -> ScheduleRules:
    """The parsed rules of a stored schedule; raises ScheduleRuleError when they are invalid."""
    return parse_schedule(
        schedule.rules,
        kind=schedule.kind,
        timezone=schedule.timezone,
        attendee_local=schedule.attendee_local,
        blackout_dates=schedule.blackout_dates,
    )


async def load_rules(webinar: Webinar) -> ScheduleRules | None:
    """The webinar's schedule rules, or None when it has no (valid) schedule yet."""
    schedule = await Schedule.get_or_none(webinar_id=webinar.id)
    if schedule is None:
        return None
    try:
        return rules_of(schedule)
    except ScheduleRuleError:
        return None


async def registered_counts(webinar: Webinar, starts: list[datetime]) -> dict[datetime, int]:
    """How many registrants each stored session starting at one of `starts` has."""
    if not starts:
        return {}
    rows = (
        await WebinarSession.filter(webinar_id=webinar.id, starts_at__in=starts)
        .annotate(seats=Count("registrants"))
        .values("starts_at", "seats")
    )
    return {row["starts_at"]: int(row["seats"]) for row in rows}


async def offer(
    webinar: Webinar,
    rules: ScheduleRules,
    now: datetime,
    *,
    viewer_zone: ZoneInfo | None = None,
) -> Offer:
    """The sessions to show a visitor: full ones left out, the wanted number kept."""
    zone = rules.zone_for(viewer_zone)
    wanted = rules.upcoming_count
    if rules.capacity is None:
        slots = upcoming_sessions(rules, now, viewer_zone=viewer_zone)
    else:
        # Look further ahead so that full sessions can be skipped and still `wanted` remain.
        candidates = upcoming_sessions(rules, now, count=wanted * 4, viewer_zone=viewer_zone)
        counts = await registered_counts(webinar, [slot.starts_at for slot in candidates])
        slots = [s for s in candidates if counts.get(s.starts_at, 0) < rules.capacity][:wanted]
    return Offer(slots, watch_now_available(rules, now, viewer_zone=viewer_zone), zone)


async def seat_for(
    webinar: Webinar,
    rules: ScheduleRules,
    chosen: datetime,
    now: datetime,
    *,
    viewer_zone: ZoneInfo | None = None,
) -> Slot | None:
    """The offered slot starting at `chosen`, or the next one with a free seat; None if none."""
    options = await seat_options(webinar, rules, chosen, now, viewer_zone=viewer_zone)
    return options[0] if options else None


async def seat_options(
    webinar: Webinar,
    rules: ScheduleRules,
    chosen: datetime,
    now: datetime,
    *,
    viewer_zone: ZoneInfo | None = None,
) -> list[Slot]:
    """The slots a registration for `chosen` may take, best first; [] if none.

    With a capacity: the chosen one and the later ones that had a free seat a moment ago, so
    that a registration finding its session full by now overflows to the next.
    """
    candidates = upcoming_sessions(
        rules, now, count=max(rules.upcoming_count * 4, 12), viewer_zone=viewer_zone
    )
    from_chosen = [slot for slot in candidates if slot.starts_at >= chosen]
    if not from_chosen or from_chosen[0].starts_at != chosen:
        return []  # not a start we offer (any more): the visitor must pick again
    if rules.capacity is None:
        return from_chosen[:1]  # no limit: no need to count anyone
    counts = await registered_counts(webinar, [slot.starts_at for slot in from_chosen])
    first = choose_session_with_capacity(from_chosen, counts, rules.capacity)
    if first is None:
        return []
    return [
        slot
        for slot in from_chosen[from_chosen.index(first) :]
        if counts.get(slot.starts_at, 0) < rules.capacity
    ]


async def take_seat(
    webinar: Webinar,
    slots: Sequence[Slot],
    capacity: int,
    place: Callable[[WebinarSession], Awaitable[object]],
) -> WebinarSession | None:
    """Run `place` for the first of `slots` whose session still has a free seat; that session.

    Seats are counted and taken in one transaction that holds the session's row lock
    (PostgreSQL; SQLite writes one transaction at a time anyway), so registrations arriving
    together never put more than `capacity` people into a session: the ones that find it full
    overflow to the next slot. None when every one is full. `place` stores the registrant's
    seat (inside the transaction); an error it raises undoes the seat and propagates.
    """
    for slot in slots:
        session = await session_for_slot(webinar, slot, capacity=capacity)
        async with in_transaction():
            await WebinarSession.filter(id=session.id).select_for_update().only("id")
            if await Registrant.filter(session_id=session.id).count() >= capacity:
                continue
            await place(session)
            return session
    return None


def kind_of(slot: Slot) -> str:
    """The kind of the session row that stores a slot."""
    return "jit" if slot.kind is SlotKind.JIT else "scheduled"


async def session_for_slot(
    webinar: Webinar, slot: Slot, *, capacity: int | None = None
) -> WebinarSession:
    """The stored session of a slot, created on first use (safe under concurrent calls)."""
    return await _get_or_create(webinar, slot.starts_at, kind_of(slot), capacity)


async def on_demand_session(webinar: Webinar, now: datetime) -> WebinarSession:
    """A session of one viewer's own that starts when they press play (one row per request)."""
    return await WebinarSession.create(webinar_id=webinar.id, starts_at=now, kind=ON_DEMAND)


async def _get_or_create(
    webinar: Webinar, starts_at: datetime, kind: str, capacity: int | None
) -> WebinarSession:
    found = await WebinarSession.get_or_none(webinar_id=webinar.id, starts_at=starts_at, kind=kind)
    if found is not None:
        return found
    try:
        return await WebinarSession.create(
            webinar_id=webinar.id, starts_at=starts_at, kind=kind, capacity=capacity
        )
    except IntegrityError:
        # Another request created it between our read and our insert.
        return await WebinarSession.get(webinar_id=webinar.id, starts_at=starts_at, kind=kind)


async def seats_taken(session: WebinarSession) -> int:
    """How many registrants a session has."""
    return await Registrant.filter(session_id=session.id).count()
