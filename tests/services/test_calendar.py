"""Calendar files and links: the event lands on the session's instant in every zone, across DST."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, tzinfo
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo

import pytest
from icalendar import Calendar, Event, Timezone

from app.models import Contact, Registrant, Schedule, Video, Webinar, WebinarSession, WebinarStatus
from app.schedule import resolve_wall
from app.services import calendar, crypto, registration
from app.settings import Settings

URL = "https://webinars.example.com/j/token-123"
STAMP = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
HOUR = timedelta(hours=1)


def ics(starts_at: datetime, zone: str, duration: timedelta = HOUR, **extra: str) -> Calendar:
    data = calendar.build_ics(
        uid=extra.get("uid", "registrant-1-session-1@webinars.example.com"),
        title=extra.get("title", "Growth, retention; and you"),
        description=extra.get("description", "What we cover:\n- churn\n- pricing"),
        starts_at=starts_at,
        duration=duration,
        zone=ZoneInfo(zone),
        url=URL,
        stamp=STAMP,
    )
    assert isinstance(data, bytes)
    assert data.startswith(b"BEGIN:VCALENDAR\r\n")
    return Calendar.from_ical(data)


def event_of(parsed: Calendar) -> Event:
    events = parsed.walk("VEVENT")
    assert len(events) == 1
    event = events[0]
    assert isinstance(event, Event)
    return event


def vtimezone_of(parsed: Calendar, tzid: str) -> tzinfo:
    """The zone as the file's own VTIMEZONE defines it (not the local zone database)."""
    zones = [zone for zone in parsed.walk("VTIMEZONE") if str(zone["TZID"]) == tzid]
    assert len(zones) == 1, f"expected one VTIMEZONE {tzid}"
    zone = zones[0]
    assert isinstance(zone, Timezone)
    built = zone.to_tz(lookup_tzid=False)
    assert isinstance(built, tzinfo)
    assert not isinstance(built, ZoneInfo)
    return built


def transitions(zone: ZoneInfo, year: int) -> list[datetime]:
    """The UTC instants in `year` at which the zone's offset changes (to the minute)."""
    found: list[datetime] = []
    moment = datetime(year, 1, 1, tzinfo=UTC)
    end = datetime(year + 1, 1, 1, tzinfo=UTC)
    step = timedelta(hours=1)
    while moment < end:
        if moment.astimezone(zone).utcoffset() != (moment + step).astimezone(zone).utcoffset():
            low, high = moment, moment + step
            while high - low > timedelta(minutes=1):
                middle = low + (high - low) / 2
                if middle.astimezone(zone).utcoffset() == low.astimezone(zone).utcoffset():
                    low = middle
                else:
                    high = middle
            found.append(high.replace(second=0, microsecond=0))
        moment += step
    return found


def instants_around_changes(zone_name: str) -> list[datetime]:
    zone = ZoneInfo(zone_name)
    changes = transitions(zone, 2030)
    moments = [datetime(2030, 1, 15, 14, 0, tzinfo=UTC), datetime(2030, 7, 15, 14, 0, tzinfo=UTC)]
    for change in changes:
        moments += [change - HOUR, change - timedelta(minutes=15), change, change + HOUR]
    return moments


DST_ZONES = ["Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "Asia/Kathmandu"]


def test_the_zones_change_as_expected() -> None:
    # The round-trip test below is only meaningful if it crosses real transitions.
    assert len(transitions(ZoneInfo("Europe/Berlin"), 2030)) == 2
    assert len(transitions(ZoneInfo("America/New_York"), 2030)) == 2
    lord_howe = transitions(ZoneInfo("Australia/Lord_Howe"), 2030)
    assert len(lord_howe) == 2
    first = lord_howe[0]
    shift = (first + HOUR).astimezone(ZoneInfo("Australia/Lord_Howe")).utcoffset()
    before = (first - HOUR).astimezone(ZoneInfo("Australia/Lord_Howe")).utcoffset()
    assert shift is not None
    assert before is not None
    assert abs(shift - before) == timedelta(minutes=30)
    assert transitions(ZoneInfo("Asia/Kathmandu"), 2030) == []


@pytest.mark.parametrize("zone_name", DST_ZONES)
def test_dtstart_is_the_session_instant_across_dst(zone_name: str) -> None:
    for instant in instants_around_changes(zone_name):
        parsed = ics(instant, zone_name, duration=timedelta(minutes=90))
        event = event_of(parsed)
        start = event.decoded("dtstart")
        end = event.decoded("dtend")
        assert isinstance(start, datetime)
        assert isinstance(end, datetime)
        assert start.astimezone(UTC) == instant, (zone_name, instant)
        # Elapsed time, even when the session spans a clock change.
        assert end.astimezone(UTC) - start.astimezone(UTC) == timedelta(minutes=90)
        for key, value, expected in (
            ("DTSTART", start, instant),
            ("DTEND", end, instant + timedelta(minutes=90)),
        ):
            tzid = event[key].params.get("TZID")
            if tzid is None:
                # Only an instant in the second pass of a repeated hour is written in UTC.
                assert value.utcoffset() == timedelta(0)
                local = expected.astimezone(ZoneInfo(zone_name))
                assert local.replace(fold=0).astimezone(UTC) != expected
                continue
            assert tzid == zone_name
            # The VTIMEZONE the file carries places the local time on the same instant, so
            # clients without the zone database agree too.
            own = vtimezone_of(parsed, zone_name)
            assert value.replace(tzinfo=own).astimezone(UTC) == expected, (key, expected)


def test_shifted_and_repeated_wall_times_keep_their_instant() -> None:
    berlin = ZoneInfo("Europe/Berlin")
    # 02:30 does not exist on 31 March 2030 and runs at 03:30 (CEST), 01:30 UTC.
    shifted = resolve_wall(datetime(2030, 3, 31, 2, 30), berlin)
    assert shifted == datetime(2030, 3, 31, 1, 30, tzinfo=UTC)
    start = event_of(ics(shifted, "Europe/Berlin")).decoded("dtstart")
    assert start.replace(tzinfo=None) == datetime(2030, 3, 31, 3, 30)
    assert start.astimezone(UTC) == shifted

    # 02:30 happens twice on 27 October 2030: the first pass is written as local time.
    first_pass = datetime(2030, 10, 27, 0, 30, tzinfo=UTC)
    event = event_of(ics(first_pass, "Europe/Berlin"))
    assert event["DTSTART"].params["TZID"] == "Europe/Berlin"
    assert event.decoded("dtstart").replace(tzinfo=None) == datetime(2030, 10, 27, 2, 30)
    # The second pass cannot be named in local time: it is written in UTC.
    second_pass = datetime(2030, 10, 27, 1, 30, tzinfo=UTC)
    event = event_of(ics(second_pass, "Europe/Berlin"))
    assert "TZID" not in event["DTSTART"].params
    assert event.decoded("dtstart") == second_pass


def test_the_file_has_every_required_part() -> None:
    starts = datetime(2030, 6, 3, 13, 0, tzinfo=UTC)
    parsed = ics(starts, "America/New_York", duration=timedelta(minutes=45))
    assert str(parsed["VERSION"]) == "2.0"
    assert str(parsed["METHOD"]) == "PUBLISH"
    assert "Encore" in str(parsed["PRODID"])
    event = event_of(parsed)
    assert str(event["UID"]) == "registrant-1-session-1@webinars.example.com"
    assert event.decoded("dtstamp") == STAMP
    assert str(event["SUMMARY"]) == "Growth, retention; and you"
    description = str(event["DESCRIPTION"])
    assert description.startswith("What we cover:\n- churn\n- pricing")
    assert URL in description
    assert str(event["LOCATION"]) == URL
    assert str(event["URL"]) == URL
    assert event.decoded("dtstart") == datetime(
        2030, 6, 3, 9, 0, tzinfo=ZoneInfo("America/New_York")
    )
    assert event.decoded("sequence") == 0
    assert [str(zone["TZID"]) for zone in parsed.walk("VTIMEZONE")] == ["America/New_York"]


def test_the_link_is_not_repeated_when_the_description_has_it() -> None:
    event = event_of(ics(STAMP, "UTC", description=f"Join: {URL}"))
    assert str(event["DESCRIPTION"]) == f"Join: {URL}"


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="aware"):
        ics(datetime(2030, 1, 1, 12, 0), "UTC")
    with pytest.raises(ValueError, match="positive"):
        ics(STAMP, "UTC", duration=timedelta(0))


def query_of(url: str) -> dict[str, str]:
    return {key: values[0] for key, values in parse_qs(urlsplit(url).query).items()}


def test_google_link_has_utc_dates_and_encoded_text() -> None:
    starts = datetime(2030, 3, 31, 1, 30, tzinfo=UTC)
    link = calendar.google_calendar_url(
        title="Growth & you?",
        description="Line one\nLine two",
        starts_at=starts.astimezone(ZoneInfo("Europe/Berlin")),
        duration=timedelta(minutes=75),
        url=URL,
    )
    parts = urlsplit(link)
    assert (parts.scheme, parts.netloc) == ("https", "calendar.google.com")
    assert " " not in link
    assert "\n" not in link
    query = query_of(link)
    assert query["action"] == "TEMPLATE"
    assert query["text"] == "Growth & you?"
    assert query["dates"] == "20300331T013000Z/20300331T024500Z"
    assert query["details"] == f"Line one\nLine two\n\n{URL}"
    assert query["location"] == URL


def test_outlook_link_has_utc_dates_and_encoded_text() -> None:
    starts = datetime(2030, 11, 3, 5, 30, tzinfo=UTC)
    link = calendar.outlook_calendar_url(
        title="Growth & you?",
        description="About",
        starts_at=starts.astimezone(ZoneInfo("America/New_York")),
        duration=timedelta(hours=2),
        url=URL,
    )
    parts = urlsplit(link)
    assert parts.netloc == "outlook.live.com"
    query = query_of(link)
    assert query["rru"] == "addevent"
    assert query["subject"] == "Growth & you?"
    assert query["startdt"] == "2030-11-03T05:30:00Z"
    assert query["enddt"] == "2030-11-03T07:30:00Z"
    assert query["body"] == f"About\n\n{URL}"
    assert query["location"] == URL


async def test_session_duration_follows_the_video(database: Settings) -> None:
    webinar = await Webinar.create(slug="talk", title="Talk")
    assert await calendar.session_duration(webinar) == timedelta(minutes=60)
    video = await Video.create(title="Talk", source_key="uploads/talk.mp4", duration_seconds=3601.2)
    webinar.video = video
    await webinar.save()
    reloaded = await Webinar.get(id=webinar.id)
    assert await calendar.session_duration(reloaded) == timedelta(minutes=61)
    video.duration_seconds = None
    await video.save()
    assert await calendar.session_duration(reloaded) == timedelta(minutes=60)


async def make_registrant(session_kind: str, timezone: str) -> tuple[Registrant, str]:
    webinar = await Webinar.create(
        slug="talk",
        title="Talk",
        description="All about it.",
        status=WebinarStatus.PUBLISHED,
        language="de",
    )
    await Schedule.create(
        webinar=webinar,
        kind="recurring",
        timezone="Europe/Berlin",
        rules={"repeat": "daily", "times": ["15:00"]},
    )
    session = await WebinarSession.create(
        webinar=webinar, starts_at=datetime(2030, 3, 31, 13, 0, tzinfo=UTC), kind=session_kind
    )
    contact = await Contact.create(email="ada@example.com", name="Ada")
    token = crypto.new_token()
    registrant = await Registrant.create(
        contact=contact,
        webinar=webinar,
        session=session,
        join_token_hash=crypto.hash_token(token),
        join_token_sealed=crypto.seal(token),
        timezone=timezone,
    )
    return registrant, token


async def test_registrant_ics_for_the_public_pages(database: Settings) -> None:
    registrant, token = await make_registrant("scheduled", "Asia/Kathmandu")
    data = await calendar.registrant_ics(registrant)
    assert data is not None
    event = event_of(Calendar.from_ical(data))
    assert event["DTSTART"].params["TZID"] == "Asia/Kathmandu"
    assert event.decoded("dtstart").astimezone(UTC) == datetime(2030, 3, 31, 13, 0, tzinfo=UTC)
    assert event.decoded("dtstart").replace(tzinfo=None) == datetime(2030, 3, 31, 18, 45)
    assert str(event["URL"]) == f"http://testserver/j/{token}"
    assert str(event["UID"]).endswith("@testserver")
    # In the webinar's language.
    assert f"Ihr persönlicher Teilnahmelink: http://testserver/j/{token}" in str(
        event["DESCRIPTION"]
    )
    assert registration.join_url(token) == f"http://testserver/j/{token}"


async def test_registrant_ics_in_an_unknown_stored_zone_falls_back_to_utc(
    database: Settings,
) -> None:
    registrant, _ = await make_registrant("scheduled", "Mars/Olympus_Mons")
    data = await calendar.registrant_ics(registrant)
    assert data is not None
    start = event_of(Calendar.from_ical(data)).decoded("dtstart")
    assert start == datetime(2030, 3, 31, 13, 0, tzinfo=UTC)


async def test_no_calendar_file_without_a_time(database: Settings) -> None:
    registrant, _ = await make_registrant("on_demand", "Europe/Berlin")
    assert await calendar.registrant_ics(registrant) is None
    await WebinarSession.all().delete()
    assert await calendar.registrant_ics(await Registrant.get(id=registrant.id)) is None
