"""Sessions offered to visitors, capacity overflow, and the lazily stored session rows."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from app.models import Contact, Registrant, Schedule, Webinar, WebinarSession
from app.schedule import ScheduleRules, SlotKind, parse_schedule
from app.services import crypto, sessions
from app.settings import Settings

BERLIN = ZoneInfo("Europe/Berlin")
TOKYO = ZoneInfo("Asia/Tokyo")
NOW = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)  # Monday, 09:00 in Berlin
WEEKLY = {"repeat": "weekly", "weekdays": ["tue"], "times": ["10:00"], "upcoming_count": 3}


def berlin(iso: str) -> datetime:
    return datetime.fromisoformat(iso).replace(tzinfo=BERLIN).astimezone(UTC)


TUESDAYS = [berlin(f"2026-03-{day:02d}T10:00") for day in (3, 10, 17, 24, 31)]


async def make_webinar(rules: dict[str, object], kind: str = "recurring") -> Webinar:
    webinar = await Webinar.create(slug="talk", title="Talk")
    await Schedule.create(webinar=webinar, kind=kind, timezone="Europe/Berlin", rules=rules)
    return webinar


async def fill(webinar: Webinar, starts_at: datetime, seats: int) -> WebinarSession:
    session = await WebinarSession.create(webinar=webinar, starts_at=starts_at, kind="scheduled")
    for _ in range(seats):
        token = crypto.new_token()
        contact = await Contact.create(email=f"{token[:12].lower()}@example.com")
        await Registrant.create(
            contact=contact,
            webinar=webinar,
            session=session,
            join_token_hash=crypto.hash_token(token),
            join_token_sealed=crypto.seal(token),
        )
    return session


async def rules_of(webinar: Webinar) -> ScheduleRules:
    rules = await sessions.load_rules(webinar)
    assert rules is not None
    return rules


async def test_offer_leaves_full_sessions_out_and_keeps_the_count(database: Settings) -> None:
    webinar = await make_webinar({**WEEKLY, "capacity": 2})
    await fill(webinar, TUESDAYS[0], 2)
    await fill(webinar, TUESDAYS[1], 1)
    rules = await rules_of(webinar)

    offered = await sessions.offer(webinar, rules, NOW)

    assert [slot.starts_at for slot in offered.slots] == TUESDAYS[1:4]
    assert offered.watch_now is False
    assert offered.zone == BERLIN
    assert await sessions.registered_counts(webinar, TUESDAYS[:3]) == {
        TUESDAYS[0]: 2,
        TUESDAYS[1]: 1,
    }


async def test_offer_without_capacity_shows_every_start(database: Settings) -> None:
    webinar = await make_webinar({**WEEKLY, "watch_now": True})
    await fill(webinar, TUESDAYS[0], 5)
    offered = await sessions.offer(webinar, await rules_of(webinar), NOW)
    assert [slot.starts_at for slot in offered.slots] == TUESDAYS[:3]
    assert offered.watch_now is True


async def test_offer_in_the_viewers_zone_for_attendee_local(database: Settings) -> None:
    webinar = await Webinar.create(slug="local", title="Local")
    await Schedule.create(
        webinar=webinar,
        kind="recurring",
        timezone="Europe/Berlin",
        attendee_local=True,
        rules=WEEKLY,
    )
    offered = await sessions.offer(webinar, await rules_of(webinar), NOW, viewer_zone=TOKYO)
    assert offered.zone == TOKYO
    assert offered.slots[0].starts_at == datetime(2026, 3, 3, 10, tzinfo=TOKYO)


async def test_seat_for_overflows_to_the_next_session_with_a_seat(database: Settings) -> None:
    webinar = await make_webinar({**WEEKLY, "capacity": 2})
    await fill(webinar, TUESDAYS[0], 2)
    await fill(webinar, TUESDAYS[1], 2)
    await fill(webinar, TUESDAYS[2], 1)
    rules = await rules_of(webinar)

    overflow = await sessions.seat_for(webinar, rules, TUESDAYS[0], NOW)
    assert overflow is not None
    assert overflow.starts_at == TUESDAYS[2]
    free = await sessions.seat_for(webinar, rules, TUESDAYS[3], NOW)
    assert free is not None
    assert free.starts_at == TUESDAYS[3]
    # A start the rules never offered is refused, not rounded to a neighbour.
    assert await sessions.seat_for(webinar, rules, berlin("2026-03-10T10:30"), NOW) is None


async def test_seat_for_gives_none_when_every_session_is_full(database: Settings) -> None:
    rules_json = {"dates": ["2026-03-10T10:00", "2026-03-11T10:00"], "capacity": 1}
    webinar = await make_webinar(rules_json, kind="specific")
    first, second = berlin("2026-03-10T10:00"), berlin("2026-03-11T10:00")
    await fill(webinar, first, 1)
    rules = await rules_of(webinar)
    seat = await sessions.seat_for(webinar, rules, first, NOW)
    assert seat is not None
    assert seat.starts_at == second
    await fill(webinar, second, 1)
    assert await sessions.seat_for(webinar, rules, first, NOW) is None
    assert (await sessions.offer(webinar, rules, NOW)).slots == []


async def test_concurrent_session_for_slot_stores_one_row(database: Settings) -> None:
    webinar = await make_webinar(WEEKLY)
    rules = await rules_of(webinar)
    (slot, *_) = (await sessions.offer(webinar, rules, NOW)).slots

    made = await asyncio.gather(*(sessions.session_for_slot(webinar, slot) for _ in range(8)))

    assert len({session.id for session in made}) == 1
    assert await WebinarSession.filter(webinar=webinar).count() == 1
    assert made[0].starts_at == slot.starts_at
    assert made[0].kind == "scheduled"


async def test_just_in_time_slots_are_their_own_kind(database: Settings) -> None:
    rules = parse_schedule(
        {"repeat": "daily", "jit": {"every_minutes": 15, "lead_minutes": 5}},
        kind="recurring",
        timezone="UTC",
    )
    webinar = await Webinar.create(slug="jit", title="JIT")
    (slot,) = (await sessions.offer(webinar, rules, NOW)).slots[:1]
    assert slot.kind is SlotKind.JIT
    session = await sessions.session_for_slot(webinar, slot, capacity=30)
    assert session.kind == "jit"
    assert session.capacity == 30
    assert session.starts_at == datetime(2026, 3, 2, 8, 15, tzinfo=UTC)


async def test_on_demand_sessions_are_one_per_viewer(database: Settings) -> None:
    webinar = await make_webinar({}, kind="on_demand")
    first = await sessions.on_demand_session(webinar, NOW)
    second = await sessions.on_demand_session(webinar, NOW.replace(second=1))
    assert first.id != second.id
    assert first.kind == second.kind == "on_demand"


async def test_an_invalid_stored_schedule_offers_nothing(database: Settings) -> None:
    webinar = await make_webinar({"repeat": "weekly", "weekdays": []})
    assert await sessions.load_rules(webinar) is None
    assert await sessions.load_rules(await Webinar.create(slug="none", title="None")) is None
