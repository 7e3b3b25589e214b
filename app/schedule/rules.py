"""Typed schedule rules, and the parser that turns a stored Schedule row into them."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from enum import StrEnum
from typing import TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

T = TypeVar("T")
E = TypeVar("E", bound=StrEnum)

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
JIT_GRIDS = (15, 30, 60)
MAX_UPCOMING = 50
MAX_CUTOFF_MINUTES = 7 * 24 * 60
MAX_JIT_LEAD_MINUTES = 24 * 60
MAX_REPLAY_HOURS = 366 * 24

_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_TIME = re.compile(r"(\d{2}):(\d{2})")
_DATETIME = re.compile(r"(\d{4}-\d{2}-\d{2})[T ](\d{2}:\d{2})")
_RULE_KEYS = frozenset(
    {
        "repeat",
        "weekdays",
        "anchor_date",
        "week",
        "weekday",
        "times",
        "dates",
        "jit",
        "hours",
        "watch_now",
        "replay_hours",
        "upcoming_count",
        "cutoff_minutes",
        "capacity",
        "start_date",
        "end_date",
    }
)


class ScheduleRuleError(ValueError):
    """Bad schedule input, naming the field so an editor can show the error beside it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class Kind(StrEnum):
    """The event type of a schedule (Schedule.kind)."""

    RECURRING = "recurring"
    SPECIFIC = "specific"
    ON_DEMAND = "on_demand"


class Repeat(StrEnum):
    """How a recurring schedule repeats."""

    DAILY = "daily"
    WEEKDAYS = "weekdays"
    WEEKLY = "weekly"
    BIWEEKLY = "biweekly"
    MONTHLY = "monthly"


@dataclass(frozen=True)
class Recurrence:
    """Which local dates a recurring schedule runs on."""

    repeat: Repeat
    weekdays: frozenset[int] = frozenset()  # 0 = Monday; weekly and biweekly
    anchor: date | None = None  # biweekly: the week holding this date runs, then every other
    week: int = 1  # monthly: 1..4, or -1 for the last such weekday of the month
    weekday: int = 0  # monthly

    def runs_on(self, day: date) -> bool:
        """Whether this recurrence has sessions on the local date `day`."""
        if self.repeat is Repeat.DAILY:
            return True
        if self.repeat is Repeat.WEEKDAYS:
            return day.weekday() < 5
        if self.repeat is Repeat.WEEKLY:
            return day.weekday() in self.weekdays
        if self.repeat is Repeat.BIWEEKLY:
            assert self.anchor is not None
            # Count whole weeks from the anchor's Monday rather than ISO week numbers, whose
            # parity breaks after a 53-week year.
            monday = self.anchor - timedelta(days=self.anchor.weekday())
            weeks = (day - monday).days // 7
            return weeks % 2 == 0 and day.weekday() in self.weekdays
        return day == nth_weekday(day.year, day.month, self.weekday, self.week)


def nth_weekday(year: int, month: int, weekday: int, week: int) -> date:
    """The `week`-th (1..4, or -1 for last) `weekday` of a month."""
    if week == -1:
        following = date(year + month // 12, month % 12 + 1, 1)
        last = following - timedelta(days=1)
        return last - timedelta(days=(last.weekday() - weekday) % 7)
    first = date(year, month, 1)
    return first + timedelta(days=(weekday - first.weekday()) % 7 + 7 * (week - 1))


@dataclass(frozen=True)
class Hours:
    """Hours of operation in local wall time; `closes` is exclusive and may be past midnight."""

    opens: time
    closes: time

    def contains(self, moment: time) -> bool:
        """Whether a session may start at this local wall time."""
        if self.opens < self.closes:
            return self.opens <= moment < self.closes
        return moment >= self.opens or moment < self.closes


@dataclass(frozen=True)
class JustInTime:
    """A session always about to start, on a local grid of `every` minutes, `lead` ahead."""

    every: int
    lead: timedelta


@dataclass(frozen=True)
class ScheduleRules:
    """Everything that decides when a webinar runs, validated."""

    kind: Kind
    zone: ZoneInfo
    attendee_local: bool = False
    recurrence: Recurrence | None = None
    times: tuple[time, ...] = ()  # recurring: local wall times each running day
    dates: tuple[datetime, ...] = ()  # specific: naive local wall date-times
    jit: JustInTime | None = None
    hours: Hours | None = None  # restricts the just-in-time grid
    watch_now: bool = False
    replay: timedelta | None = None
    upcoming_count: int = 3
    cutoff: timedelta = timedelta(0)
    capacity: int | None = None
    start_date: date | None = None
    end_date: date | None = None
    blackout_dates: frozenset[date] = frozenset()

    def zone_for(self, viewer_zone: ZoneInfo | None) -> ZoneInfo:
        """The zone whose wall clock the rules are read in for this viewer."""
        return viewer_zone if self.attendee_local and viewer_zone is not None else self.zone

    def allows_date(self, day: date) -> bool:
        """Whether the local date is inside the date range and not blacked out."""
        if self.start_date is not None and day < self.start_date:
            return False
        if self.end_date is not None and day > self.end_date:
            return False
        return day not in self.blackout_dates


def parse_zone(name: object, field: str = "timezone") -> ZoneInfo:
    """An IANA zone from untrusted input, or a ScheduleRuleError."""
    # "localtime" would follow the host's setting, which is not a webinar's zone.
    if not isinstance(name, str) or not name or name == "localtime" or len(name) > 64:
        raise ScheduleRuleError(field, "must be an IANA time zone such as Europe/Berlin")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise ScheduleRuleError(field, f"unknown time zone {name!r}") from None


def parse_schedule(
    rules: Mapping[str, object],
    *,
    kind: str,
    timezone: str,
    attendee_local: bool = False,
    blackout_dates: Iterable[object] = (),
) -> ScheduleRules:
    """Typed rules from a Schedule row's columns and its `rules` JSON; raises ScheduleRuleError."""
    unknown = sorted(set(rules) - _RULE_KEYS)
    if unknown:
        raise ScheduleRuleError(unknown[0], "unknown setting")
    parsed_kind = _choice(kind, Kind, "kind")
    zone = parse_zone(timezone)
    if not isinstance(attendee_local, bool):
        raise ScheduleRuleError("attendee_local", "must be true or false")
    get = rules.get
    start = _optional(get("start_date"), _parse_date, "start_date")
    end = _optional(get("end_date"), _parse_date, "end_date")
    if start is not None and end is not None and end < start:
        raise ScheduleRuleError("end_date", "must not be before start_date")
    times = tuple(sorted(set(_list(get("times"), _parse_time, "times"))))
    dates = tuple(sorted(set(_list(get("dates"), _parse_datetime, "dates"))))
    jit = _optional(get("jit"), _parse_jit, "jit")
    recurrence = None
    if parsed_kind is Kind.RECURRING:
        recurrence = _parse_recurrence(rules, start)
        if not times and jit is None:
            raise ScheduleRuleError("times", "add at least one time (or turn on just-in-time)")
    if parsed_kind is Kind.SPECIFIC and not dates:
        raise ScheduleRuleError("dates", "add at least one date and time")
    hours = _optional(get("hours"), _parse_hours, "hours")
    if jit is not None and hours is not None and not _grid_meets_hours(jit.every, hours):
        raise ScheduleRuleError(
            "hours", f"no start on the {jit.every}-minute just-in-time grid falls in these hours"
        )
    replay_hours = _optional(get("replay_hours"), _bounded(1, MAX_REPLAY_HOURS), "replay_hours")
    return ScheduleRules(
        kind=parsed_kind,
        zone=zone,
        attendee_local=attendee_local,
        recurrence=recurrence,
        times=times,
        dates=dates,
        jit=jit,
        hours=hours,
        watch_now=_bool(get("watch_now", False), "watch_now"),
        replay=None if replay_hours is None else timedelta(hours=replay_hours),
        upcoming_count=_bounded(1, MAX_UPCOMING)(get("upcoming_count", 3), "upcoming_count"),
        cutoff=timedelta(
            minutes=_bounded(0, MAX_CUTOFF_MINUTES)(get("cutoff_minutes", 0), "cutoff_minutes")
        ),
        capacity=_optional(get("capacity"), _bounded(1, 1_000_000), "capacity"),
        start_date=start,
        end_date=end,
        blackout_dates=frozenset(_list(list(blackout_dates), _parse_date, "blackout_dates")),
    )


def _parse_recurrence(rules: Mapping[str, object], start: date | None) -> Recurrence:
    repeat = _choice(rules.get("repeat"), Repeat, "repeat")
    if repeat in (Repeat.WEEKLY, Repeat.BIWEEKLY):
        days = frozenset(_list(rules.get("weekdays"), _parse_weekday, "weekdays"))
        if not days:
            raise ScheduleRuleError("weekdays", "choose at least one weekday")
        anchor = _optional(rules.get("anchor_date"), _parse_date, "anchor_date") or start
        if repeat is Repeat.BIWEEKLY and anchor is None:
            raise ScheduleRuleError("anchor_date", "every 2 weeks needs a first week to count from")
        return Recurrence(repeat, weekdays=days, anchor=anchor)
    if repeat is Repeat.MONTHLY:
        week_value = rules.get("week")
        week = -1 if week_value == "last" else _bounded(1, 4)(week_value, "week")
        return Recurrence(
            repeat, week=week, weekday=_parse_weekday(rules.get("weekday"), "weekday")
        )
    return Recurrence(repeat)


def _grid_meets_hours(every: int, hours: Hours) -> bool:
    return any(hours.contains(time(m // 60, m % 60)) for m in range(0, 24 * 60, every))


def _parse_jit(value: object, field: str) -> JustInTime:
    data = _mapping(value, field, {"every_minutes", "lead_minutes"})
    every = data.get("every_minutes", 15)
    if every not in JIT_GRIDS or isinstance(every, bool) or not isinstance(every, int):
        raise ScheduleRuleError(f"{field}.every_minutes", "must be 15, 30 or 60")
    lead = _bounded(0, MAX_JIT_LEAD_MINUTES)(data.get("lead_minutes", 5), f"{field}.lead_minutes")
    return JustInTime(every=every, lead=timedelta(minutes=lead))


def _parse_hours(value: object, field: str) -> Hours:
    data = _mapping(value, field, {"opens", "closes"})
    opens = _parse_time(data.get("opens"), f"{field}.opens")
    closes = _parse_time(data.get("closes"), f"{field}.closes")
    if opens == closes:
        raise ScheduleRuleError(f"{field}.closes", "must differ from the opening time")
    return Hours(opens, closes)


def _mapping(value: object, field: str, keys: set[str]) -> Mapping[str, object]:
    if not isinstance(value, Mapping):
        raise ScheduleRuleError(field, "must be an object")
    for key in value:
        if key not in keys:
            raise ScheduleRuleError(f"{field}.{key}", "unknown setting")
    return value


def _parse_date(value: object, field: str) -> date:
    # fromisoformat alone also takes forms like 20250101, which no editor sends.
    if isinstance(value, str) and _DATE.fullmatch(value):
        try:
            return date.fromisoformat(value)
        except ValueError:
            pass
    raise ScheduleRuleError(field, f"must be a real date as YYYY-MM-DD, not {value!r}")


def _parse_time(value: object, field: str) -> time:
    match = _TIME.fullmatch(value) if isinstance(value, str) else None
    if match and int(match[1]) < 24 and int(match[2]) < 60:
        return time(int(match[1]), int(match[2]))
    raise ScheduleRuleError(field, f"must be a 24-hour time as HH:MM, not {value!r}")


def _parse_datetime(value: object, field: str) -> datetime:
    match = _DATETIME.fullmatch(value) if isinstance(value, str) else None
    if match is None:
        raise ScheduleRuleError(
            field, f"must be a local date and time as YYYY-MM-DDTHH:MM, not {value!r}"
        )
    return datetime.combine(_parse_date(match[1], field), _parse_time(match[2], field))


def _parse_weekday(value: object, field: str) -> int:
    if isinstance(value, str) and value.lower() in WEEKDAYS:
        return WEEKDAYS.index(value.lower())
    raise ScheduleRuleError(field, f"must be one of {', '.join(WEEKDAYS)}, not {value!r}")


def _bool(value: object, field: str) -> bool:
    if isinstance(value, bool):
        return value
    raise ScheduleRuleError(field, "must be true or false")


def _bounded(low: int, high: int) -> Callable[[object, str], int]:
    def parse(value: object, field: str) -> int:
        # bool is an int subclass; `true` is never a count.
        if isinstance(value, int) and not isinstance(value, bool) and low <= value <= high:
            return value
        raise ScheduleRuleError(field, f"must be a whole number from {low} to {high}")

    return parse


def _choice(value: object, enum: type[E], field: str) -> E:
    names = ", ".join(member.value for member in enum)
    if isinstance(value, str) and value in enum._value2member_map_:
        return enum(value)
    raise ScheduleRuleError(field, f"must be one of {names}, not {value!r}")


def _optional(value: object, parse: Callable[[object, str], T], field: str) -> T | None:
    return None if value is None else parse(value, field)


def _list(value: object, parse: Callable[[object, str], T], field: str) -> list[T]:
    if value is None:
        return []
    if not isinstance(value, list | tuple):
        raise ScheduleRuleError(field, "must be a list")
    return [parse(item, f"{field}[{index}]") for index, item in enumerate(value)]


def require_aware(value: datetime, name: str) -> None:
    """Reject a naive datetime where an instant is meant."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be an aware datetime (an instant), got {value!r}")
