"""Pure schedule rules: session slots, just-in-time, replays, capacity, playback and reminders.

Nothing here reads the clock, a file (beyond the time zone database) or the database: callers
pass `now` and the parsed rules, and get aware UTC datetimes back.

Time model
    A schedule keeps local wall times (``10:00`` on chosen days, or ``2028-02-29T10:00``) plus
    an IANA zone. In attendee-local mode the same wall times are read in the viewer's zone, so
    10:00 is a different instant for a viewer in Tokyo than for one in New York. Dates that
    rules talk about (blackout dates, the start/end range, "last Friday") are local dates in the
    zone used, and a session belongs to the local date it was planned for.

Daylight saving, and why
    * Spring-forward gap: a wall time that does not exist that day runs shifted forward by the
      length of the gap, 02:30 in Berlin or New York becomes 03:30 (02:15 on Lord Howe, whose
      gap is 30 minutes, becomes 02:45). This is the rule of RFC 5545 for nonexistent local
      times, so the calendar entry we send shows the same moment as the room; it keeps the
      session exactly 24 hours after the previous day's one, and it never folds two different
      times (02:15 and 02:45) onto one instant as "first valid instant, 03:00" would. If two
      wall times still land on one instant (02:00 in a one-hour gap and 03:00), it is offered once.
      `Slot.shifted` tells the editor's preview which sessions moved.
    * Fall-back repeated hour: a wall time that happens twice runs once, at its first
      occurrence (fold=0, the earlier instant, still on summer time).
    * Just-in-time is different by design: its grid is the clock people see, so grid times in
      a gap do not exist and are skipped (03:00 follows 01:45), and in a repeated hour both
      passes of the clock are offered, keeping a session always about to start.
    * Odd offsets need nothing special: the grid and the wall times are local, so Kathmandu
      (+05:45), Kolkata (+05:30), Chatham (+12:45/+13:45) and Kiritimati (+14:00) start on
      their own round local times.
    * 29 February exists only in leap years: a specific date on it in another year is rejected
      when parsed, and "every day" simply has one more day.

Ranges and boundaries
    Cut-off: a session is offered while `now < starts_at - cutoff` (so never once started).
    Just-in-time: the slot starts at least `lead` after now, and honours the cut-off too.
    Hours of operation apply to the just-in-time grid: `opens <= time < closes`, overnight if
    closes is before opens. Start and end dates are inclusive local dates.
"""

from .rules import (
    Hours,
    JustInTime,
    Kind,
    Recurrence,
    Repeat,
    ScheduleRuleError,
    ScheduleRules,
    nth_weekday,
    parse_schedule,
    parse_zone,
)
from .slots import (
    Slot,
    SlotKind,
    next_jit_slot,
    resolve_wall,
    slot_exists,
    upcoming_sessions,
    watch_now_available,
)
from .timing import (
    Playback,
    PlaybackState,
    Reminder,
    choose_session_with_capacity,
    playback_position,
    reminder_plan,
    replay_window,
)

__all__ = [
    "Hours",
    "JustInTime",
    "Kind",
    "Playback",
    "PlaybackState",
    "Recurrence",
    "Reminder",
    "Repeat",
    "ScheduleRuleError",
    "ScheduleRules",
    "Slot",
    "SlotKind",
    "choose_session_with_capacity",
    "next_jit_slot",
    "nth_weekday",
    "parse_schedule",
    "parse_zone",
    "playback_position",
    "reminder_plan",
    "replay_window",
    "resolve_wall",
    "slot_exists",
    "upcoming_sessions",
    "watch_now_available",
]
