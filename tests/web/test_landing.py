"""The public webinar pages through the real app: landing, embed, registration, token pages."""

from __future__ import annotations

import asyncio
import html
import logging
import re
import time as clock
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from babel.messages.extract import extract_python
from babel.messages.pofile import read_po
from icalendar import Calendar
from jinja2.ext import extract_from_ast
from starlette.requests import Request
from starlette.responses import HTMLResponse

from app import i18n
from app.models import (
    Contact,
    Presenter,
    Registrant,
    Schedule,
    Webinar,
    WebinarSession,
    WebinarStatus,
)
from app.services import auth, content, delivery
from app.settings import ROOT, Settings
from app.web.landing import landing_response, mask_email
from app.web.page_cache import PageCache, landing_pages
from app.web.public_templating import environment
from emails import MemoryMailer

BERLIN = ZoneInfo("Europe/Berlin")
PUBLIC_TEMPLATES = ROOT / "app" / "web" / "templates" / "public"
GERMAN_WEEKDAYS = ("Montag", "Dienstag", "Mittwoch", "Donnerstag", "Freitag", "Samstag", "Sonntag")


def _session_day(days: int = 30) -> date:
    return (auth.utcnow() + timedelta(days=days)).astimezone(BERLIN).date()


async def make_webinar(
    *,
    slug: str = "growth-101",
    status: WebinarStatus = WebinarStatus.PUBLISHED,
    language: str = "en",
    template: str = "classic",
    schedule: dict[str, Any] | None = None,
    kind: str = "specific",
    attendee_local: bool = False,
    fields: list[dict[str, Any]] | None = None,
    **extra: Any,
) -> Webinar:
    """A webinar with landing blocks, two presenters and (by default) one session in 30 days."""
    webinar = await Webinar.create(
        slug=slug,
        title="Growth 101",
        description="How we grew.\n\nA second paragraph about the talk.",
        language=language,
        status=status,
        theme={
            "template": template,
            "primary": "#0f766e",
            "logo_key": "images/logo.png",
            "cover_key": "images/cover.jpg",
        },
        landing={
            "headline": "Grow your customer base",
            "subheadline": "A practical hour on onboarding.",
            "agenda": ["Measure activation", "Fix the first week"],
            "faq": [{"question": "Is it recorded?", "answer": "Yes, and replayed on demand."}],
            "testimonials": [{"quote": "Changed how we onboard.", "author": "Dana, Acme"}],
            "thank_you_headline": "See you there!",
        },
        registration_fields=fields or [],
        **extra,
    )
    # Saved out of order: the page lists presenters by position.
    await Presenter.create(webinar=webinar, name="Second Speaker", position=2)
    await Presenter.create(
        webinar=webinar, name="First Speaker", title="CEO", photo_key="images/p1.jpg", position=1
    )
    if schedule is not None or kind == "specific":
        rules = schedule
        if rules is None:
            rules = {"dates": [f"{_session_day().isoformat()}T10:00"]}
        await Schedule.create(
            webinar=webinar,
            kind=kind,
            timezone="Europe/Berlin",
            attendee_local=attendee_local,
            rules=rules,
        )
    return webinar


def _start() -> datetime:
    return datetime.combine(_session_day(), time(10, 0), BERLIN).astimezone(UTC)


def _session_values(page: str) -> list[str]:
    return re.findall(r'type="radio" id="reg-session-\d+" name="session" value="([^"]+)"', page)


def _form(**overrides: str) -> dict[str, str]:
    data = {
        "name": "Ada Lovelace",
        "email": "ada@example.com",
        "session": _start().isoformat(),
        "timezone": "America/New_York",
        "website": "",
    }
    data.update(overrides)
    return data


def _clock(moment: datetime) -> str:
    """h:mm of a local time, as the English pages write it."""
    return f"{moment.hour % 12 or 12}:{moment.minute:02d}"


def _field_error(page: str, key: str) -> str:
    match = re.search(rf'<p class="field-error" id="reg-{key}-error">(.*?)</p>', page, re.S)
    assert match, f"no error beside {key}"
    return html.unescape(re.sub(r"<[^>]+>", "", match.group(1))).replace("Error:", "").strip()


# --- landing page ------------------------------------------------------------------------------


@pytest.mark.parametrize("template", content.TEMPLATES)
async def test_each_template_renders_every_block(client: httpx.AsyncClient, template: str) -> None:
    await make_webinar(template=template)
    response = await client.get("/w/growth-101?tz=Europe/Berlin")
    assert response.status_code == 200
    page = response.text
    assert f'class="public template-{template}"' in page
    assert '<html lang="en">' in page
    assert "<h1>Grow your customer base</h1>" in page
    assert "A practical hour on onboarding." in page
    assert "<p>A second paragraph about the talk.</p>" in page
    assert "<li>Measure activation</li>" in page
    assert page.index("First Speaker") < page.index("Second Speaker")
    assert 'src="/media/images/p1.jpg"' in page
    assert "<summary>Is it recorded?</summary>" in page
    assert "Changed how we onboard." in page
    assert "Dana, Acme" in page
    assert 'src="/media/images/logo.png"' in page
    assert 'src="/media/images/cover.jpg"' in page
    assert '<a class="skip-link" href="#main">Skip to content</a>' in page
    assert 'id="main"' in page
    # The form: real labels, the session radios in a fieldset, the honeypot out of reach.
    assert '<label for="reg-name">Your name</label>' in page
    assert '<label for="reg-email">Email address</label>' in page
    assert "<legend>Choose a session</legend>" in page
    assert _session_values(page) == [_start().isoformat()]
    assert re.search(r'value="[^"]+" checked>', page)
    assert re.search(
        r'<input type="text" id="reg-website" name="website" value="" tabindex="-1" '
        r'autocomplete="off">',
        page,
    )
    assert '<label for="reg-website">Leave this field empty</label>' in page
    assert 'action="/w/growth-101/register"' in page
    assert ">Register now</button>" in page
    # Theme colours come from the stylesheet endpoint, never inline.
    assert 'href="/w/theme.css?p=0f766e&amp;b=ffffff&amp;t=1f2937&amp;f=system&amp;v=' in page
    assert "style=" not in page
    assert "<script>" not in page
    assert response.headers["x-frame-options"] == "DENY"
    assert "frame-ancestors 'none'" in response.headers["content-security-policy"]


async def test_presenters_can_be_hidden_and_the_button_renamed(client: httpx.AsyncClient) -> None:
    webinar = await make_webinar()
    webinar.landing = {**webinar.landing, "show_presenters": False, "button_label": "Count me in"}
    await webinar.save()
    page = (await client.get("/w/growth-101")).text
    assert "First Speaker" not in page
    assert ">Count me in</button>" in page


async def test_only_published_webinars_have_a_page(client: httpx.AsyncClient) -> None:
    await make_webinar(slug="draft-one", status=WebinarStatus.DRAFT)
    await make_webinar(slug="old-one", status=WebinarStatus.ARCHIVED)
    for path in ("/w/draft-one", "/w/old-one", "/w/nope", "/w/draft-one/embed", "/w/" + "x" * 90):
        response = await client.get(path)
        assert response.status_code == 404, path
        assert "<h1>Page not found</h1>" in response.text
        assert "Growth 101" not in response.text
    german = await client.get("/w/draft-one", headers={"accept-language": "de-DE,de;q=0.9"})
    assert german.status_code == 404
    assert '<html lang="de">' in german.text
    assert "<h1>Seite nicht gefunden</h1>" in german.text
    # Registering for a draft is refused the same way, and stores nothing.
    response = await client.post("/w/draft-one/register", data=_form())
    assert response.status_code == 404
    assert await Contact.all().count() == 0


async def test_german_page(client: httpx.AsyncClient) -> None:
    await make_webinar(language="de")
    response = await client.get("/w/growth-101?tz=Europe/Berlin")
    page = response.text
    assert '<html lang="de">' in page
    for text in ("Jetzt anmelden", "Wählen Sie einen Termin", "Ihr Name", "Zeitzone", "Referenten"):
        assert text in page, text
    assert "Register now" not in page
    assert "Zum Inhalt springen" in page
    label = re.search(r'<span class="choice-time">([^<]+)</span>', page)
    assert label is not None
    assert label.group(1).split(",")[0] in GERMAN_WEEKDAYS
    assert "10:00" in label.group(1)
    assert "Die Zeiten werden in Europe/Berlin (UTC+0" in page


@pytest.mark.parametrize("zone", ["Europe/Berlin", "America/New_York", "Asia/Kathmandu"])
async def test_times_are_shown_in_the_visitors_zone(client: httpx.AsyncClient, zone: str) -> None:
    await make_webinar()
    response = await client.get(f"/w/growth-101?tz={zone}")
    page = response.text
    local = _start().astimezone(ZoneInfo(zone))
    label = re.search(r'<span class="choice-time">([^<]+)</span>', page)
    assert label is not None
    text = label.group(1)
    assert _clock(local) in text, (zone, text)
    assert str(local.day) in text
    assert ("AM" if local.hour < 12 else "PM") in text
    offset = local.strftime("%z")
    assert f"Times are shown in {zone} (UTC{offset[:3]}:{offset[3:]})." in page
    assert f'<option value="{zone}" selected>' in page
    assert f'name="timezone" value="{zone}"' in page
    assert "data-zone-explicit" in page
    # The same instant everywhere: only the words change.
    assert _session_values(page) == [_start().isoformat()]


async def test_without_a_zone_the_schedules_zone_is_used(client: httpx.AsyncClient) -> None:
    await make_webinar()
    for path in ("/w/growth-101", "/w/growth-101?tz=Mars/Olympus", "/w/growth-101?tz=localtime"):
        page = (await client.get(path)).text
        assert "Times are shown in Europe/Berlin" in page, path
        assert 'data-zone="Europe/Berlin"' in page
        assert "10:00" in page
    plain = (await client.get("/w/growth-101")).text
    # landing.js may still switch to the browser's zone: the page did not name one.
    assert "data-zone-explicit" not in plain
    options = re.findall(r'<option value="([^"]+)"', plain)
    assert options == sorted(options)
    assert {"Asia/Kathmandu", "America/New_York", "UTC"} <= set(options)
    assert len(options) > 300


async def test_attendee_local_schedules_start_at_the_visitors_wall_time(
    client: httpx.AsyncClient,
) -> None:
    await make_webinar(attendee_local=True)
    page = (await client.get("/w/growth-101?tz=Asia/Tokyo")).text
    day = _session_day()
    tokyo = datetime.combine(day, time(10, 0), ZoneInfo("Asia/Tokyo")).astimezone(UTC)
    assert _session_values(page) == [tokyo.isoformat()]
    assert "10:00" in page


async def test_just_in_time_and_watch_now_choices(client: httpx.AsyncClient) -> None:
    await make_webinar(
        kind="recurring",
        schedule={
            "repeat": "daily",
            "jit": {"every_minutes": 15, "lead_minutes": 5},
            "watch_now": True,
        },
    )
    page = (await client.get("/w/growth-101?tz=UTC")).text
    values = _session_values(page)
    assert values[-1] == "now"
    first = datetime.fromisoformat(values[0])
    minutes = (first - auth.utcnow()).total_seconds() / 60
    assert 4 < minutes <= 21
    note = re.search(r'<span class="choice-note">Starts in (\d+) minutes?</span>', page)
    assert note is not None
    assert abs(int(note.group(1)) - minutes) <= 1.5
    assert "Start the recording right away" in page
    # The first choice is preselected.
    assert f'value="{values[0]}" checked>' in page
    assert 'value="now" checked' not in page


async def test_german_just_in_time_label(client: httpx.AsyncClient) -> None:
    await make_webinar(
        language="de",
        kind="recurring",
        schedule={"repeat": "daily", "jit": {"every_minutes": 15, "lead_minutes": 5}},
    )
    page = (await client.get("/w/growth-101?tz=UTC")).text
    assert re.search(r'<span class="choice-note">Beginnt in \d+ Minuten?</span>', page)


async def test_no_schedule_or_nothing_offered_says_so(client: httpx.AsyncClient) -> None:
    await make_webinar(slug="unscheduled", kind="none")
    past = (auth.utcnow() - timedelta(days=3)).astimezone(BERLIN).strftime("%Y-%m-%dT%H:%M")
    await make_webinar(slug="past", schedule={"dates": [past]})
    for slug in ("unscheduled", "past"):
        page = (await client.get(f"/w/{slug}")).text
        assert "No upcoming sessions" in page, slug
        assert "reg-form" not in page
        assert 'name="email"' not in page
        assert "Register now" not in page


async def test_open_graph_and_canonical(client: httpx.AsyncClient) -> None:
    await make_webinar()
    page = (await client.get("/w/growth-101?utm_source=x")).text
    assert '<link rel="canonical" href="http://testserver/w/growth-101">' in page
    assert '<meta property="og:url" content="http://testserver/w/growth-101">' in page
    assert '<meta property="og:type" content="website">' in page
    assert '<meta property="og:title" content="Growth 101">' in page
    assert '<meta property="og:description" content="A practical hour on onboarding.">' in page
    assert '<meta name="description" content="A practical hour on onboarding.">' in page
    assert '<meta property="og:image" content="http://testserver/media/images/cover.jpg">' in page
    assert '<meta name="twitter:card" content="summary_large_image">' in page
    assert "<title>Growth 101</title>" in page


async def test_utm_and_referrer_are_carried_into_the_form(client: httpx.AsyncClient) -> None:
    await make_webinar()
    response = await client.get(
        "/w/growth-101?utm_source=news&utm_campaign=spring&utm_medium=" + "m" * 300,
        headers={"referer": "https://blog.example.org/post?id=7"},
    )
    page = response.text
    assert '<input type="hidden" name="utm_source" value="news">' in page
    assert '<input type="hidden" name="utm_campaign" value="spring">' in page
    assert f'<input type="hidden" name="utm_medium" value="{"m" * 200}">' in page
    assert 'name="utm_term"' not in page
    assert 'name="referrer" value="https://blog.example.org/post?id=7"' in page
    # Switching zones (a request from our own page) keeps the UTM fields, not our own address.
    own = await client.get(
        "/w/growth-101?tz=UTC&utm_source=news",
        headers={"referer": "http://testserver/w/growth-101?utm_source=news"},
    )
    assert 'name="referrer" value=""' in own.text
    assert own.text.count('name="utm_source" value="news"') == 2  # zone form and registration


# --- theme stylesheet ---------------------------------------------------------------------------


async def test_theme_stylesheet(client: httpx.AsyncClient) -> None:
    response = await client.get("/w/theme.css?p=FACC15&b=ffffff&t=111827&f=serif&v=1")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/css")
    assert "max-age=31536000" in response.headers["cache-control"]
    css = response.text
    assert "--primary:#facc15;" in css
    assert "--on-primary:#000000;" in css  # yellow needs dark button labels
    assert "--bg:#ffffff;" in css
    assert "--text:#111827;" in css
    assert "--font:Georgia" in css
    dark = await client.get("/w/theme.css?p=1e3a8a&b=ffffff&t=111827&f=system")
    assert "--on-primary:#ffffff;" in dark.text


@pytest.mark.parametrize(
    ("query", "problem"),
    [
        ("p=zzzzzz&b=ffffff&t=111827&f=system", "p: primary"),
        ("p=4338ca&b=fff&t=111827&f=system", "b: background"),
        ("p=4338ca&b=ffffff&t=%23111827&f=system", "t: text"),
        ("p=4338ca&b=ffffff&t=111827&f=comic", "f: font"),
        ("p=4338ca&b=ffffff&t=111827", "f: font"),
        ("p=4338ca&b=ffffff&t=111827&f=system&x=1", "x: unknown parameter"),
        ("p=4338ca&p=000000&b=ffffff&t=111827&f=system", "p: given more than once"),
        ("p=4338ca;}body{display:none&b=ffffff&t=111827&f=system", "p: primary"),
    ],
)
async def test_theme_stylesheet_refuses_bad_values(
    client: httpx.AsyncClient, query: str, problem: str
) -> None:
    response = await client.get(f"/w/theme.css?{query}")
    assert response.status_code == 400
    assert problem in response.text
    assert "{" not in response.text


# --- registration --------------------------------------------------------------------------------


async def test_registration_end_to_end(client: httpx.AsyncClient, mailer: MemoryMailer) -> None:
    webinar = await make_webinar(
        fields=[
            {"key": "company", "label": "Company", "type": "text", "required": True},
            {"key": "role", "label": "Role", "type": "select", "options": ["CS", "Sales"]},
            {"key": "terms", "label": "I accept the terms", "type": "consent"},
        ]
    )
    # A fresh client with no cookie and no CSRF token: a form framed on another site.
    client.cookies.clear()
    response = await client.post(
        "/w/growth-101/register",
        data=_form(
            company="Analytical Engines",
            role="CS",
            terms="on",
            utm_source="news",
            utm_campaign="spring",
            referrer="https://blog.example.org/post",
        ),
    )
    assert response.status_code == 303, response.text
    location = response.headers["location"]
    match = re.fullmatch(r"/j/([A-Za-z0-9_-]+)/registered", location)
    assert match, location
    token = match.group(1)

    registrant = await Registrant.get().prefetch_related("contact", "session")
    assert registrant.contact.email == "ada@example.com"
    assert registrant.utm == {"utm_source": "news", "utm_campaign": "spring"}
    assert registrant.referrer == "https://blog.example.org/post"
    assert registrant.timezone == "America/New_York"
    assert registrant.answers["company"] == "Analytical Engines"
    session = await WebinarSession.get(id=registrant.session_id)
    assert session.starts_at == _start()
    await delivery.deliver_due(auth.utcnow())
    assert len(mailer.sent) == 1

    thanks = await client.get(location)
    assert thanks.status_code == 200
    page = thanks.text
    assert "<h1>See you there!</h1>" in page
    local = _start().astimezone(ZoneInfo("America/New_York"))
    assert _clock(local) in page
    assert "AM" in page
    assert "America/New_York (UTC-0" in page
    assert f'data-starts-at="{_start().isoformat()}"' in page
    assert re.search(r'role="timer"[^>]*>Starts in \d+ (days|weeks|months?)</p>', page)
    assert f'value="http://testserver/j/{token}"' in page
    assert f'href="/j/{token}/calendar.ics"' in page
    assert "https://calendar.google.com/calendar/render?" in page
    assert "https://outlook.live.com/calendar/0/action/compose?" in page
    _assert_token_headers(thanks)

    ics = await client.get(f"/j/{token}/calendar.ics")
    assert ics.status_code == 200
    assert ics.headers["content-type"].startswith("text/calendar")
    assert ics.headers["content-disposition"] == 'attachment; filename="growth-101.ics"'
    _assert_token_headers(ics)
    event = next(iter(Calendar.from_ical(ics.content).walk("VEVENT")))
    assert event.decoded("dtstart").astimezone(UTC) == _start()
    assert str(event.get("summary")) == webinar.title
    assert f"/j/{token}" in str(event.get("url"))

    join = await client.get(f"/j/{token}")
    assert join.status_code == 200
    assert "<h1>Growth 101</h1>" in join.text
    assert "The session has not started yet." in join.text
    assert "data-reload-at-start" in join.text
    assert f'href="/j/{token}/calendar.ics"' in join.text
    _assert_token_headers(join)


async def test_a_crowd_without_a_snapshot_reads_the_webinar_once(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    await make_webinar()
    emails = [f"crowd{i}@example.com" for i in range(4)]
    with caplog.at_level(logging.DEBUG, logger="tortoise.db_client"):
        responses = await asyncio.gather(
            *(client.post("/w/growth-101/register", data=_form(email=e)) for e in emails)
        )
    assert [response.status_code for response in responses] == [303] * 4
    reads = [
        record
        for record in caplog.records
        if 'FROM "webinar"' in record.getMessage() and "growth-101" in record.getMessage()
    ]
    assert len(reads) == 1
    assert await Registrant.all().count() == 4


async def test_the_join_page_follows_the_session(client: httpx.AsyncClient) -> None:
    await make_webinar()
    response = await client.post("/w/growth-101/register", data=_form())
    token = response.headers["location"].split("/")[2]
    session = await WebinarSession.get()
    now = auth.utcnow()
    for starts_at, text in (
        (now + timedelta(minutes=10), "The session starts soon."),
        (now - timedelta(minutes=5), "The session is live now."),
        (now - timedelta(hours=3), "This session has ended."),
    ):
        await WebinarSession.filter(id=session.id).update(starts_at=starts_at)
        page = (await client.get(f"/j/{token}")).text
        assert text in page, text
        assert ("data-countdown" in page) is (starts_at > now)


async def test_watch_now_registration(client: httpx.AsyncClient) -> None:
    await make_webinar(
        kind="recurring", schedule={"repeat": "daily", "times": ["10:00"], "watch_now": True}
    )
    response = await client.post("/w/growth-101/register", data=_form(session="now"))
    assert response.status_code == 303, response.text
    token = response.headers["location"].split("/")[2]
    page = (await client.get(response.headers["location"])).text
    assert f'<a class="btn btn-primary" href="/j/{token}">Watch now</a>' in page
    assert "data-countdown" not in page
    assert "calendar.ics" not in page
    ics = await client.get(f"/j/{token}/calendar.ics")
    assert ics.status_code == 404
    _assert_token_headers(ics)


async def test_registering_twice_shows_a_masked_address_not_the_link(
    client: httpx.AsyncClient, mailer: MemoryMailer
) -> None:
    await make_webinar()
    first = await client.post("/w/growth-101/register", data=_form())
    assert first.status_code == 303
    token = first.headers["location"].split("/")[2]
    again = await client.post("/w/growth-101/register", data=_form(email="ADA@example.com "))
    assert again.status_code == 200
    assert "You are already registered" in again.text
    # Within ten minutes of the first email the link is not sent again.
    assert "a•••@example.com a short while ago" in again.text
    assert token not in again.text
    assert "/j/" not in again.text
    assert await Registrant.all().count() == 1
    await delivery.deliver_due(auth.utcnow())
    assert len(mailer.sent) == 1


async def test_registering_twice_later_emails_the_link_again(
    client: httpx.AsyncClient, mailer: MemoryMailer
) -> None:
    await make_webinar(language="de")
    await client.post("/w/growth-101/register", data=_form())
    await Registrant.all().update(link_sent_at=auth.utcnow() - timedelta(hours=1))
    again = await client.post("/w/growth-101/register", data=_form())
    assert again.status_code == 200
    assert (
        "Wir haben Ihnen Ihren persönlichen Teilnahmelink erneut an a•••@example.com" in again.text
    )
    await delivery.deliver_due(auth.utcnow())
    assert len(mailer.sent) == 2


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"name": ""}, "name", "Please enter your name."),
        ({"email": "ada@"}, "email", "Please enter a valid email address"),
        ({"name": "<script>alert(1)</script>"}, "name", "Please leave out the characters < and >."),
        ({"name": "A" * 10_000}, "name", "Please use at most"),
        ({"session": ""}, "session", "Please choose a session."),
        ({"company": ""}, "company", "This field is required."),
    ],
)
async def test_bad_input_is_shown_beside_its_field_and_nothing_is_stored(
    client: httpx.AsyncClient, changes: dict[str, str], field: str, message: str
) -> None:
    await make_webinar(fields=[{"key": "company", "label": "Company", "required": True}])
    data = _form(**{"company": "Analytical Engines", **changes})
    response = await client.post("/w/growth-101/register", data=data)
    assert response.status_code == 422
    page = response.text
    assert _field_error(page, field).startswith(message)
    assert "data-error-summary" in page
    assert 'role="alert"' in page
    assert f'href="#reg-{field if field != "session" else "session-0"}"' in page
    if field != "session":
        assert re.search(rf'id="reg-{field}"[^>]*aria-invalid="true"', page)
        assert re.search(rf'id="reg-{field}"[^>]*aria-describedby="[^"]*reg-{field}-error"', page)
    # What the visitor typed comes back (escaped), in the same zone, without a reload.
    for key in ("name", "email", "company"):
        if data[key] and len(data[key]) < 1000:
            assert f'id="reg-{key}" name="{key}" value="{html.escape(data[key])}"' in page, key
    assert "<script>alert" not in page
    assert 'name="timezone" value="America/New_York"' in page
    assert "data-zone-explicit" in page
    assert response.headers["cache-control"] == "no-store"
    assert await Contact.all().count() == 0
    assert await Registrant.all().count() == 0
    assert await WebinarSession.all().count() == 0


async def test_the_honeypot_is_never_sent_back(client: httpx.AsyncClient) -> None:
    await make_webinar()
    response = await client.post(
        "/w/growth-101/register", data=_form(website="http://spam.example")
    )
    assert response.status_code == 422
    assert "spam.example" not in response.text
    assert 'name="website" value=""' in response.text
    assert 'value="Ada Lovelace"' in response.text
    assert await Registrant.all().count() == 0


async def test_an_oversized_form_is_refused(client: httpx.AsyncClient) -> None:
    await make_webinar()
    response = await client.post("/w/growth-101/register", data=_form(name="A" * 70_000))
    assert response.status_code == 413
    assert await Contact.all().count() == 0


async def test_other_forms_still_need_their_csrf_token(client: httpx.AsyncClient) -> None:
    await make_webinar()
    client.cookies.clear()
    assert (await client.post("/login", data={"email": "a@example.com"})).status_code == 403
    assert (await client.post("/w/growth-101/register", data=_form())).status_code == 303


# --- embed ---------------------------------------------------------------------------------------


async def test_the_embed_may_be_framed_by_any_site(client: httpx.AsyncClient) -> None:
    await make_webinar()
    response = await client.get("/w/growth-101/embed?tz=UTC&utm_source=partner")
    assert response.status_code == 200
    csp = response.headers["content-security-policy"]
    assert "frame-ancestors *" in csp
    assert "frame-ancestors 'none'" not in csp
    assert "script-src 'self'" in csp
    assert "x-frame-options" not in response.headers
    page = response.text
    assert '<input type="hidden" name="embed" value="1">' in page
    assert 'action="/w/growth-101/embed"' in page  # the zone switch stays in the frame
    assert "First Speaker" not in page  # only the form
    assert '<input type="hidden" name="utm_source" value="partner">' in page

    refused = await client.post("/w/growth-101/register", data=_form(email="nope", embed="1"))
    assert refused.status_code == 422
    assert "frame-ancestors *" in refused.headers["content-security-policy"]
    assert '<input type="hidden" name="embed" value="1">' in refused.text
    assert "First Speaker" not in refused.text

    done = await client.post("/w/growth-101/register", data=_form(embed="1"))
    assert done.status_code == 200
    assert "frame-ancestors *" in done.headers["content-security-policy"]
    link = re.search(r'<a class="btn btn-primary" href="(/j/[^"]+/registered)" ([^>]*)>', done.text)
    assert link is not None
    assert 'target="_blank"' in link.group(2)
    assert 'rel="noopener"' in link.group(2)
    assert (await client.get(link.group(1))).status_code == 200

    # Every other page keeps refusing to be framed, the token pages above all.
    thanks = await client.get(link.group(1))
    assert "frame-ancestors 'none'" in thanks.headers["content-security-policy"]
    assert thanks.headers["x-frame-options"] == "DENY"


# --- token pages ---------------------------------------------------------------------------------


def _assert_token_headers(response: httpx.Response) -> None:
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["referrer-policy"] == "no-referrer"
    assert response.headers["x-robots-tag"] == "noindex"


async def test_unknown_tokens_are_not_found(client: httpx.AsyncClient) -> None:
    for path in ("/j/nope", "/j/nope/registered", "/j/nope/calendar.ics", "/j/" + "x" * 300):
        response = await client.get(path, headers={"accept-language": "de"})
        assert response.status_code == 404, path
        assert "Seite nicht gefunden" in response.text
        _assert_token_headers(response)


async def test_german_thank_you_page(client: httpx.AsyncClient) -> None:
    await make_webinar(language="de")
    await Webinar.filter(slug="growth-101").update(landing={})
    response = await client.post("/w/growth-101/register", data=_form(timezone="Europe/Berlin"))
    page = (await client.get(response.headers["location"])).text
    assert '<html lang="de">' in page
    assert "<h1>Sie sind angemeldet</h1>" in page
    assert "Ihr persönlicher Teilnahmelink" in page
    assert "Zum Kalender hinzufügen" in page
    assert "Zeitzone: Europe/Berlin (UTC+0" in page
    assert re.search(r"Beginnt in \d+ (Tagen|Wochen|Monat)", page)
    assert any(day in page for day in GERMAN_WEEKDAYS)
    assert "10:00" in page


# --- the editor's preview ------------------------------------------------------------------------


def _request() -> Request:
    return Request(
        {
            "type": "http",
            "method": "GET",
            "path": "/admin/webinars/preview",
            "headers": [],
            "query_string": b"",
            "state": {"csrf_token": "t"},
        }
    )


async def test_preview_of_an_unsaved_webinar(database: Settings) -> None:
    del database
    webinar = Webinar(
        slug="not-saved",
        title="Unsaved",
        language="de",
        theme={"template": "minimal", "primary": "#be123c"},
        landing={"headline": "Fresh headline"},
    )
    presenters = [Presenter(name="Pat Preview", position=0)]
    response = await landing_response(_request(), webinar, presenters, preview=True)
    assert response.status_code == 200
    page = bytes(response.body).decode()
    assert "template-minimal" in page
    assert "<h1>Fresh headline</h1>" in page
    assert "Vorschau" in page
    assert "Pat Preview" in page
    assert "Legen Sie einen Zeitplan an" in page
    assert "p=be123c" in page
    assert await Webinar.all().count() == 0


async def test_preview_shows_real_sessions_with_the_form_disabled(database: Settings) -> None:
    del database
    webinar = await make_webinar(status=WebinarStatus.DRAFT)
    response = await landing_response(_request(), webinar, [], preview=True)
    page = bytes(response.body).decode()
    assert '<fieldset class="plain" disabled>' in page
    assert _session_values(page) == [_start().isoformat()]
    assert '<p class="preview-banner" role="note">' in page
    assert response.headers["cache-control"] == "no-store"


# --- translations --------------------------------------------------------------------------------


def _message_id(message: object) -> str | tuple[str, str]:
    """A message id, or (singular, plural), from what an extractor found."""
    if isinstance(message, str):
        return message
    assert isinstance(message, tuple | list), message
    strings = [part for part in message if isinstance(part, str)]
    return strings[0] if len(strings) == 1 else (strings[0], strings[1])


def _messages() -> set[str | tuple[str, str]]:
    found: set[str | tuple[str, str]] = set()
    env = environment("en")
    for path in sorted(PUBLIC_TEMPLATES.glob("*.html")):
        for _line, _function, message in extract_from_ast(env.parse(path.read_text())):
            found.add(_message_id(message))
    keywords = {"gettext": (2,), "ngettext": (2, 3)}
    for module in ("landing.py", "join_pages.py", "unsubscribe_pages.py"):
        with (ROOT / "app" / "web" / module).open("rb") as handle:
            for found_at in extract_python(handle, keywords, [], {}):
                found.add(_message_id(found_at[2]))
    return found


def test_every_page_message_has_a_german_translation() -> None:
    # The unsubscribe page keeps its messages in a catalogue of its own.
    catalogues = []
    for name in ("pages.po", "unsubscribe.po"):
        with Path(ROOT / "app" / "translations" / "de" / name).open("rb") as handle:
            catalogues.append(read_po(handle, locale="de"))
    messages = _messages()
    assert len(messages) > 50
    missing = []
    for message in messages:
        key = message[0] if isinstance(message, tuple) else message
        entry = next((found for c in catalogues if (found := c.get(key)) is not None), None)
        translated = (
            entry is not None
            and not entry.fuzzy
            and all(entry.string if isinstance(entry.string, tuple) else (entry.string,))
        )
        if not translated:
            missing.append(message)
    assert missing == []
    assert i18n.ngettext("de", "Presenter", "Presenters", 2) == "Referenten"


def test_mask_email() -> None:
    assert mask_email("ada@example.com") == "a•••@example.com"
    assert mask_email("x@y.org") == "x•••@y.org"
    assert mask_email("broken") == "•••"


async def test_landing_pages_are_shared_briefly_and_dropped_after_an_edit(
    client: httpx.AsyncClient,
) -> None:
    webinar = await make_webinar()
    first = await client.get("/w/growth-101?tz=Asia/Tokyo")
    assert first.status_code == 200
    assert len(landing_pages) == 1
    # A change that did not go through this process's editor shows after the short TTL.
    await Webinar.filter(id=webinar.id).update(title="Renamed elsewhere")
    again = await client.get("/w/growth-101?tz=Asia/Tokyo")
    assert again.text == first.text
    assert again.headers["content-type"] == first.headers["content-type"]
    assert 'name="csrf_token"' not in again.text
    # Another zone, another page; an edit drops them all.
    other = await client.get("/w/growth-101?tz=Europe/Berlin")
    assert "Renamed elsewhere" in other.text
    landing_pages.clear()
    assert "Renamed elsewhere" in (await client.get("/w/growth-101?tz=Asia/Tokyo")).text
    # Pages that are not a plain 200 are never kept.
    await Webinar.filter(id=webinar.id).update(status=WebinarStatus.DRAFT)
    landing_pages.clear()
    assert (await client.get("/w/growth-101")).status_code == 404
    assert len(landing_pages) == 0


def test_the_page_cache_expires_and_stays_bounded() -> None:
    cache = PageCache(ttl=0.05, size=2)
    for key in ("a", "b", "c"):
        cache.put(key, HTMLResponse(f"<p>{key}</p>"))
    assert cache.get("a") is None  # the least recently used went first
    hit = cache.get("c")
    assert hit is not None
    assert hit.body == b"<p>c</p>"
    assert hit.headers["content-length"] == "8"
    assert hit.headers["content-type"].startswith("text/html")
    clock.sleep(0.06)
    assert cache.get("c") is None
    cache.put("d", HTMLResponse("no", status_code=422))
    assert cache.get("d") is None


async def test_a_webinar_unpublished_a_moment_ago_takes_no_more_registrations(
    client: httpx.AsyncClient,
) -> None:
    webinar = await make_webinar()
    first = await client.post("/w/growth-101/register", data=_form())
    assert first.status_code == 303
    # Unpublished from another process: this one still holds the webinar for a moment.
    await Webinar.filter(id=webinar.id).update(status=WebinarStatus.DRAFT)
    again = await client.post("/w/growth-101/register", data=_form(email="grace@example.com"))
    assert again.status_code == 404
    assert await Registrant.all().count() == 1


async def test_a_cross_site_registration_gets_no_csrf_cookie(client: httpx.AsyncClient) -> None:
    await make_webinar()
    client.cookies.clear()
    answer = await client.post("/w/growth-101/register", data=_form())
    assert answer.status_code == 303
    assert "set-cookie" not in answer.headers
    # A page visit still gets one, for the forms on our own pages.
    page = await client.get("/w/growth-101")
    assert "encore_csrf=" in page.headers.get("set-cookie", "")
