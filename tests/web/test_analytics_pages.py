"""The analytics pages on synthetic data: every figure by hand, filters, CSV files, access."""

from __future__ import annotations

import csv
import html
import io
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import httpx
import pytest

from app.models import (
    Attendance,
    ChatMessage,
    Contact,
    DailyVisitor,
    Interaction,
    InteractionResponse,
    Registrant,
    Role,
    Schedule,
    StaffUser,
    Video,
    Webinar,
    WebinarSession,
)
from app.services import crypto
from tests.conftest import login, make_user

S1 = datetime(2030, 5, 1, 15, 0, tzinfo=UTC)
S2 = datetime(2030, 5, 10, 15, 0, tzinfo=UTC)


@dataclass(frozen=True)
class World:
    """The synthetic webinar and what the tests look for."""

    webinar_id: int
    other_id: int
    first_session: int
    second_session: int
    poll_id: int
    nps_id: int
    offer_id: int
    foreign_poll_id: int


async def _registrant(webinar: Webinar, session: WebinarSession, email: str) -> Registrant:
    contact = await Contact.create(email=email, company_domain=email.rpartition("@")[2])
    return await Registrant.create(
        contact=contact,
        webinar=webinar,
        session=session,
        join_token_hash=crypto.hash_token(crypto.new_token()),
    )


async def _attend(
    registrant: Registrant,
    *,
    watched: float,
    minutes: list[int],
    stayed: bool = False,
    clicked: list[int] | None = None,
) -> None:
    assert registrant.session_id is not None
    await Attendance.create(
        webinar_id=registrant.webinar_id,
        session_id=registrant.session_id,
        registrant_id=registrant.id,
        contact_id=registrant.contact_id,
        first_join_at=S1,
        last_seen_at=S1,
        watched_seconds=watched,
        furthest_seconds=watched,
        minutes=minutes,
        stayed_to_end=stayed,
        clicked_offer=bool(clicked),
        clicked=clicked or [],
    )


async def _chat(
    session: WebinarSession,
    registrant: Registrant,
    body: str,
    at: datetime,
    *,
    staff: StaffUser | None = None,
    media: float = 0.0,
) -> None:
    message = await ChatMessage.create(
        session=session, registrant=registrant, staff=staff, body=body, media_seconds=media
    )
    await ChatMessage.filter(id=message.id).update(created_at=at)


async def build_world() -> World:
    """A ten-minute webinar with two sessions, six registrants, answers, clicks and chat.

    By hand: visitors 10 (8 on 1 May), registered 6 (4 in the first session), attended 4 (a,
    b, c in the first, e in the second), stayed to the end 1 (a), converted 2 (a, e). Watch
    times 600, 300, 120, 60 s: average 270 s, median 210 s, shares 1, .5, .2, .1: 45%.
    Viewers per minute 4, 3, 2, 2, 2, 1, 1, 1, 1, 1. Poll: Basic 1, "=Pro" 2. NPS answers 10,
    8, 3, 9: 2 promoters, 1 passive, 1 detractor, score +25. Offer clicked by a and e: 2 of 4
    attendees, 50%. Chat: two attendee messages (one question) answered after 30 s and 120 s:
    median 75 s, 90th percentile 120 s.
    """
    video = await Video.create(title="Talk", source_key="uploads/talk", duration_seconds=600.0)
    webinar = await Webinar.create(slug="onboarding", title="Onboarding", video=video)
    other = await Webinar.create(slug="risky", title="@risky webinar")
    await Schedule.create(
        webinar=webinar, kind="specific", timezone="Europe/Berlin", rules={"dates": []}
    )
    first = await WebinarSession.create(webinar=webinar, starts_at=S1)
    second = await WebinarSession.create(webinar=webinar, starts_at=S2)
    await DailyVisitor.bulk_create(
        [DailyVisitor(webinar_id=webinar.id, day=date(2030, 5, 1), visitor=n) for n in range(1, 9)]
        + [
            DailyVisitor(webinar_id=webinar.id, day=date(2030, 5, 9), visitor=n)
            for n in range(5, 11)
        ]
    )
    poll = await Interaction.create(
        webinar=webinar,
        kind="poll",
        title="Which plan?",
        config={"options": ["Basic", "=Pro"], "multiple": False},
        opens_at_seconds=90.0,
    )
    offer = await Interaction.create(
        webinar=webinar,
        kind="offer",
        title="Start a trial",
        config={"text": "Try it", "button": "Start", "url": "https://example.com"},
        opens_at_seconds=120.0,
    )
    nps = await Interaction.create(
        webinar=webinar, kind="nps", title="Recommend us?", config={}, opens_at_seconds=300.0
    )
    foreign = await Interaction.create(
        webinar=other,
        kind="poll",
        title="Elsewhere",
        config={"options": ["A", "B"], "multiple": False},
        opens_at_seconds=10.0,
    )
    a, b, c, d = [await _registrant(webinar, first, f"{name}@acme.example") for name in "abcd"]
    e, _ = [await _registrant(webinar, second, f"{name}@beta.example") for name in "ef"]
    await _attend(a, watched=600, minutes=list(range(10)), stayed=True, clicked=[offer.id])
    await _attend(b, watched=300, minutes=[0, 1, 2, 3, 4])
    await _attend(c, watched=120, minutes=[0, 1])
    await _attend(e, watched=60, minutes=[0], clicked=[offer.id])
    for who, answer in ((a, 0), (b, 1), (c, 1)):
        await InteractionResponse.create(
            interaction=poll, session=first, registrant=who, answer=answer
        )
    for who, score in ((a, 10), (b, 8), (c, 3)):
        await InteractionResponse.create(
            interaction=nps, session=first, registrant=who, answer=score
        )
    await InteractionResponse.create(interaction=nps, session=second, registrant=e, answer=9)
    staff = await StaffUser.filter(role=Role.OWNER).first()
    if staff is None:
        staff = await make_user(Role.OWNER, email="host@example.com", name="Host")
    noon = datetime(2030, 5, 1, 15, 5, tzinfo=UTC)
    await _chat(first, a, "How much is it?", noon, media=30)
    await _chat(first, a, "49 a month", noon + timedelta(seconds=30), staff=staff, media=60)
    await _chat(first, b, "Hello", noon + timedelta(seconds=60), media=70)
    await _chat(first, b, "Hi there", noon + timedelta(seconds=180), staff=staff, media=190)
    assert d.session_id == first.id
    return World(
        webinar_id=webinar.id,
        other_id=other.id,
        first_session=first.id,
        second_session=second.id,
        poll_id=poll.id,
        nps_id=nps.id,
        offer_id=offer.id,
        foreign_poll_id=foreign.id,
    )


async def sign_in(client: httpx.AsyncClient, role: Role) -> None:
    if not await StaffUser.exists(role=Role.OWNER):
        await make_user(Role.OWNER, email="host@example.com", name="Host")
    user = await make_user(role, email=f"{role.value}-person@example.com", name="Ada Analyst")
    assert (await login(client, user.email)).status_code == 303


def text_of(page: str) -> str:
    """The page's text, tags dropped and spaces collapsed (what a reader sees, hidden or not)."""
    plain = re.sub(r"<(script|style)[^>]*>.*?</\1>", " ", page, flags=re.S)
    plain = re.sub(r"<[^>]+>", " ", plain)
    return " ".join(html.unescape(plain).split())


def rows_of(response: httpx.Response) -> list[list[str]]:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "text/csv; charset=utf-8"
    assert response.headers["content-disposition"].startswith("attachment; filename=")
    assert response.content.startswith(b"\xef\xbb\xbf")
    return list(csv.reader(io.StringIO(response.content.decode("utf-8-sig"), newline="")))


def base(world: World) -> str:
    return f"/admin/analytics/webinars/{world.webinar_id}"


# --- access -------------------------------------------------------------------------------------


@pytest.mark.parametrize("role", [Role.OWNER, Role.ADMIN, Role.EDITOR, Role.ANALYST], ids=str)
async def test_allowed_roles_see_the_pages(client: httpx.AsyncClient, role: Role) -> None:
    world = await build_world()
    await sign_in(client, role)
    for path in (
        "/admin/analytics",
        base(world),
        "/admin/analytics/webinars.csv",
        f"{base(world)}/funnel.csv",
    ):
        response = await client.get(path)
        assert response.status_code == 200, path
    # The webinar's tabs lead to its dashboard.
    page = (await client.get(f"/admin/webinars/{world.webinar_id}/interactions")).text
    assert f'href="/admin/analytics/webinars/{world.webinar_id}"' in page


async def test_moderators_are_refused(client: httpx.AsyncClient) -> None:
    world = await build_world()
    await sign_in(client, Role.MODERATOR)
    for path in (
        "/admin/analytics",
        base(world),
        "/admin/analytics/webinars.csv",
        f"{base(world)}/funnel.csv",
        f"{base(world)}/interaction-{world.poll_id}.csv",
    ):
        response = await client.get(path)
        assert response.status_code == 403, path
        assert "Not allowed" in response.text
    # No tab to a page they may not open.
    page = (await client.get(f"/admin/webinars/{world.webinar_id}/interactions")).text
    assert f"/admin/analytics/webinars/{world.webinar_id}" not in page


async def test_signed_out_visitors_are_sent_to_sign_in(client: httpx.AsyncClient) -> None:
    world = await build_world()
    response = await client.get(f"{base(world)}/funnel.csv?start=2030-05-01")
    assert response.status_code == 303
    assert response.headers["location"].startswith("/login?next=")


# --- the webinar dashboard ----------------------------------------------------------------------


async def test_dashboard_shows_every_figure(client: httpx.AsyncClient) -> None:
    world = await build_world()
    await sign_in(client, Role.ANALYST)
    response = await client.get(base(world))
    assert response.status_code == 200
    page = response.text
    text = text_of(page)
    # The funnel with its numbers and rates, and the formulas.
    for row in (
        "Visitors 10 — 100.0",
        "Registered 6 60.0 60.0",
        "Attended 4 66.7 40.0",
        "Stayed to the end 1 25.0 10.0",
        "Converted 2 200.0 20.0",
    ):
        assert row in text, row
    assert "Share of the previous stage = this stage / the stage before." in text
    assert "Attendance rate = attended / registered." in text
    # Attendance rate and watch time.
    assert "66.7% Attendance rate 4 of 6 registered" in text
    assert "4 min 30 s Average watch time" in text
    assert "3 min 30 s Median watch time" in text
    assert "45.0% Average watch share" in text
    # The drop-off curve: viewers per minute, and the interactions as numbered markers.
    assert (
        "0 0:00 1:00 4 1 1:00 2:00 3 Poll: Which plan? 2 2:00 3:00 2 Offer: Start a trial" in text
    )
    assert "5 5:00 6:00 1 NPS: Recommend us? 6 6:00 7:00 1" in text
    assert "1 1:30 Poll: Which plan?" in text
    assert "2 2:00 Offer: Start a trial" in text
    assert "3 5:00 NPS: Recommend us?" in text
    # Interactions: poll distribution, NPS, offer click-through.
    assert "Basic 1 33.3" in text
    assert "=Pro 2 66.7" in text
    assert "NPS score +25" in text
    assert "Promoters 2 Passives 1 Detractors 1 Answers 4" in text
    assert "Clicked 2 people Click-through 50.0% of attendees" in text
    # Chat volume and the team's response time.
    assert "2 Attendee messages 1 Questions 2 Team replies 2 Answered" in text
    assert "1 min 15 s Median response time" in text
    assert "2 min 90% answered within" in text
    # Each chart: a canvas with its description, the CSV link, the PNG button and scripts.
    assert page.count("<canvas data-chart=") == 5  # funnel, drop-off, poll, NPS and chat
    for chart in ("funnel", "drop-off", f"interaction-{world.poll_id}"):
        assert f'href="{base(world)}/{chart}.csv"' in page
    assert "data-chart-png hidden" in page
    assert "/static/vendor/chart.umd.min.js" in page
    assert "/static/js/charts.js" in page
    assert "<script>" not in page  # the CSP allows no inline script


async def test_dashboard_filters_by_session_and_dates(client: httpx.AsyncClient) -> None:
    world = await build_world()
    await sign_in(client, Role.EDITOR)
    page = (await client.get(f"{base(world)}?session={world.second_session}")).text
    text = text_of(page)
    # Visitors belong to the webinar, not to one session: no shares of them either.
    for row in (
        "Visitors — — —",
        "Registered 2 — —",
        "Attended 1 50.0 —",
        "Stayed to the end 0 0.0 —",
        "Converted 1 — —",
    ):
        assert row in text, row
    assert f'<option value="{world.second_session}" selected>' in page
    # Sessions are listed in the webinar's zone.
    assert "Fri 10 May 2030, 17:00 CEST" in page
    # CSV links carry the filters.
    assert f'href="{base(world)}/funnel.csv?session={world.second_session}"' in page

    text = text_of((await client.get(f"{base(world)}?start=2030-05-01&end=2030-05-05")).text)
    assert "Visitors 8 — 100.0" in text
    assert "Registered 4 50.0 50.0" in text
    assert "Attended 3 75.0 37.5" in text


async def test_bad_filters_are_shown_next_to_the_field(client: httpx.AsyncClient) -> None:
    world = await build_world()
    await sign_in(client, Role.ANALYST)
    response = await client.get(f"{base(world)}?start=31.05.2030&end=2030-05-01")
    assert response.status_code == 400
    page = response.text
    assert '<p class="field-error" id="err-start">Enter a date like 2025-03-31.</p>' in page
    assert 'value="31.05.2030"' in page  # kept as typed
    assert 'aria-invalid="true" aria-describedby="err-start an-dates-help"' in page
    assert "<canvas" not in page

    response = await client.get(f"{base(world)}?start=2030-05-09&end=2030-05-01")
    assert response.status_code == 400
    assert "The end comes before the start: choose a later date." in response.text

    response = await client.get(f"{base(world)}?session=abc")
    assert response.status_code == 400
    assert "Choose one of this webinar&#39;s sessions." in response.text
    # A session of another webinar is not this webinar's.
    other_session = await WebinarSession.create(webinar_id=world.other_id, starts_at=S1)
    response = await client.get(f"{base(world)}?session={other_session.id}")
    assert response.status_code == 400
    assert "Choose one of this webinar&#39;s sessions." in response.text
    # A number too large for an id is no session either (not a database error).
    response = await client.get(f"{base(world)}?session={2**40}")
    assert response.status_code == 400
    assert "Choose one of this webinar&#39;s sessions." in response.text


async def test_empty_states(client: httpx.AsyncClient) -> None:
    await sign_in(client, Role.ANALYST)
    page = (await client.get("/admin/analytics")).text
    assert "No webinars yet" in page
    webinar = await Webinar.create(slug="fresh", title="Fresh")
    page = (await client.get(f"/admin/analytics/webinars/{webinar.id}")).text
    assert "No data yet" in page
    assert "No one has watched yet." in page
    assert "This webinar has no interactions yet." in page
    assert "No chat messages from attendees yet." in page
    assert page.count("<canvas") == 1  # the funnel, all zero
    await Interaction.create(
        webinar=webinar,
        kind="poll",
        title="Quiet poll",
        config={"options": ["Yes", "No"], "multiple": False},
        opens_at_seconds=5.0,
    )
    assert "No answers yet." in (await client.get(f"/admin/analytics/webinars/{webinar.id}")).text
    page = (await client.get("/admin/analytics")).text
    assert "No engagement recorded yet" in page
    assert (await client.get("/admin/analytics/webinars/999999")).status_code == 404


# --- CSV files ----------------------------------------------------------------------------------


async def test_funnel_csv(client: httpx.AsyncClient) -> None:
    world = await build_world()
    await sign_in(client, Role.ANALYST)
    rows = rows_of(await client.get(f"{base(world)}/funnel.csv"))
    assert rows == [
        ["Stage", "People", "Share of the previous stage (%)", "Share of visitors (%)"],
        ["Visitors", "10", "", "100.0"],
        ["Registered", "6", "60.0", "60.0"],
        ["Attended", "4", "66.7", "40.0"],
        ["Stayed to the end", "1", "25.0", "10.0"],
        ["Converted", "2", "200.0", "20.0"],
    ]
    response = await client.get(f"{base(world)}/funnel.csv?start=2030-05-01&end=2030-05-05")
    assert [row[1] for row in rows_of(response)[1:]] == ["8", "4", "3", "1", "1"]
    assert 'filename="webinar-' in response.headers["content-disposition"]
    assert "from-2030-05-01-to-2030-05-05" in response.headers["content-disposition"]
    response = await client.get(f"{base(world)}/funnel.csv?session={world.second_session}")
    assert [row[1] for row in rows_of(response)[1:]] == ["", "2", "1", "0", "1"]


async def test_drop_off_and_chat_csv(client: httpx.AsyncClient) -> None:
    world = await build_world()
    await sign_in(client, Role.ANALYST)
    rows = rows_of(await client.get(f"{base(world)}/drop-off.csv"))
    assert rows[0] == ["Minute", "From", "To", "Viewers", "Interactions opening"]
    assert rows[1] == ["0", "0:00", "1:00", "4", ""]
    assert rows[2] == ["1", "1:00", "2:00", "3", "Poll: Which plan?"]
    assert rows[3] == ["2", "2:00", "3:00", "2", "Offer: Start a trial"]
    assert rows[6] == ["5", "5:00", "6:00", "1", "NPS: Recommend us?"]
    assert [int(row[3]) for row in rows[1:]] == [4, 3, 2, 2, 2, 1, 1, 1, 1, 1]

    rows = rows_of(await client.get(f"{base(world)}/chat.csv"))
    assert rows[0] == ["Minute", "From", "To", "Attendee messages"]
    assert [int(row[3]) for row in rows[1:]] == [1, 1, 0, 0, 0, 0, 0, 0, 0, 0]

    summary = {row[0]: row[1] for row in rows_of(await client.get(f"{base(world)}/summary.csv"))}
    assert summary["Visitors"] == "10"
    assert summary["Attendance rate (%)"] == "66.7"
    assert summary["Average watch time (seconds)"] == "270.0"
    assert summary["Median watch time (seconds)"] == "210.0"
    assert summary["Average watch share (%)"] == "45.0"
    assert summary["Questions"] == "1"
    assert summary["Median response time (seconds)"] == "75.0"
    assert summary["90th percentile response time (seconds)"] == "120.0"


async def test_interaction_csv_neutralises_formulas(client: httpx.AsyncClient) -> None:
    world = await build_world()
    await sign_in(client, Role.ANALYST)
    rows = rows_of(await client.get(f"{base(world)}/interaction-{world.poll_id}.csv"))
    assert rows == [
        ["Result", "Count", "Share (%)"],
        ["Answers", "3", ""],
        ["Basic", "1", "33.3"],
        ["'=Pro", "2", "66.7"],
    ]
    rows = rows_of(await client.get(f"{base(world)}/interaction-{world.nps_id}.csv"))
    assert rows[-4:] == [
        ["Promoters (9-10)", "2", "50.0"],
        ["Passives (7-8)", "1", "25.0"],
        ["Detractors (0-6)", "1", "25.0"],
        ["NPS score", "25", ""],
    ]
    rows = rows_of(await client.get(f"{base(world)}/interactions.csv"))
    assert rows[0][:4] == ["Interaction id", "Interaction", "Kind", "Opens at"]
    assert [str(world.poll_id), "Which plan?", "Poll", "1:30", "'=Pro", "2", "66.7"] in rows
    assert [str(world.offer_id), "Start a trial", "Offer", "2:00", "Clicked", "2", "50.0"] in rows
    # Only this webinar's interactions, only known charts.
    foreign = await client.get(f"{base(world)}/interaction-{world.foreign_poll_id}.csv")
    assert foreign.status_code == 404
    assert (await client.get(f"{base(world)}/pie.csv")).status_code == 404
    bad = await client.get(f"{base(world)}/funnel.csv?end=tomorrow")
    assert bad.status_code == 400
    assert bad.text == "end: Enter a date like 2025-03-31.\n"


# --- the overview -------------------------------------------------------------------------------


async def test_overview_table_and_csv(client: httpx.AsyncClient) -> None:
    world = await build_world()
    await sign_in(client, Role.ANALYST)
    page = (await client.get("/admin/analytics")).text
    text = text_of(page)
    assert "Onboarding 2 10 6 4 66.7% 45.0% 2" in text
    assert "@risky webinar 0 0 0 0 — — 0" in text
    assert f'href="/admin/analytics/webinars/{world.webinar_id}"' in page
    assert "2 Webinars 2 Sessions 10 Visitors 6 Registered 4 Attended 66.7% of registered" in text
    assert "Attendance rate = attended / registered." in text
    assert page.count("<canvas data-chart=") == 1

    rows = rows_of(await client.get("/admin/analytics/webinars.csv"))
    assert rows[0][:4] == ["Webinar id", "Webinar", "Status", "Sessions"]
    by_title = {row[1]: row for row in rows[1:]}
    assert by_title["Onboarding"][3:] == ["2", "10", "6", "4", "66.7", "45.0", "2", "50.0"]
    assert by_title["'@risky webinar"][3:] == ["0", "0", "0", "0", "", "", "0", ""]

    # Dates narrow the rows, and the links to each dashboard keep them.
    page = (await client.get("/admin/analytics?start=2030-05-01&end=2030-05-05")).text
    assert "@risky webinar" not in page
    link = f"/admin/analytics/webinars/{world.webinar_id}?start=2030-05-01&amp;end=2030-05-05"
    assert link in page
    assert "Onboarding 1 8 4 3 75.0%" in text_of(page)
    response = await client.get("/admin/analytics?start=2030-02-30")
    assert response.status_code == 400
    assert '<p class="field-error" id="err-start">No such date.</p>' in response.text
