"""Table tests for the pure schedule rules, with daylight saving, odd offsets and leap days."""

from __future__ import annotations

import random
from collections.abc import Iterable
from datetime import UTC, date, datetime, time, timedelta
from itertools import pairwise
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from app.schedule import (
    Kind,
    PlaybackState,
    Reminder,
    ScheduleRuleError,
    ScheduleRules,
    Slot,
    SlotKind,
    choose_session_with_capacity,
    next_jit_slot,
    nth_weekday,
    parse_schedule,
    parse_zone,
    playback_position,
    reminder_plan,
    replay_window,
    resolve_wall,
    slot_exists,
    upcoming_sessions,
    watch_now_available,
)
from app.schedule.slots import _jit_day, _upcoming

BERLIN = ZoneInfo("Europe/Berlin")
TOKYO = ZoneInfo("Asia/Tokyo")
NEW_YORK = ZoneInfo("America/New_York")


def make(
    kind: str = "recurring",
    timezone: str = "Europe/Berlin",
    *,
    attendee_local: bool = False,
    blackout: Iterable[str] = (),
    **rules: Any,
) -> ScheduleRules:
    return parse_schedule(
        rules,
        kind=kind,
        timezone=timezone,
        attendee_local=attendee_local,
        blackout_dates=list(blackout),
    )


def at(iso: str) -> datetime:
    """An instant written with its offset, e.g. 2026-03-29T03:30+02:00."""
    moment = datetime.fromisoformat(iso)
    assert moment.tzinfo is not None, iso
    return moment


def starts(slots: Iterable[Slot]) -> list[datetime]:
    return [slot.starts_at for slot in slots]


def local_iso(slots: Iterable[Slot]) -> list[str]:
    return [slot.local.isoformat(timespec="minutes") for slot in slots]


# --- Wall times in their zone: gaps, repeated hours, odd offsets -------------------------------

WALL_TIMES = [
    # zone, local wall time, instant it runs at, shifted by a gap
    ("Europe/Berlin", "2026-03-28T02:30", "2026-03-28T02:30+01:00", False),
    ("Europe/Berlin", "2026-03-29T02:30", "2026-03-29T03:30+02:00", True),
    ("Europe/Berlin", "2026-03-29T02:00", "2026-03-29T03:00+02:00", True),
    ("Europe/Berlin", "2026-03-29T03:00", "2026-03-29T03:00+02:00", False),
    ("Europe/Berlin", "2026-10-25T02:30", "2026-10-25T02:30+02:00", False),
    ("Europe/Berlin", "2026-10-25T03:00", "2026-10-25T03:00+01:00", False),
    ("America/New_York", "2026-03-08T02:30", "2026-03-08T03:30-04:00", True),
    ("America/New_York", "2026-11-01T01:30", "2026-11-01T01:30-04:00", False),
    ("Australia/Lord_Howe", "2026-10-04T02:15", "2026-10-04T02:45+11:00", True),
    ("Australia/Lord_Howe", "2026-04-05T01:45", "2026-04-05T01:45+11:00", False),
    ("Australia/Lord_Howe", "2026-04-05T02:00", "2026-04-05T02:00+10:30", False),
    ("Pacific/Chatham", "2026-09-27T03:00", "2026-09-27T04:00+13:45", True),
    ("Pacific/Chatham", "2026-04-05T03:00", "2026-04-05T03:00+13:45", False),
    ("Asia/Kathmandu", "2026-06-01T10:00", "2026-06-01T04:15+00:00", False),
    ("Asia/Kolkata", "2026-06-01T10:00", "2026-06-01T04:30+00:00", False),
    ("Pacific/Kiritimati", "2026-01-01T10:00", "2025-12-31T20:00+00:00", False),
    ("Pacific/Chatham", "2028-02-29T09:00", "2028-02-28T19:15+00:00", False),
]


@pytest.mark.parametrize(("zone", "wall", "expected", "shifted"), WALL_TIMES)
def test_a_specific_wall_time_runs_at(zone: str, wall: str, expected: str, shifted: bool) -> None:
    schedule = make("specific", zone, dates=[wall])
    [slot] = upcoming_sessions(schedule, at("2025-01-01T00:00+00:00"), count=5)
    assert slot.starts_at == at(expected)
    assert slot.starts_at.tzinfo is UTC
    assert slot.wall == datetime.fromisoformat(wall)
    assert slot.shifted is shifted
    assert resolve_wall(datetime.fromisoformat(wall), ZoneInfo(zone)) == at(expected)


def test_resolve_wall_wants_a_naive_wall_time() -> None:
    with pytest.raises(ValueError, match="naive"):
        resolve_wall(at("2026-01-01T10:00+01:00"), BERLIN)


# --- Recurring rules ---------------------------------------------------------------------------

RECURRING = [
    pytest.param(
        {"repeat": "daily", "times": ["02:30"]},
        "Europe/Berlin",
        "2026-03-27T12:00+00:00",
        ["2026-03-28T02:30+01:00", "2026-03-29T03:30+02:00", "2026-03-30T02:30+02:00"],
        id="daily-across-spring-forward",
    ),
    pytest.param(
        {"repeat": "daily", "times": ["02:30"]},
        "Europe/Berlin",
        "2026-10-24T12:00+00:00",
        ["2026-10-25T02:30+02:00", "2026-10-26T02:30+01:00"],
        id="daily-repeated-hour-runs-once",
    ),
    pytest.param(
        {"repeat": "daily", "times": ["01:30"]},
        "America/New_York",
        "2026-10-31T12:00+00:00",
        ["2026-11-01T01:30-04:00", "2026-11-02T01:30-05:00"],
        id="new-york-fall-back",
    ),
    pytest.param(
        {"repeat": "daily", "times": ["02:00", "02:30", "03:00", "09:00"]},
        "Europe/Berlin",
        "2026-03-28T12:00+00:00",
        ["2026-03-29T03:00+02:00", "2026-03-29T03:30+02:00", "2026-03-29T09:00+02:00"],
        id="several-times-in-the-gap-offered-once",
    ),
    pytest.param(
        {"repeat": "daily", "times": ["02:15"]},
        "Australia/Lord_Howe",
        "2026-10-02T12:00+00:00",
        ["2026-10-03T02:15+10:30", "2026-10-04T02:45+11:00", "2026-10-05T02:15+11:00"],
        id="lord-howe-half-hour-gap",
    ),
    pytest.param(
        {"repeat": "daily", "times": ["09:30"]},
        "Asia/Kathmandu",
        "2026-06-01T00:00+00:00",
        ["2026-06-01T09:30+05:45", "2026-06-02T09:30+05:45"],
        id="kathmandu-quarter-hour-offset",
    ),
    pytest.param(
        {"repeat": "daily", "times": ["10:00"]},
        "Europe/Berlin",
        "2028-02-27T12:00+00:00",
        ["2028-02-28T10:00+01:00", "2028-02-29T10:00+01:00", "2028-03-01T10:00+01:00"],
        id="every-day-over-a-leap-day",
    ),
    pytest.param(
        {"repeat": "daily", "times": ["10:00"]},
        "Europe/Berlin",
        "2027-02-27T12:00+00:00",
        ["2027-02-28T10:00+01:00", "2027-03-01T10:00+01:00", "2027-03-02T10:00+01:00"],
        id="every-day-in-a-common-february",
    ),
    pytest.param(
        {"repeat": "daily", "times": ["10:00"]},
        "Europe/Berlin",
        "2026-12-30T12:00+00:00",
        ["2026-12-31T10:00+01:00", "2027-01-01T10:00+01:00", "2027-01-02T10:00+01:00"],
        id="every-day-over-new-year",
    ),
    pytest.param(
        {"repeat": "weekdays", "times": ["10:00"]},
        "Europe/Berlin",
        "2026-06-05T07:00+00:00",  # Friday 09:00
        ["2026-06-05T10:00+02:00", "2026-06-08T10:00+02:00", "2026-06-09T10:00+02:00"],
        id="weekdays-skip-the-weekend",
    ),
    pytest.param(
        {"repeat": "weekly", "weekdays": ["mon", "fri"], "times": ["18:00"]},
        "America/New_York",
        "2026-12-24T00:00+00:00",
        [
            "2026-12-25T18:00-05:00",
            "2026-12-28T18:00-05:00",
            "2027-01-01T18:00-05:00",
            "2027-01-04T18:00-05:00",
        ],
        id="weekly-over-new-year",
    ),
    pytest.param(
        # 14 and 28 December 2026 and 11 January 2027 are ISO weeks 51, 53 and 2: counting from
        # the anchor keeps every other week where ISO week parity would not.
        {
            "repeat": "biweekly",
            "weekdays": ["mon"],
            "anchor_date": "2026-12-14",
            "times": ["10:00"],
        },
        "Europe/Berlin",
        "2026-12-01T00:00+00:00",
        [
            "2026-12-14T10:00+01:00",
            "2026-12-28T10:00+01:00",
            "2027-01-11T10:00+01:00",
            "2027-01-25T10:00+01:00",
        ],
        id="every-2-weeks-over-a-53-week-year",
    ),
    pytest.param(
        {
            "repeat": "biweekly",
            "weekdays": ["tue"],
            "anchor_date": "2028-02-15",
            "times": ["10:00"],
        },
        "Europe/Berlin",
        "2028-02-16T00:00+00:00",
        ["2028-02-29T10:00+01:00", "2028-03-14T10:00+01:00"],
        id="every-2-weeks-lands-on-a-leap-day",
    ),
    pytest.param(
        {"repeat": "biweekly", "weekdays": ["wed"], "start_date": "2026-01-07", "times": ["10:00"]},
        "Europe/Berlin",
        "2026-01-01T00:00+00:00",
        ["2026-01-07T10:00+01:00", "2026-01-21T10:00+01:00"],
        id="every-2-weeks-anchored-at-the-start-date",
    ),
    pytest.param(
        {"repeat": "monthly", "week": "last", "weekday": "fri", "times": ["16:00"]},
        "Europe/Berlin",
        "2026-01-01T00:00+00:00",
        ["2026-01-30T16:00+01:00", "2026-02-27T16:00+01:00", "2026-03-27T16:00+01:00"],
        id="monthly-last-friday",
    ),
    pytest.param(
        {"repeat": "monthly", "week": "last", "weekday": "tue", "times": ["10:00"]},
        "Europe/Berlin",
        "2028-02-01T00:00+00:00",
        ["2028-02-29T10:00+01:00", "2028-03-28T10:00+02:00"],
        id="monthly-last-tuesday-is-a-leap-day",
    ),
    pytest.param(
        {"repeat": "monthly", "week": 1, "weekday": "mon", "times": ["10:00"]},
        "Europe/Berlin",
        "2026-12-15T00:00+00:00",
        ["2027-01-04T10:00+01:00", "2027-02-01T10:00+01:00"],
        id="monthly-first-monday-over-new-year",
    ),
    pytest.param(
        {
            "repeat": "daily",
            "times": ["10:00"],
            "start_date": "2026-06-10",
            "end_date": "2026-06-11",
        },
        "Europe/Berlin",
        "2026-06-01T00:00+00:00",
        ["2026-06-10T10:00+02:00", "2026-06-11T10:00+02:00"],
        id="start-and-end-dates-inclusive",
    ),
    pytest.param(
        {"repeat": "daily", "times": ["10:00"], "end_date": "2026-05-31"},
        "Europe/Berlin",
        "2026-06-01T00:00+00:00",
        [],
        id="after-the-end-date-nothing",
    ),
    pytest.param(
        {"repeat": "daily", "times": ["10:00"]},
        "Pacific/Kiritimati",
        "2025-12-31T00:00+00:00",
        ["2026-01-01T10:00+14:00", "2026-01-02T10:00+14:00"],
        id="kiritimati-new-year-before-utc",
    ),
]


@pytest.mark.parametrize(("rules", "zone", "now", "expected"), RECURRING)
def test_recurring_sessions(
    rules: dict[str, Any], zone: str, now: str, expected: list[str]
) -> None:
    slots = upcoming_sessions(make(timezone=zone, **rules), at(now), count=len(expected) or 3)
    assert starts(slots) == [at(iso) for iso in expected]
    assert all(slot.kind is SlotKind.SCHEDULED and slot.starts_at.tzinfo is UTC for slot in slots)


def test_the_day_after_a_gap_is_24_hours_later_in_elapsed_time() -> None:
    first, second = upcoming_sessions(
        make(repeat="daily", times=["02:30"]), at("2026-03-27T12:00+00:00"), count=2
    )
    assert second.starts_at - first.starts_at == timedelta(hours=24)
    assert (second.wall.time(), second.local.time()) == (time(2, 30), time(3, 30))


NTH_WEEKDAY = [
    # year, month, weekday (0 = Monday), week (-1 = last), expected
    (2026, 1, 4, -1, date(2026, 1, 30)),
    (2026, 7, 4, -1, date(2026, 7, 31)),  # the month ends on that weekday
    (2026, 12, 3, -1, date(2026, 12, 31)),
    (2028, 2, 1, -1, date(2028, 2, 29)),
    (2027, 2, 1, -1, date(2027, 2, 23)),
    (2026, 6, 0, 1, date(2026, 6, 1)),  # the month starts on that weekday
    (2026, 6, 2, 3, date(2026, 6, 17)),
    (2026, 3, 6, 4, date(2026, 3, 22)),
]


@pytest.mark.parametrize(("year", "month", "weekday", "week", "expected"), NTH_WEEKDAY)
def test_nth_weekday(year: int, month: int, weekday: int, week: int, expected: date) -> None:
    assert nth_weekday(year, month, weekday, week) == expected


def test_the_upcoming_count_defaults_to_the_rules() -> None:
    schedule = make(repeat="daily", times=["10:00", "15:00"], upcoming_count=5)
    assert len(upcoming_sessions(schedule, at("2026-06-01T00:00+00:00"))) == 5
    assert upcoming_sessions(schedule, at("2026-06-01T00:00+00:00"), count=0) == []


# --- Blackout dates, attendee-local mode, cut-off -----------------------------------------------


def test_a_blackout_date_removes_exactly_one_local_day() -> None:
    schedule = make(repeat="daily", times=["10:00"], blackout=["2026-06-02"])
    slots = upcoming_sessions(schedule, at("2026-06-01T00:00+00:00"), count=3)
    assert [slot.wall.date() for slot in slots] == [
        date(2026, 6, 1),
        date(2026, 6, 3),
        date(2026, 6, 4),
    ]


def test_a_blackout_date_is_a_local_date_not_a_utc_one() -> None:
    # 08:00 in Tokyo is 23:00 UTC the day before: the blackout follows Tokyo's calendar.
    schedule = make(timezone="Asia/Tokyo", repeat="daily", times=["08:00"], blackout=["2026-06-02"])
    slots = upcoming_sessions(schedule, at("2026-05-31T00:00+00:00"), count=2)
    assert starts(slots) == [at("2026-05-31T23:00+00:00"), at("2026-06-02T23:00+00:00")]


def test_a_blackout_on_kiritimati_new_year_removes_a_utc_new_year_eve() -> None:
    schedule = make(
        timezone="Pacific/Kiritimati", repeat="daily", times=["10:00"], blackout=["2026-01-01"]
    )
    [slot] = upcoming_sessions(schedule, at("2025-12-31T00:00+00:00"), count=1)
    assert slot.starts_at == at("2026-01-01T20:00+00:00")


ATTENDEE_LOCAL = [
    (True, TOKYO, "2026-06-15T01:00+00:00", "Asia/Tokyo"),
    (True, NEW_YORK, "2026-06-15T14:00+00:00", "America/New_York"),
    (True, None, "2026-06-15T08:00+00:00", "Europe/Berlin"),
    (False, TOKYO, "2026-06-15T08:00+00:00", "Europe/Berlin"),
]


@pytest.mark.parametrize(("attendee_local", "viewer", "expected", "zone_used"), ATTENDEE_LOCAL)
def test_attendee_local_reads_the_wall_time_in_the_viewers_zone(
    attendee_local: bool, viewer: ZoneInfo | None, expected: str, zone_used: str
) -> None:
    schedule = make(attendee_local=attendee_local, repeat="daily", times=["10:00"])
    [slot] = upcoming_sessions(schedule, at("2026-06-14T16:00+00:00"), count=1, viewer_zone=viewer)
    assert slot.starts_at == at(expected)
    assert slot.zone.key == zone_used
    assert slot.local.time() == time(10, 0)


CUTOFF = [
    # cut-off minutes, minutes from now to each session, the ones offered
    (5, [3, 6], [6]),
    (0, [3, 6], [3, 6]),
    (5, [5, 6], [6]),  # registration closes exactly at start minus cut-off
    (0, [0, 1], [1]),  # a session that has started is never offered
    (60, [30, 59, 61], [61]),
]


@pytest.mark.parametrize(("cutoff", "minutes", "offered"), CUTOFF)
def test_registration_cutoff(cutoff: int, minutes: list[int], offered: list[int]) -> None:
    now = at("2026-06-01T09:00+00:00")
    walls = [
        (now + timedelta(minutes=m)).astimezone(BERLIN).strftime("%Y-%m-%dT%H:%M") for m in minutes
    ]
    slots = upcoming_sessions(make("specific", dates=walls, cutoff_minutes=cutoff), now, count=9)
    assert starts(slots) == [now + timedelta(minutes=m) for m in offered]


# --- Just in time ------------------------------------------------------------------------------

JIT = [
    # zone, now (with offset), grid, lead, hours, blackout, expected local start
    ("Europe/Berlin", "2026-06-01T10:07+02:00", 15, 5, None, [], "2026-06-01T10:15+02:00"),
    ("Europe/Berlin", "2026-06-01T10:10+02:00", 15, 5, None, [], "2026-06-01T10:15+02:00"),
    ("Europe/Berlin", "2026-06-01T10:11+02:00", 15, 5, None, [], "2026-06-01T10:30+02:00"),
    ("Europe/Berlin", "2026-06-01T10:07+02:00", 30, 5, None, [], "2026-06-01T10:30+02:00"),
    ("Europe/Berlin", "2026-06-01T10:07+02:00", 60, 5, None, [], "2026-06-01T11:00+02:00"),
    ("Europe/Berlin", "2026-06-01T10:14+02:00", 15, 0, None, [], "2026-06-01T10:15+02:00"),
    ("Europe/Berlin", "2026-06-01T10:15+02:00", 15, 0, None, [], "2026-06-01T10:30+02:00"),
    ("Europe/Berlin", "2026-06-01T23:58+02:00", 15, 5, None, [], "2026-06-02T00:15+02:00"),
    ("Europe/Berlin", "2026-12-31T23:50+01:00", 15, 5, None, [], "2027-01-01T00:00+01:00"),
    # hours of operation roll over to the next opening, skipping a blackout day
    (
        "Europe/Berlin",
        "2026-06-01T17:58+02:00",
        15,
        5,
        ("09:00", "18:00"),
        [],
        "2026-06-02T09:00+02:00",
    ),
    (
        "Europe/Berlin",
        "2026-06-01T17:40+02:00",
        15,
        5,
        ("09:00", "18:00"),
        [],
        "2026-06-01T17:45+02:00",
    ),
    (
        "Europe/Berlin",
        "2026-06-01T06:00+02:00",
        30,
        5,
        ("09:10", "18:00"),
        [],
        "2026-06-01T09:30+02:00",
    ),
    (
        "Europe/Berlin",
        "2026-06-01T18:30+02:00",
        15,
        5,
        ("09:00", "18:00"),
        ["2026-06-02"],
        "2026-06-03T09:00+02:00",
    ),
    (
        "Europe/Berlin",
        "2026-06-01T03:00+02:00",
        60,
        5,
        ("22:00", "02:00"),
        [],
        "2026-06-01T22:00+02:00",
    ),
    (
        "Europe/Berlin",
        "2026-06-01T00:20+02:00",
        60,
        5,
        ("22:00", "02:00"),
        [],
        "2026-06-01T01:00+02:00",
    ),
    # odd offsets: the grid is the local clock
    ("Asia/Kathmandu", "2026-06-01T10:07+05:45", 30, 5, None, [], "2026-06-01T10:30+05:45"),
    ("Asia/Kolkata", "2026-06-01T10:07+05:30", 60, 5, None, [], "2026-06-01T11:00+05:30"),
    ("Pacific/Chatham", "2026-06-01T10:07+12:45", 15, 5, None, [], "2026-06-01T10:15+12:45"),
    # the spring-forward gap has no grid times; the repeated hour offers both passes
    ("Europe/Berlin", "2026-03-29T01:50+01:00", 15, 5, None, [], "2026-03-29T03:00+02:00"),
    ("Europe/Berlin", "2026-10-25T02:50+02:00", 60, 5, None, [], "2026-10-25T02:00+01:00"),
    ("Europe/Berlin", "2026-10-25T02:40+01:00", 15, 5, None, [], "2026-10-25T02:45+01:00"),
    ("Australia/Lord_Howe", "2026-10-04T01:50+10:30", 15, 5, None, [], "2026-10-04T02:30+11:00"),
]


@pytest.mark.parametrize(("zone", "now", "every", "lead", "hours", "blackout", "expected"), JIT)
def test_just_in_time_slot(
    zone: str,
    now: str,
    every: int,
    lead: int,
    hours: tuple[str, str] | None,
    blackout: list[str],
    expected: str,
) -> None:
    extra: dict[str, Any] = (
        {} if hours is None else {"hours": {"opens": hours[0], "closes": hours[1]}}
    )
    schedule = make(
        timezone=zone,
        blackout=blackout,
        repeat="daily",
        jit={"every_minutes": every, "lead_minutes": lead},
        **extra,
    )
    slot = next_jit_slot(schedule, at(now))
    assert slot is not None
    assert slot.kind is SlotKind.JIT
    assert slot.local.isoformat(timespec="minutes") == expected
    assert slot.starts_at == at(expected)
    assert not slot.shifted


def test_just_in_time_stops_at_the_end_date_and_is_off_by_default() -> None:
    jit = {"every_minutes": 15}
    ended = make(repeat="daily", jit=jit, end_date="2026-05-31")
    assert next_jit_slot(ended, at("2026-06-01T10:00+00:00")) is None
    assert (
        next_jit_slot(make(repeat="daily", times=["10:00"]), at("2026-06-01T10:00+00:00")) is None
    )


def test_just_in_time_in_attendee_local_mode_follows_the_viewer() -> None:
    schedule = make(
        attendee_local=True,
        repeat="daily",
        jit={"every_minutes": 60, "lead_minutes": 5},
        hours={"opens": "09:00", "closes": "18:00"},
    )
    slot = next_jit_slot(schedule, at("2026-06-01T12:00+00:00"), viewer_zone=TOKYO)
    assert slot is not None
    assert slot.local.isoformat(timespec="minutes") == "2026-06-02T09:00+09:00"


def test_upcoming_sessions_merge_the_just_in_time_slot() -> None:
    schedule = make(repeat="daily", times=["10:00", "10:30"], jit={"every_minutes": 30})
    slots = upcoming_sessions(schedule, at("2026-06-01T09:50+02:00"), count=3)
    assert local_iso(slots) == [
        "2026-06-01T10:00+02:00",
        "2026-06-01T10:30+02:00",
        "2026-06-02T10:00+02:00",
    ]
    # 10:00 is both a scheduled time and the grid slot: it is offered once, as scheduled.
    assert [slot.kind for slot in slots] == [SlotKind.SCHEDULED] * 3
    slots = upcoming_sessions(schedule, at("2026-06-01T10:50+02:00"), count=2)
    assert [(slot.kind, slot.wall.time()) for slot in slots] == [
        (SlotKind.JIT, time(11, 0)),
        (SlotKind.SCHEDULED, time(10, 0)),
    ]


def test_just_in_time_only_needs_no_times() -> None:
    schedule = make(repeat="daily", jit={"every_minutes": 15, "lead_minutes": 10})
    assert schedule.times == ()
    assert local_iso(upcoming_sessions(schedule, at("2026-06-01T10:00+02:00"))) == [
        "2026-06-01T10:15+02:00"
    ]


# --- On demand --------------------------------------------------------------------------------

WATCH_NOW = [
    ("on_demand", {}, [], True),
    ("on_demand", {}, ["2026-06-01"], False),
    ("recurring", {"repeat": "daily", "times": ["10:00"], "watch_now": True}, [], True),
    ("recurring", {"repeat": "daily", "times": ["10:00"]}, [], False),
    ("on_demand", {"start_date": "2026-06-02"}, [], False),
]


@pytest.mark.parametrize(("kind", "rules", "blackout", "available"), WATCH_NOW)
def test_watch_now(kind: str, rules: dict[str, Any], blackout: list[str], available: bool) -> None:
    schedule = make(kind, blackout=blackout, **rules)
    assert watch_now_available(schedule, at("2026-06-01T10:00+02:00")) is available


def test_on_demand_has_no_scheduled_sessions() -> None:
    schedule = make("on_demand", jit={"every_minutes": 15})
    assert schedule.kind is Kind.ON_DEMAND
    assert upcoming_sessions(schedule, at("2026-06-01T10:00+00:00")) == []
    assert next_jit_slot(schedule, at("2026-06-01T10:00+00:00")) is None


# --- Replays, capacity, playback, reminders ---------------------------------------------------

START = at("2026-06-01T10:00+00:00")
HOUR = timedelta(hours=1)


@pytest.mark.parametrize(
    ("replay_hours", "expected"),
    [
        (None, None),
        (48, (START + HOUR, START + 49 * HOUR)),
        (7 * 24, (START + HOUR, START + 169 * HOUR)),
    ],
)
def test_replay_window(
    replay_hours: int | None, expected: tuple[datetime, datetime] | None
) -> None:
    schedule = make(repeat="daily", times=["10:00"], replay_hours=replay_hours)
    assert replay_window(START, HOUR, schedule) == expected


def _slots(*hours: int) -> list[Slot]:
    return [
        Slot(START + h * HOUR, (START + h * HOUR).replace(tzinfo=None), ZoneInfo("UTC"))
        for h in hours
    ]


CAPACITY = [
    # counts per slot hour, capacity, hour chosen
    ({}, 100, 0),
    ({0: 99}, 100, 0),
    ({0: 100}, 100, 1),
    ({0: 100, 1: 150}, 100, 2),
    ({0: 100, 1: 100, 2: 100}, 100, None),
    ({0: 10_000}, None, 0),
]


@pytest.mark.parametrize(("counts", "capacity", "chosen"), CAPACITY)
def test_capacity_overflows_to_the_next_session(
    counts: dict[int, int], capacity: int | None, chosen: int | None
) -> None:
    slots = _slots(0, 1, 2)
    registered = {START + h * HOUR: n for h, n in counts.items()}
    picked = choose_session_with_capacity(slots, registered, capacity)
    assert picked == (None if chosen is None else slots[chosen])


PLAYBACK = [
    # seconds from the start, video seconds, state, position, seconds until start
    (-90, 3600, PlaybackState.WAITING, 0.0, 90.0),
    (0, 3600, PlaybackState.LIVE, 0.0, 0.0),
    (754.5, 3600, PlaybackState.LIVE, 754.5, 0.0),
    (3599, 3600, PlaybackState.LIVE, 3599.0, 0.0),
    (3600, 3600, PlaybackState.ENDED, 3600.0, 0.0),
    (86_400, 3600, PlaybackState.ENDED, 3600.0, 0.0),
    (0, 0, PlaybackState.ENDED, 0.0, 0.0),
]


@pytest.mark.parametrize(("offset", "duration", "state", "position", "starts_in"), PLAYBACK)
def test_playback_position(
    offset: float, duration: float, state: PlaybackState, position: float, starts_in: float
) -> None:
    playback = playback_position(
        START, START + timedelta(seconds=offset), timedelta(seconds=duration)
    )
    assert (playback.state, playback.position, playback.starts_in) == (state, position, starts_in)


def test_playback_rejects_naive_times_and_negative_durations() -> None:
    with pytest.raises(ValueError, match="aware"):
        playback_position(START.replace(tzinfo=None), START, HOUR)
    with pytest.raises(ValueError, match="negative"):
        playback_position(START, START, -HOUR)


OFFSETS = [timedelta(days=1), HOUR, timedelta(minutes=5), -2 * HOUR]
REMINDERS = [
    # hours before the start at registration, hours before the start now, reminders planned
    (48, 48, [timedelta(days=1), HOUR, timedelta(minutes=5), -2 * HOUR]),
    (23, 23, [HOUR, timedelta(minutes=5), -2 * HOUR]),
    (1, 1, [timedelta(minutes=5), -2 * HOUR]),  # due exactly now: already passed
    (0.05, 0.05, [-2 * HOUR]),
    (-1, -1, [-2 * HOUR]),  # registered during the session: the replay reminder still goes
    (48, 0.5, [timedelta(minutes=5), -2 * HOUR]),  # re-planned after an edit
]


@pytest.mark.parametrize(("registered", "now", "expected"), REMINDERS)
def test_reminder_plan(registered: float, now: float, expected: list[timedelta]) -> None:
    plan = reminder_plan(
        START, OFFSETS, START - timedelta(hours=now), START - timedelta(hours=registered)
    )
    assert plan == [Reminder(before, START - before) for before in expected]


# --- Parsing ---------------------------------------------------------------------------------

BAD_INPUT = [
    # kind, timezone, rules, blackout, the field named
    ("weekly", "Europe/Berlin", {}, [], "kind"),
    ("recurring", "Mars/Olympus", {"repeat": "daily", "times": ["10:00"]}, [], "timezone"),
    ("recurring", "localtime", {"repeat": "daily", "times": ["10:00"]}, [], "timezone"),
    ("recurring", "../etc/passwd", {"repeat": "daily", "times": ["10:00"]}, [], "timezone"),
    ("recurring", "", {"repeat": "daily", "times": ["10:00"]}, [], "timezone"),
    ("recurring", "Europe/Berlin", {"times": ["10:00"]}, [], "repeat"),
    ("recurring", "Europe/Berlin", {"repeat": "daily"}, [], "times"),
    (
        "recurring",
        "Europe/Berlin",
        {"repeat": "daily", "times": ["10:00", "25:00"]},
        [],
        "times[1]",
    ),
    ("recurring", "Europe/Berlin", {"repeat": "daily", "times": ["9:00"]}, [], "times[0]"),
    ("recurring", "Europe/Berlin", {"repeat": "daily", "times": "10:00"}, [], "times"),
    ("recurring", "Europe/Berlin", {"repeat": "weekly", "times": ["10:00"]}, [], "weekdays"),
    (
        "recurring",
        "Europe/Berlin",
        {"repeat": "weekly", "weekdays": ["mon", "fri", "funday"], "times": ["10:00"]},
        [],
        "weekdays[2]",
    ),
    (
        "recurring",
        "Europe/Berlin",
        {"repeat": "biweekly", "weekdays": ["mon"], "times": ["10:00"]},
        [],
        "anchor_date",
    ),
    (
        "recurring",
        "Europe/Berlin",
        {"repeat": "monthly", "week": 5, "weekday": "fri", "times": ["10:00"]},
        [],
        "week",
    ),
    (
        "recurring",
        "Europe/Berlin",
        {"repeat": "monthly", "week": 1, "times": ["10:00"]},
        [],
        "weekday",
    ),
    ("specific", "Europe/Berlin", {}, [], "dates"),
    ("specific", "Europe/Berlin", {"dates": ["2027-02-29T10:00"]}, [], "dates[0]"),
    ("specific", "Europe/Berlin", {"dates": ["2027-03-01 10:00:00"]}, [], "dates[0]"),
    ("on_demand", "Europe/Berlin", {"start_date": "2027-02-29"}, [], "start_date"),
    ("on_demand", "Europe/Berlin", {"start_date": "20270228"}, [], "start_date"),
    (
        "on_demand",
        "Europe/Berlin",
        {"start_date": "2027-03-02", "end_date": "2027-03-01"},
        [],
        "end_date",
    ),
    ("on_demand", "Europe/Berlin", {}, ["2026-12-24", "2026-13-01"], "blackout_dates[1]"),
    ("on_demand", "Europe/Berlin", {"jit": {"every_minutes": 20}}, [], "jit.every_minutes"),
    ("on_demand", "Europe/Berlin", {"jit": {"every_minutes": 15, "lead": 5}}, [], "jit.lead"),
    ("on_demand", "Europe/Berlin", {"jit": {"lead_minutes": -1}}, [], "jit.lead_minutes"),
    ("on_demand", "Europe/Berlin", {"jit": 15}, [], "jit"),
    (
        "on_demand",
        "Europe/Berlin",
        {"hours": {"opens": "09:00", "closes": "09:00"}},
        [],
        "hours.closes",
    ),
    (
        "on_demand",
        "Europe/Berlin",
        {"hours": {"opens": "9am", "closes": "18:00"}},
        [],
        "hours.opens",
    ),
    (
        "recurring",
        "Europe/Berlin",
        {
            "repeat": "daily",
            "jit": {"every_minutes": 60},
            "hours": {"opens": "19:30", "closes": "19:45"},
        },
        [],
        "hours",
    ),
    ("on_demand", "Europe/Berlin", {"upcoming_count": 0}, [], "upcoming_count"),
    ("on_demand", "Europe/Berlin", {"upcoming_count": True}, [], "upcoming_count"),
    ("on_demand", "Europe/Berlin", {"cutoff_minutes": "5"}, [], "cutoff_minutes"),
    ("on_demand", "Europe/Berlin", {"capacity": 0}, [], "capacity"),
    ("on_demand", "Europe/Berlin", {"replay_hours": 1.5}, [], "replay_hours"),
    ("on_demand", "Europe/Berlin", {"watch_now": "yes"}, [], "watch_now"),
    ("on_demand", "Europe/Berlin", {"timezone": "UTC"}, [], "timezone"),  # not a rules key
    ("on_demand", "Europe/Berlin", {"repeats": "daily"}, [], "repeats"),
]


@pytest.mark.parametrize(("kind", "timezone", "rules", "blackout", "field"), BAD_INPUT)
def test_bad_input_names_the_field(
    kind: str, timezone: str, rules: dict[str, Any], blackout: list[str], field: str
) -> None:
    with pytest.raises(ScheduleRuleError) as caught:
        parse_schedule(rules, kind=kind, timezone=timezone, blackout_dates=blackout)
    assert caught.value.field == field
    assert str(caught.value).startswith(f"{field}: ")


def test_parsing_a_full_schedule() -> None:
    schedule = parse_schedule(
        {
            "repeat": "weekly",
            "weekdays": ["Tue", "thu", "tue"],
            "times": ["15:00", "09:30", "15:00"],
            "jit": {"every_minutes": 30, "lead_minutes": 10},
            "hours": {"opens": "09:00", "closes": "18:00"},
            "watch_now": True,
            "replay_hours": 72,
            "upcoming_count": 4,
            "cutoff_minutes": 15,
            "capacity": 500,
            "start_date": "2028-02-29",
            "end_date": "2028-12-31",
        },
        kind="recurring",
        timezone="Asia/Kathmandu",
        attendee_local=True,
        blackout_dates=["2028-03-02"],
    )
    assert schedule.zone.key == "Asia/Kathmandu"
    assert schedule.recurrence is not None
    assert schedule.recurrence.weekdays == frozenset({1, 3})
    assert schedule.times == (time(9, 30), time(15))
    assert schedule.jit is not None
    assert (schedule.jit.every, schedule.jit.lead) == (30, timedelta(minutes=10))
    assert (schedule.replay, schedule.cutoff) == (timedelta(hours=72), timedelta(minutes=15))
    assert (schedule.upcoming_count, schedule.capacity) == (4, 500)
    assert schedule.start_date == date(2028, 2, 29)
    assert schedule.blackout_dates == frozenset({date(2028, 3, 2)})


def test_parse_zone_for_a_viewer() -> None:
    assert parse_zone("Asia/Kathmandu", "viewer_zone").key == "Asia/Kathmandu"
    with pytest.raises(ScheduleRuleError, match=r"^viewer_zone: "):
        parse_zone("Not/AZone", "viewer_zone")


def test_naive_now_is_rejected() -> None:
    with pytest.raises(ValueError, match="aware"):
        upcoming_sessions(make(repeat="daily", times=["10:00"]), datetime(2026, 6, 1, 10))


# --- Properties over random schedules (seeded, so every failure can be replayed) ----------------

ZONES = [
    "Europe/Berlin",
    "America/New_York",
    "Australia/Lord_Howe",
    "Pacific/Chatham",
    "Asia/Kathmandu",
    "Asia/Kolkata",
    "Pacific/Kiritimati",
    "America/Santiago",
    "UTC",
]
REPEATS = ["daily", "weekdays", "weekly", "biweekly", "monthly"]
DST_PRONE = ["00:00", "00:30", "01:30", "02:00", "02:15", "02:30", "02:45", "03:00", "03:15"]


def _random_rules(rnd: random.Random) -> dict[str, Any]:
    # Times lean on the hours where zones change offset, so gaps and repeated hours come up.
    times = [
        rnd.choice(DST_PRONE) if rnd.random() < 0.6 else f"{rnd.randrange(24):02d}:{m:02d}"
        for m in rnd.sample(range(60), 3)
    ]
    rules: dict[str, Any] = {
        "repeat": rnd.choice(["daily", *REPEATS]),
        "times": times[: rnd.randint(1, 3)],
        "cutoff_minutes": rnd.choice([0, 5, 60, 24 * 60]),
        "weekdays": rnd.sample(
            ["mon", "tue", "wed", "thu", "fri", "sat", "sun"], rnd.randint(1, 3)
        ),
        "anchor_date": str(date(2026, 1, 1) + timedelta(days=rnd.randrange(700))),
        "week": rnd.choice([1, 2, 3, 4, "last"]),
        "weekday": rnd.choice(["mon", "fri", "sun"]),
    }
    if rnd.random() < 0.3:
        rules["jit"] = {
            "every_minutes": rnd.choice([15, 30, 60]),
            "lead_minutes": rnd.randrange(30),
        }
    return rules


def _offset_changes(zone: ZoneInfo, year: int) -> list[datetime]:
    noons = [datetime(year, 1, 1, 12, tzinfo=zone) + timedelta(days=d) for d in range(366)]
    return [b for a, b in pairwise(noons) if a.utcoffset() != b.utcoffset()]


def _random_now(rnd: random.Random, zone: ZoneInfo = BERLIN) -> datetime:
    # Dates between 2026 and 2028: often just before a change of offset, else leaning on
    # new year and February.
    year = rnd.choice([2026, 2027, 2028])
    changes = _offset_changes(zone, year)
    if changes and rnd.random() < 0.5:
        before = timedelta(minutes=rnd.randrange(3 * 24 * 60))
        return (rnd.choice(changes) - before).astimezone(UTC)
    month = rnd.choice([1, 2, 12, rnd.randint(1, 12)])
    return datetime(year, month, 1, tzinfo=UTC) + timedelta(minutes=rnd.randrange(31 * 24 * 60))


def _exists(wall: datetime, zone: ZoneInfo) -> bool:
    return any(
        wall.replace(tzinfo=zone, fold=fold).astimezone(UTC).astimezone(zone).replace(tzinfo=None)
        == wall
        for fold in (0, 1)
    )


def test_upcoming_sessions_properties() -> None:
    rnd = random.Random(4)  # noqa: S311
    for case in range(600):
        zone_name = rnd.choice(ZONES)
        rules = _random_rules(rnd)
        now = _random_now(rnd, ZoneInfo(zone_name))
        blackout = [
            str(now.date() + timedelta(days=rnd.randrange(-1, 20))) for _ in range(rnd.randrange(4))
        ]
        schedule = make(timezone=zone_name, blackout=blackout, **rules)
        count = rnd.randint(1, 8)
        slots = upcoming_sessions(schedule, now, count=count)
        label = f"case {case}: {zone_name} {rules} now={now} blackout={blackout}"
        assert 1 <= len(slots) <= count, label
        instants = starts(slots)
        assert instants == sorted(set(instants)), label
        for slot in slots:
            assert slot.starts_at.tzinfo is UTC, label
            assert slot.starts_at > now + schedule.cutoff, label
            assert slot.wall.date() not in schedule.blackout_dates, label
            assert slot.local.date() not in schedule.blackout_dates or slot.shifted, label
            if slot.kind is SlotKind.JIT:
                assert slot.starts_at >= now + timedelta(minutes=rules["jit"]["lead_minutes"])
                assert not slot.shifted, label
                continue
            assert slot.wall.time() in schedule.times, label
            if slot.shifted:
                # Only a wall time that does not exist moves, and only forward.
                assert not _exists(slot.wall, slot.zone), label
                assert slot.local.replace(tzinfo=None) > slot.wall, label
            else:
                assert slot.local.replace(tzinfo=None) == slot.wall, label
                # In a repeated hour the first pass is taken.
                assert slot.local.fold == 0 or not _exists(slot.wall, slot.zone), label


def _open_at(window: tuple[int, ...] | None, minute: int) -> bool:
    if window is None:
        return True
    opens, closes = window
    return opens <= minute < closes if opens < closes else minute >= opens or minute < closes


def test_just_in_time_properties() -> None:
    rnd = random.Random(44)  # noqa: S311
    for case in range(200):
        zone = ZoneInfo(rnd.choice(ZONES))
        every, lead = rnd.choice([15, 30, 60]), rnd.randrange(0, 30)
        hours = None
        window = None
        if rnd.random() < 0.5:
            opens, closes = window = tuple(rnd.sample(range(0, 24 * 60, 15), 2))
            hours = {"opens": f"{opens // 60:02d}:{opens % 60:02d}"}
            hours["closes"] = f"{closes // 60:02d}:{closes % 60:02d}"
        jit = {"every_minutes": every, "lead_minutes": lead}
        rules: dict[str, Any] = {"repeat": "daily", "jit": jit}
        if hours is not None:
            rules["hours"] = hours
        if not any(_open_at(window, minute) for minute in range(0, 24 * 60, every)):
            # Hours that no grid time fits are refused when parsed.
            with pytest.raises(ScheduleRuleError, match=r"^hours: "):
                make(timezone=str(zone), **rules)
            continue
        schedule = make(timezone=str(zone), **rules)
        now = _random_now(rnd, zone)
        slot = next_jit_slot(schedule, now)
        label = f"case {case}: {zone} {rules} now={now}"
        assert slot is not None, label
        earliest = now + timedelta(minutes=lead)
        assert slot.starts_at >= earliest, label
        assert slot.local.replace(tzinfo=None) == slot.wall, label
        assert (slot.wall.minute + 60 * slot.wall.hour) % every == 0, label
        assert schedule.hours is None or schedule.hours.contains(slot.wall.time()), label
        # No earlier whole minute in elapsed time would have been a valid grid slot.
        probe = earliest.replace(second=0, microsecond=0)
        if probe < earliest:
            probe += timedelta(minutes=1)
        while probe < slot.starts_at:
            local = probe.astimezone(zone)
            on_grid = (local.minute + 60 * local.hour) % every == 0
            in_hours = schedule.hours is None or schedule.hours.contains(local.time())
            assert not (on_grid and in_hours), f"{label}: missed {local}"
            probe += timedelta(minutes=1)


# --- slot_exists: whether an instant is a start the rules define -------------------------------

WEEKLY_TUE_THU = {"repeat": "weekly", "weekdays": ["tue", "thu"], "times": ["10:00", "02:30"]}
EXISTS_CASES: list[tuple[str, dict[str, Any], str, bool]] = [
    # label, make() arguments, instant, exists
    ("weekly time", WEEKLY_TUE_THU, "2026-03-03T10:00+01:00", True),
    ("weekly other weekday", WEEKLY_TUE_THU, "2026-03-04T10:00+01:00", False),
    ("weekly other time", WEEKLY_TUE_THU, "2026-03-03T10:15+01:00", False),
    ("weekly one second off", WEEKLY_TUE_THU, "2026-03-03T10:00:01+01:00", False),
    ("same instant in UTC", WEEKLY_TUE_THU, "2026-03-03T09:00+00:00", True),
    ("a past start still exists", WEEKLY_TUE_THU, "2001-01-02T10:00+01:00", True),
    (
        "gap-shifted 02:30 runs at 03:30",
        {"repeat": "daily", "times": ["02:30"]},
        "2026-03-29T03:30+02:00",
        True,
    ),
    (
        "a gap time is not 02:30 read with the summer offset",
        {"repeat": "daily", "times": ["02:30"]},
        "2026-03-29T02:30+02:00",
        False,
    ),
    (
        "repeated hour: first pass",
        {"repeat": "daily", "times": ["02:30"]},
        "2026-10-25T02:30+02:00",
        True,
    ),
    (
        "repeated hour: second pass is not a start",
        {"repeat": "daily", "times": ["02:30"]},
        "2026-10-25T02:30+01:00",
        False,
    ),
    (
        "blackout date",
        {"repeat": "daily", "times": ["10:00"], "blackout": ["2026-05-01"]},
        "2026-05-01T10:00+02:00",
        False,
    ),
    (
        "day before the blackout",
        {"repeat": "daily", "times": ["10:00"], "blackout": ["2026-05-01"]},
        "2026-04-30T10:00+02:00",
        True,
    ),
    (
        "before start_date",
        {"repeat": "daily", "times": ["10:00"], "start_date": "2026-05-02"},
        "2026-05-01T10:00+02:00",
        False,
    ),
    (
        "after end_date",
        {"repeat": "daily", "times": ["10:00"], "end_date": "2026-05-01"},
        "2026-05-02T10:00+02:00",
        False,
    ),
    (
        "on end_date (inclusive)",
        {"repeat": "daily", "times": ["10:00"], "end_date": "2026-05-01"},
        "2026-05-01T10:00+02:00",
        True,
    ),
    (
        "monthly last friday",
        {"repeat": "monthly", "week": "last", "weekday": "fri", "times": ["18:00"]},
        "2026-01-30T18:00+01:00",
        True,
    ),
    (
        "monthly: a friday that is not the last",
        {"repeat": "monthly", "week": "last", "weekday": "fri", "times": ["18:00"]},
        "2026-01-23T18:00+01:00",
        False,
    ),
    (
        "biweekly: the anchor week",
        {
            "repeat": "biweekly",
            "weekdays": ["mon"],
            "anchor_date": "2026-01-07",
            "times": ["09:00"],
        },
        "2026-01-05T09:00+01:00",
        True,
    ),
    (
        "biweekly: the week in between",
        {
            "repeat": "biweekly",
            "weekdays": ["mon"],
            "anchor_date": "2026-01-07",
            "times": ["09:00"],
        },
        "2026-01-12T09:00+01:00",
        False,
    ),
    (
        "specific date",
        {"kind": "specific", "dates": ["2028-02-29T10:00"]},
        "2028-02-29T10:00+01:00",
        True,
    ),
    (
        "specific: another day at that time",
        {"kind": "specific", "dates": ["2028-02-29T10:00"]},
        "2028-03-01T10:00+01:00",
        False,
    ),
    (
        "specific on a blackout date",
        {"kind": "specific", "dates": ["2028-02-29T10:00"], "blackout": ["2028-02-29"]},
        "2028-02-29T10:00+01:00",
        False,
    ),
    (
        "just-in-time grid",
        {"repeat": "daily", "jit": {"every_minutes": 15}},
        "2026-06-01T13:45+02:00",
        True,
    ),
    (
        "just-in-time: off the grid",
        {"repeat": "daily", "jit": {"every_minutes": 15}},
        "2026-06-01T13:50+02:00",
        False,
    ),
    (
        "just-in-time: outside hours",
        {
            "repeat": "daily",
            "jit": {"every_minutes": 30},
            "hours": {"opens": "09:00", "closes": "17:00"},
        },
        "2026-06-01T17:00+02:00",
        False,
    ),
    (
        "just-in-time: overnight hours",
        {
            "repeat": "daily",
            "jit": {"every_minutes": 60},
            "hours": {"opens": "22:00", "closes": "02:00"},
        },
        "2026-06-01T01:00+02:00",
        True,
    ),
    (
        "just-in-time: both passes of a repeated hour",
        {"repeat": "daily", "jit": {"every_minutes": 30}},
        "2026-10-25T02:30+01:00",
        True,
    ),
    (
        "just-in-time next to specific dates",
        {"kind": "specific", "dates": ["2028-02-29T10:00"], "jit": {"every_minutes": 60}},
        "2026-06-01T08:00+02:00",
        True,
    ),
    (
        "on demand has no starts",
        {"kind": "on_demand", "watch_now": True},
        "2026-06-01T10:00+02:00",
        False,
    ),
    (
        "Kathmandu wall time",
        {"timezone": "Asia/Kathmandu", "repeat": "daily", "times": ["10:00"]},
        "2026-06-01T04:15+00:00",
        True,
    ),
]


@pytest.mark.parametrize(
    ("arguments", "instant", "exists"),
    [case[1:] for case in EXISTS_CASES],
    ids=[case[0] for case in EXISTS_CASES],
)
def test_slot_exists(arguments: dict[str, Any], instant: str, exists: bool) -> None:
    arguments = dict(arguments)
    kind = arguments.pop("kind", "recurring")
    timezone = arguments.pop("timezone", "Europe/Berlin")
    blackout = arguments.pop("blackout", ())
    rules = make(kind, timezone, blackout=blackout, **arguments)
    assert slot_exists(rules, at(instant)) is exists


def test_slot_exists_agrees_with_every_offered_start() -> None:
    rules = make(
        repeat="weekly",
        weekdays=["mon", "sun"],
        times=["00:30", "02:30", "23:45"],
        jit={"every_minutes": 30, "lead_minutes": 0},
        hours={"opens": "08:00", "closes": "09:00"},
        blackout=["2026-04-05"],
    )
    now = at("2026-03-01T00:00+01:00")
    offered = upcoming_sessions(rules, now, count=200)
    assert len(offered) == 200
    assert all(slot_exists(rules, slot.starts_at) for slot in offered)
    # Every whole quarter hour between the offered starts that is not one of them does not exist
    # (just-in-time grid times are offered one at a time, so they are left out here).
    offered_starts = set(starts(offered))
    probe = now
    while probe < offered[-1].starts_at:
        local = probe.astimezone(BERLIN)
        if probe not in offered_starts and not (8 <= local.hour < 9 and local.minute % 30 == 0):
            assert not slot_exists(rules, probe), local
        probe += timedelta(minutes=15)


def test_slot_exists_in_the_viewers_zone_for_attendee_local() -> None:
    rules = make(attendee_local=True, repeat="daily", times=["10:00"])
    assert slot_exists(rules, at("2026-06-01T10:00+09:00"), viewer_zone=TOKYO)
    assert not slot_exists(rules, at("2026-06-01T10:00+02:00"), viewer_zone=TOKYO)
    assert slot_exists(rules, at("2026-06-01T10:00+02:00"))  # no viewer: the webinar's zone
    fixed = make(repeat="daily", times=["10:00"])
    assert slot_exists(fixed, at("2026-06-01T10:00+02:00"), viewer_zone=TOKYO)


def test_slot_exists_wants_an_instant() -> None:
    with pytest.raises(ValueError, match="aware"):
        slot_exists(make(repeat="daily", times=["10:00"]), datetime(2026, 6, 1, 10))


def _next_jit_by_brute_force(rules: ScheduleRules, now: datetime) -> Slot | None:
    """Every grid slot of five local days around `now`, the earliest offered one."""
    assert rules.jit is not None
    zone = rules.zone_for(None)
    earliest = now + rules.jit.lead
    first = earliest.astimezone(zone).date() - timedelta(days=2)
    candidates = [
        slot
        for offset in range(5)
        for slot in _jit_day(rules, zone, first + timedelta(days=offset))
        if slot.starts_at >= earliest and slot.starts_at > now + rules.cutoff
    ]
    return min(candidates, key=lambda slot: slot.starts_at, default=None)


@pytest.mark.parametrize(
    ("zone", "around"),
    [
        ("Europe/Berlin", "2026-03-29T01:00+00:00"),  # spring forward
        ("Europe/Berlin", "2026-10-25T00:00+00:00"),  # fall back
        ("America/New_York", "2026-11-01T05:00+00:00"),
        ("Australia/Lord_Howe", "2026-04-04T14:30+00:00"),  # a half-hour fall back
        ("Asia/Kathmandu", "2026-06-01T18:00+00:00"),
        ("Pacific/Kiritimati", "2026-12-31T09:00+00:00"),
    ],
)
@pytest.mark.parametrize("every", [15, 30, 60])
def test_the_fast_just_in_time_search_matches_checking_every_slot(
    zone: str, around: str, every: int
) -> None:
    rules = make(
        timezone=zone,
        repeat="daily",
        jit={"every_minutes": every, "lead_minutes": 5},
        hours={"opens": "01:00", "closes": "23:00"},
    )
    start = at(around) - timedelta(hours=4)
    for step in range(0, 8 * 60, 7):
        now = start + timedelta(minutes=step)
        assert next_jit_slot(rules, now) == _next_jit_by_brute_force(rules, now), now


@pytest.mark.parametrize("backwards", [False, True])
def test_remembered_upcoming_sessions_match_computing_them_afresh(backwards: bool) -> None:
    rules = make(
        timezone="America/New_York",
        repeat="weekdays",
        times=["10:00", "16:00"],
        jit={"every_minutes": 15, "lead_minutes": 5},
        hours={"opens": "08:00", "closes": "20:00"},
        cutoff_minutes=30,
        upcoming_count=4,
    )
    start = at("2026-11-01T04:00+00:00")  # the night New York falls back
    steps = [start + timedelta(minutes=7 * n, seconds=n % 5) for n in range(400)]
    for now in reversed(steps) if backwards else steps:
        for zone in (None, ZoneInfo("Asia/Kathmandu")):
            assert upcoming_sessions(rules, now, viewer_zone=zone) == _upcoming(
                rules, now, rules.upcoming_count, zone
            ), now
