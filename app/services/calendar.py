"""Calendar entries for a registration: an iCalendar file and Google/Outlook "add event" links."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from urllib.parse import quote, urlencode, urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from icalendar import Calendar, Event

from app.i18n import gettext
from app.models import Registrant, Video, Webinar, WebinarSession
from app.settings import get_settings

PRODID = "-//Encore//Encore webinars//EN"
DEFAULT_DURATION = timedelta(minutes=60)
ON_DEMAND = "on_demand"
# Calendar apps show a short preview; a whole landing-page description does not belong there.
DESCRIPTION_MAX = 1000
GOOGLE_URL = "https://calendar.google.com/calendar/render"
OUTLOOK_URL = "https://outlook.live.com/calendar/0/action/compose"


def _require_aware(moment: datetime, name: str) -> None:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{name} must be an aware datetime")


def _with_link(description: str, url: str) -> str:
    return description if url in description else f"{description}\n\n{url}".strip()


def _calendar_time(instant: datetime, zone: ZoneInfo) -> datetime:
    """The instant as local time in `zone`, or in UTC when local time cannot name it."""
    local = instant.astimezone(zone)
    # RFC 5545 reads a repeated local time (the fall-back hour) as its first occurrence; an
    # instant in the second pass (a just-in-time session) can only be written in UTC.
    if local.replace(fold=0).astimezone(UTC) != instant.astimezone(UTC):
        return instant.astimezone(UTC)
    return local


def build_ics(
    *,
    uid: str,
    title: str,
    description: str,
    starts_at: datetime,
    duration: timedelta,
    zone: ZoneInfo,
    url: str,
    sequence: int = 0,
    stamp: datetime | None = None,
) -> bytes:
    """An iCalendar file (METHOD:PUBLISH) with one event shown in `zone`, with its VTIMEZONE."""
    _require_aware(starts_at, "starts_at")
    if duration <= timedelta(0):
        raise ValueError("duration must be positive")
    start = starts_at.astimezone(UTC)
    local_start = _calendar_time(start, zone)
    # Added in UTC: adding to a local time moves the wall clock, and a session that spans a
    # DST change would end an hour off.
    local_end = _calendar_time(start + duration, zone)
    calendar = Calendar()
    calendar.add("prodid", PRODID)
    calendar.add("version", "2.0")
    calendar.add("calscale", "GREGORIAN")
    calendar.add("method", "PUBLISH")
    event = Event()
    event.add("uid", uid)
    event.add("dtstamp", (stamp or datetime.now(UTC)).astimezone(UTC))
    event.add("dtstart", local_start)
    event.add("dtend", local_end)
    event.add("sequence", sequence)
    event.add("summary", title)
    event.add("description", _with_link(description, url))
    event.add("location", url)
    event.add("url", url)
    calendar.add_component(event)
    # Transitions of a year either side are enough for any client to place the event, and keep
    # the file small (the default range spans decades).
    calendar.add_missing_timezones(
        first_date=local_start.date() - timedelta(days=366),
        last_date=local_end.date() + timedelta(days=366),
    )
    ical: bytes = calendar.to_ical()
    return ical


def _utc_stamp(moment: datetime) -> str:
    return moment.strftime("%Y%m%dT%H%M%SZ")


def _utc_range(starts_at: datetime, duration: timedelta) -> tuple[datetime, datetime]:
    _require_aware(starts_at, "starts_at")
    start = starts_at.astimezone(UTC)
    return start, start + duration


def google_calendar_url(
    *, title: str, description: str, starts_at: datetime, duration: timedelta, url: str
) -> str:
    """A link that opens Google Calendar's new-event page filled in (times in UTC)."""
    start, end = _utc_range(starts_at, duration)
    params = {
        "action": "TEMPLATE",
        "text": title,
        "dates": f"{_utc_stamp(start)}/{_utc_stamp(end)}",
        "details": _with_link(description, url),
        "location": url,
    }
    return f"{GOOGLE_URL}?{urlencode(params, quote_via=quote)}"


def outlook_calendar_url(
    *, title: str, description: str, starts_at: datetime, duration: timedelta, url: str
) -> str:
    """A link that opens Outlook's new-event page filled in (times in UTC)."""
    start, end = _utc_range(starts_at, duration)

    def iso(moment: datetime) -> str:
        return moment.strftime("%Y-%m-%dT%H:%M:%SZ")

    params = {
        "rru": "addevent",
        "subject": title,
        "startdt": iso(start),
        "enddt": iso(end),
        "body": _with_link(description, url),
        "location": url,
    }
    return f"{OUTLOOK_URL}?{urlencode(params, quote_via=quote)}"


async def session_duration(webinar: Webinar) -> timedelta:
    """How long a session of the webinar lasts: its video's length, else 60 minutes."""
    video = await Video.get_or_none(webinars__id=webinar.id)
    seconds = video.duration_seconds if video is not None else None
    if seconds is None or not math.isfinite(seconds) or seconds <= 0:
        return DEFAULT_DURATION
    # Whole minutes: calendars show minutes, and the end should not come before the video's.
    return timedelta(minutes=math.ceil(seconds / 60))


def registrant_zone(registrant: Registrant) -> ZoneInfo:
    """The zone a registrant reads times in (UTC if the stored one is unknown here)."""
    return zone_named(registrant.timezone)


def zone_named(name: str) -> ZoneInfo:
    """The zone of an IANA name, or UTC if it is unknown here."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        return ZoneInfo("UTC")


def event_description(webinar: Webinar, url: str) -> str:
    """The calendar entry's text: the start of the webinar's description and the join link."""
    about = webinar.description.strip()
    if len(about) > DESCRIPTION_MAX:
        about = about[: DESCRIPTION_MAX - 1].rstrip() + "…"
    link = gettext(webinar.language, "Your personal join link: {url}").format(url=url)
    return f"{about}\n\n{link}" if about else link


def event_uid(registrant: Registrant, session: WebinarSession) -> str:
    """A stable UID per registrant and session, so a resent invitation updates the same entry."""
    host = urlsplit(get_settings().public_base_url).hostname or "localhost"
    return f"registrant-{registrant.id}-session-{session.id}@{host}"


async def registrant_ics(registrant: Registrant) -> bytes | None:
    """The calendar file of a registrant's session; None when there is no time to put in one."""
    # registration builds on this module, so it is imported when called, not when loaded.
    from app.services.registration import join_url, token_of

    await registrant.fetch_related("webinar", "session")
    webinar = registrant.webinar
    session = registrant.session
    token = token_of(registrant)
    if not isinstance(webinar, Webinar) or not isinstance(session, WebinarSession):
        return None
    if session.kind == ON_DEMAND or token is None:
        return None
    url = join_url(token)
    return build_ics(
        uid=event_uid(registrant, session),
        title=webinar.title,
        description=event_description(webinar, url),
        starts_at=session.starts_at,
        duration=await session_duration(webinar),
        zone=registrant_zone(registrant),
        url=url,
    )
