"""Session slots: the next scheduled sessions and the just-in-time slot, from local wall times."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo

from .rules import Kind, ScheduleRules, require_aware

# How far ahead to look before giving up; bounds the work for rules that rarely match.
HORIZON_DAYS = 5 * 366
JIT_HORIZON_DAYS = 366
# More than any clock change since 2012 (the largest today are 2 hours); the day-long jumps
# of Kiritimati (1995) and Samoa (2011) are history that no schedule starts in.
JIT_SHIFT_MARGIN = timedelta(hours=3)
UPCOMING_CACHE_SIZE = 512
# Also bounds how long an answer is kept when sessions far ahead could still join it.
UPCOMING_CACHE_MAX = timedelta(minutes=1)
_UPCOMING: OrderedDict[
    tuple[ScheduleRules, int, ZoneInfo | None], tuple[datetime, datetime, tuple[Slot, ...]]
] = OrderedDict()


class SlotKind(StrEnum):
    """Where a slot comes from: the recurring or specific times, or the just-in-time grid."""

    SCHEDULED = "scheduled"
    JIT = "jit"


@dataclass(frozen=True)
class Slot:
    """One session start offered to visitors."""

    starts_at: datetime  # aware, UTC
    wall: datetime  # naive local wall time the rules asked for, in `zone`
    zone: ZoneInfo
    kind: SlotKind = SlotKind.SCHEDULED

    @property
    def local(self) -> datetime:
        """The start as an aware local time; later than `wall` when it fell in a gap."""
        return self.starts_at.astimezone(self.zone)

    @property
    def shifted(self) -> bool:
        """Whether the wall time did not exist (spring-forward gap) and runs later on the clock."""
        return self.local.replace(tzinfo=None) != self.wall


def resolve_wall(wall: datetime, zone: ZoneInfo) -> datetime:
    """The UTC instant of a naive local wall time: gaps shift forward, repeated hours run first."""
    if wall.tzinfo is not None:
        raise ValueError(f"wall time must be naive, got {wall!r}")
    # fold=0 is exactly the documented policy: in a gap zoneinfo applies the offset from before
    # the transition (02:30 becomes 03:30), and in a repeated hour it picks the first occurrence.
    return wall.replace(tzinfo=zone, fold=0).astimezone(UTC)


def upcoming_sessions(
    rules: ScheduleRules,
    now: datetime,
    *,
    count: int | None = None,
    viewer_zone: ZoneInfo | None = None,
) -> list[Slot]:
    """The next sessions still open for registration, earliest first, at most `count`."""
    require_aware(now, "now")
    wanted = rules.upcoming_count if count is None else count
    if wanted < 1 or rules.kind is Kind.ON_DEMAND:
        return []
    # The answer stays the same until one of its sessions closes for registration (later
    # ones only join the list then), so it is remembered for that long; every visitor and
    # registration of a webinar asks the same question many times a second.
    key = (rules, wanted, viewer_zone)
    known = _UPCOMING.get(key)
    if known is not None and known[0] <= now < known[1]:
        return list(known[2])
    found = _upcoming(rules, now, wanted, viewer_zone)
    _UPCOMING[key] = (now, _unchanged_until(rules, now, found), tuple(found))
    _UPCOMING.move_to_end(key)
    while len(_UPCOMING) > UPCOMING_CACHE_SIZE:
        _UPCOMING.popitem(last=False)
    return found


def _unchanged_until(rules: ScheduleRules, now: datetime, found: list[Slot]) -> datetime:
    """The first instant after `now` at which `_upcoming` could answer differently."""
    until = now + UPCOMING_CACHE_MAX
    for slot in found:
        closes = slot.starts_at - rules.cutoff  # offered while now < starts_at - cutoff
        if slot.kind is SlotKind.JIT and rules.jit is not None:
            closes = min(closes, slot.starts_at - rules.jit.lead)
        until = min(until, closes)
    return until


def _upcoming(
    rules: ScheduleRules, now: datetime, wanted: int, viewer_zone: ZoneInfo | None
) -> list[Slot]:
    zone = rules.zone_for(viewer_zone)
    open_after = now + rules.cutoff
    if rules.kind is Kind.SPECIFIC:
        found = [slot for slot in _specific_slots(rules, zone) if slot.starts_at > open_after]
    else:
        found = _recurring_slots(rules, zone, open_after, wanted)
    jit = next_jit_slot(rules, now, viewer_zone=viewer_zone)
    if jit is not None:
        found.append(jit)
    return _earliest_distinct(found, wanted)


def next_jit_slot(
    rules: ScheduleRules, now: datetime, *, viewer_zone: ZoneInfo | None = None
) -> Slot | None:
    """The just-in-time session: the first grid slot at least the lead time away, if any."""
    require_aware(now, "now")
    if rules.jit is None or rules.kind is Kind.ON_DEMAND:
        return None
    zone = rules.zone_for(viewer_zone)
    earliest = now + rules.jit.lead
    open_after = now + rules.cutoff
    # Start a day early: around a fall-back hour local dates and instants do not line up.
    first_day = earliest.astimezone(zone).date() - timedelta(days=1)
    # Wall times this far before the earliest offered instant cannot be offered: no zone
    # shifts its clock by more than this in one transition, so skipping them changes nothing
    # and spares computing every grid slot of the day.
    skip_before = (max(earliest, open_after) - JIT_SHIFT_MARGIN).astimezone(zone)
    skip_before_wall = skip_before.replace(tzinfo=None)
    best: Slot | None = None
    for offset in range(JIT_HORIZON_DAYS):
        day = first_day + timedelta(days=offset)
        if rules.end_date is not None and day > rules.end_date:
            break
        if best is not None and day > best.wall.date() + timedelta(days=1):
            break
        for slot in _jit_day(rules, zone, day, skip_before_wall):
            if best is not None and slot.starts_at > best.starts_at + JIT_SHIFT_MARGIN:
                break  # later walls only run later, give or take one clock change
            offered = slot.starts_at >= earliest and slot.starts_at > open_after
            if offered and (best is None or slot.starts_at < best.starts_at):
                best = slot
    return best


def slot_exists(
    rules: ScheduleRules, starts_at: datetime, *, viewer_zone: ZoneInfo | None = None
) -> bool:
    """Whether an instant is a start the rules define (scheduled or just-in-time), at any time."""
    # Ignores `now` and the cut-off on purpose: this answers "does this session still exist
    # under these rules", which is what decides whether an edit orphans its registrants.
    require_aware(starts_at, "starts_at")
    if rules.kind is Kind.ON_DEMAND:
        return False
    zone = rules.zone_for(viewer_zone)
    start = starts_at.astimezone(UTC)
    local = start.astimezone(zone)
    if rules.jit is not None and _on_jit_grid(rules, local):
        return True
    # A gap shift moves a wall time forward, past midnight in zones that change at 00:00, so the
    # session may belong to the previous local date.
    days = (local.date() - timedelta(days=1), local.date())
    if rules.kind is Kind.SPECIFIC:
        return any(
            wall.date() in days
            and rules.allows_date(wall.date())
            and resolve_wall(wall, zone) == start
            for wall in rules.dates
        )
    recurrence = rules.recurrence
    if recurrence is None:
        return False
    return any(
        resolve_wall(datetime.combine(day, moment), zone) == start
        for day in days
        if rules.allows_date(day) and recurrence.runs_on(day)
        for moment in rules.times
    )


def _on_jit_grid(rules: ScheduleRules, local: datetime) -> bool:
    assert rules.jit is not None
    wall = local.replace(tzinfo=None)
    if wall.second or wall.microsecond or (wall.hour * 60 + wall.minute) % rules.jit.every:
        return False
    if rules.hours is not None and not rules.hours.contains(wall.time()):
        return False
    return rules.allows_date(wall.date())


def watch_now_available(
    rules: ScheduleRules, now: datetime, *, viewer_zone: ZoneInfo | None = None
) -> bool:
    """Whether a visitor may start the webinar on demand right now."""
    require_aware(now, "now")
    if rules.kind is not Kind.ON_DEMAND and not rules.watch_now:
        return False
    return rules.allows_date(now.astimezone(rules.zone_for(viewer_zone)).date())


def _specific_slots(rules: ScheduleRules, zone: ZoneInfo) -> Iterator[Slot]:
    for wall in rules.dates:
        if rules.allows_date(wall.date()):
            yield Slot(resolve_wall(wall, zone), wall, zone)


def _recurring_slots(
    rules: ScheduleRules, zone: ZoneInfo, open_after: datetime, wanted: int
) -> list[Slot]:
    recurrence = rules.recurrence
    if recurrence is None or not rules.times:
        return []
    day = open_after.astimezone(zone).date() - timedelta(days=1)
    if rules.start_date is not None:
        day = max(day, rules.start_date)
    last = day + timedelta(days=HORIZON_DAYS)
    if rules.end_date is not None:
        last = min(last, rules.end_date)
    found: list[Slot] = []
    enough_on: date | None = None
    while day <= last:
        if rules.allows_date(day) and recurrence.runs_on(day):
            for moment in rules.times:
                wall = datetime.combine(day, moment)
                start = resolve_wall(wall, zone)
                if start > open_after:
                    found.append(Slot(start, wall, zone))
        if len(found) >= wanted:
            # One more day than needed: a gap shift can move a late session past the next
            # day's early one, and the final sort puts it right.
            if enough_on is not None:
                break
            enough_on = day
        day += timedelta(days=1)
    return found


def _jit_day(
    rules: ScheduleRules, zone: ZoneInfo, day: date, skip_before: datetime | None = None
) -> Iterator[Slot]:
    assert rules.jit is not None
    if not rules.allows_date(day):
        return
    for minute in range(0, 24 * 60, rules.jit.every):
        wall = datetime.combine(day, time(minute // 60, minute % 60))
        if skip_before is not None and wall < skip_before:
            continue
        if rules.hours is not None and not rules.hours.contains(wall.time()):
            continue
        # Only real clock readings: a gap has no grid slots, a repeated hour has both passes,
        # so a session is always about to start in elapsed time too.
        starts = {wall.replace(tzinfo=zone, fold=fold).astimezone(UTC) for fold in (0, 1)}
        for start in sorted(starts):
            if start.astimezone(zone).replace(tzinfo=None) == wall:
                yield Slot(start, wall, zone, SlotKind.JIT)


def _earliest_distinct(slots: Iterable[Slot], count: int) -> list[Slot]:
    # Two wall times can resolve to one instant (02:00 in a gap is 03:00): offer it once,
    # preferring a scheduled slot over a just-in-time one, and a real clock time over a shifted one.
    by_start: dict[datetime, Slot] = {}
    ordered = sorted(slots, key=lambda s: (s.starts_at, s.kind is SlotKind.JIT, s.shifted))
    for slot in ordered:
        by_start.setdefault(slot.starts_at, slot)
    return list(by_start.values())[:count]
