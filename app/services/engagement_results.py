"""What the engagement queries answer: one class per dashboard block, each with its FORMULAS.

The FORMULAS say in plain English how each figure is computed; the pages show them next to the
figures, so a customer-success manager can check any number by hand.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from app.services.attendance_rows import STAYED_SHARE


def share(part: int | float | None, whole: int | float | None) -> float | None:
    """The share part / whole, or None when there is nothing to divide by."""
    if part is None or whole is None or whole == 0:
        return None
    return part / whole


def watch_share(watched_seconds: float, duration_seconds: float) -> float:
    """Watch time as a share of the video's length, at most 1."""
    if duration_seconds <= 0:
        return 0.0
    return min(watched_seconds / duration_seconds, 1.0)


def percentile(values: Sequence[float], fraction: float) -> float | None:
    """The nearest-rank percentile: the smallest value at least `fraction` of values reach."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(math.ceil(fraction * len(ordered)), 1) - 1]


# --- results ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FunnelStage:
    """One step of the funnel, with its shares."""

    key: str
    label: str
    count: int | None
    share_of_previous: float | None
    share_of_visitors: float | None


@dataclass(frozen=True)
class Funnel:
    """Visitors, registered, attended, stayed to the end, converted."""

    visitors: int | None
    registered: int
    attended: int
    stayed_to_end: int
    converted: int

    FORMULAS: ClassVar[dict[str, str]] = {
        "visitors": "Visitors = different people who opened the landing page on the chosen days "
        "(each browser once, by a random cookie; bots and link previews are not counted). "
        "Visits belong to the webinar, so none are shown for a single session.",
        "registered": "Registered = registrations for the chosen sessions.",
        "attended": "Attended = registrants who joined the room at least once.",
        "stayed_to_end": f"Stayed to the end = attendees whose player reached "
        f"{STAYED_SHARE:.0%} of the video's length.",
        "converted": "Converted = attendees who clicked an offer (whether or not they stayed "
        "to the end, so it can be more than the stage before).",
        "share_of_previous": "Share of the previous stage = this stage / the stage before.",
        "share_of_visitors": "Share of visitors = this stage / visitors.",
    }

    @property
    def stages(self) -> list[FunnelStage]:
        """The five stages in order, each with its shares."""
        steps: list[tuple[str, str, int | None]] = [
            ("visitors", "Visitors", self.visitors),
            ("registered", "Registered", self.registered),
            ("attended", "Attended", self.attended),
            ("stayed_to_end", "Stayed to the end", self.stayed_to_end),
            ("converted", "Converted", self.converted),
        ]
        answer = []
        previous: int | None = None
        for index, (key, label, count) in enumerate(steps):
            answer.append(
                FunnelStage(
                    key=key,
                    label=label,
                    count=count,
                    share_of_previous=None if index == 0 else share(count, previous),
                    share_of_visitors=share(count, self.visitors),
                )
            )
            previous = count
        return answer


@dataclass(frozen=True)
class AttendanceSummary:
    """How many came and how long they watched."""

    registered: int
    attended: int
    attendance_rate: float | None
    average_watch_seconds: float | None
    median_watch_seconds: float | None
    average_watch_share: float | None

    FORMULAS: ClassVar[dict[str, str]] = {
        "attendance_rate": "Attendance rate = attended / registered.",
        "average_watch_seconds": "Average watch time = the attendees' watch time added up / "
        "attended. Watch time adds the time between two heartbeats (players send one every "
        "20 s) while the video played, at most 40 s each.",
        "median_watch_seconds": "Median watch time = the middle attendee's watch time (the "
        "mean of the two middle ones when their number is even).",
        "average_watch_share": "Average watch share = the average, over attendees, of their "
        "watch time / the video's length (each at most 100%).",
    }


@dataclass(frozen=True)
class Marker:
    """An interaction on the drop-off curve."""

    seconds: float
    kind: str
    title: str
    interaction_id: int


@dataclass(frozen=True)
class DropOff:
    """How many attendees watched each minute of the video."""

    duration_seconds: float
    attended: int
    viewers: list[int]
    markers: list[Marker]

    FORMULAS: ClassVar[dict[str, str]] = {
        "viewers": "Viewers of a minute = attendees whose player played some part of that "
        "minute of the video (reported by its heartbeats, every 20 s).",
        "markers": "Markers = the moments the interactions open.",
    }


@dataclass(frozen=True)
class InteractionSummary:
    """The results of one interaction in the chosen sessions."""

    interaction_id: int
    kind: str
    title: str
    opens_at: float
    session_id: int | None  # pushed into this session only; None: every session
    responses: int
    results: dict[str, Any]  # the shape of app.services.interactions.tally
    clicked: int | None  # offers, links and downloads: people who opened them
    click_through: float | None

    FORMULAS: ClassVar[dict[str, str]] = {
        "responses": "Responses = answers given (one per attendee).",
        "poll": "Poll: each option's count of answers (a multiple-choice answer counts for "
        "each option chosen).",
        "quiz": "Quiz score = answers with exactly the correct options / answers.",
        "nps": "NPS score = (promoters, 9-10, - detractors, 0-6) / answers x 100, rounded.",
        "rating": "Average rating = the sum of ratings / answers, to one decimal.",
        "clicked": "Clicked = people who opened the offer, link or download, each counted "
        "once (a download fetched without joining the room counts too).",
        "click_through": "Click-through = clicked / attended.",
    }


@dataclass(frozen=True)
class ChatSummary:
    """Chat volume and how quickly the team answered."""

    attendee_messages: int
    questions: int
    team_replies: int
    answered: int
    median_response_seconds: float | None
    p90_response_seconds: float | None
    by_minute: list[int]

    FORMULAS: ClassVar[dict[str, str]] = {
        "attendee_messages": "Attendee messages = chat messages written by attendees "
        "(questions to the presenter included, automatic replies not).",
        "questions": "Questions = attendee messages containing a question mark.",
        "team_replies": "Team replies = messages written by the team.",
        "answered": "Answered = attendee messages followed by a team message in the same "
        "conversation (the attendee's private thread, or a public reply to their message).",
        "median_response_seconds": "Median response time = the median, over answered "
        "messages, of the time from the message to the first team message after it.",
        "p90_response_seconds": "90th percentile response time = the time within which 90% "
        "of answered messages got their first team message.",
        "by_minute": "Messages by minute = attendee messages by the minute of the video they "
        "were written at.",
    }


@dataclass(frozen=True)
class WebinarRow:
    """One webinar in the overview."""

    webinar_id: int
    title: str
    status: str
    sessions: int
    visitors: int
    registered: int
    attended: int
    attendance_rate: float | None
    average_watch_share: float | None
    conversions: int
    conversion_rate: float | None

    FORMULAS: ClassVar[dict[str, str]] = {
        "sessions": "Sessions = sessions starting on the chosen days (a session exists once "
        "someone registered for it).",
        "visitors": "Visitors = different people who opened the landing page on the chosen days.",
        "registered": "Registered = registrations for those sessions.",
        "attended": "Attended = registrants who joined the room at least once.",
        "attendance_rate": "Attendance rate = attended / registered.",
        "average_watch_share": "Average watch share = the average, over attendees, of their "
        "watch time / the video's length (each at most 100%).",
        "conversions": "Conversions = attendees who clicked an offer.",
        "conversion_rate": "Conversion rate = conversions / attended.",
    }
