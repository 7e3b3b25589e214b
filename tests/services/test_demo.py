"""The demo webinar: published, with a schedule that always offers visitors a session."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from app.models import Presenter, Webinar, WebinarStatus
from app.schedule import SlotKind
from app.services import sessions
from app.services.demo import DEMO_SLUG, ensure_demo
from app.settings import Settings
from media.storage import LocalStorage

# A Saturday: no weekday sessions, so the offer has to come from the just-in-time grid.
SATURDAY_NOON_NEW_YORK = datetime(2026, 12, 5, 17, 0, tzinfo=UTC)
TUESDAY_EARLY_NEW_YORK = datetime(2026, 12, 8, 11, 0, tzinfo=UTC)  # 06:00 in New York


async def test_the_demo_offers_sessions_on_any_day(database: Settings, tmp_path: Path) -> None:
    storage = LocalStorage(root=tmp_path / "media")
    webinar = await ensure_demo(storage=storage, now=SATURDAY_NOON_NEW_YORK, seconds=1.0)

    assert webinar.slug == DEMO_SLUG
    assert webinar.status is WebinarStatus.PUBLISHED
    assert await Presenter.filter(webinar_id=webinar.id).count() == 1
    rules = await sessions.load_rules(webinar)
    assert rules is not None

    weekend = await sessions.offer(webinar, rules, SATURDAY_NOON_NEW_YORK)
    assert weekend.watch_now
    starts = [slot.starts_at for slot in weekend.slots]
    # 12:05 is the first grid time at least five minutes ahead; Monday 10:00 and 16:00 follow.
    assert starts[0] == datetime(2026, 12, 5, 17, 15, tzinfo=UTC)
    assert weekend.slots[0].kind is SlotKind.JIT
    assert starts[1:3] == [
        datetime(2026, 12, 7, 15, 0, tzinfo=UTC),
        datetime(2026, 12, 7, 21, 0, tzinfo=UTC),
    ]

    weekday = await sessions.offer(webinar, rules, TUESDAY_EARLY_NEW_YORK)
    # Before opening hours the first just-in-time start is 08:00, then the 10:00 session.
    assert [slot.starts_at for slot in weekday.slots][:2] == [
        datetime(2026, 12, 8, 13, 0, tzinfo=UTC),
        datetime(2026, 12, 8, 15, 0, tzinfo=UTC),
    ]

    assert await ensure_demo(storage=storage, seconds=1.0) == webinar
    assert await Webinar.all().count() == 1
