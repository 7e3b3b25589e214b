"""Contacts across webinars: the engagement score by hand-computed examples, profiles, accounts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from app.models import (
    Account,
    Attendance,
    ChatMessage,
    Contact,
    EmailState,
    Interaction,
    InteractionResponse,
    PlannedEmail,
    Registrant,
    Role,
    Video,
    Webinar,
    WebinarSession,
)
from app.services import accounts, crypto, people, profiles, sequences
from app.services.content import FormErrors
from app.settings import Settings
from tests.conftest import make_user

NOW = datetime(2030, 6, 1, 12, 0, tzinfo=UTC)


# --- Builders shared by the people, segment and page tests ------------------------------------


async def make_webinar(
    title: str, *, video_seconds: float | None = None, fields: list[dict[str, Any]] | None = None
) -> Webinar:
    """A webinar, with a video of that length when given."""
    video = None
    if video_seconds is not None:
        video = await Video.create(
            title=title, source_key=f"uploads/{title}", duration_seconds=video_seconds
        )
    slug = f"w{await Webinar.all().count() + 1}"
    return await Webinar.create(
        slug=slug, title=title, video=video, registration_fields=fields or []
    )


async def make_contact(email: str, name: str = "") -> Contact:
    """A contact with its company domain taken from the address, as registration does."""
    return await Contact.create(email=email, name=name, company_domain=email.rpartition("@")[2])


async def register(
    contact: Contact,
    webinar: Webinar,
    starts_at: datetime | None,
    *,
    answers: dict[str, Any] | None = None,
    utm: dict[str, str] | None = None,
    referrer: str = "",
    registered_at: datetime | None = None,
) -> Registrant:
    """A registration for a session starting at `starts_at` (None: no session)."""
    session = None
    if starts_at is not None:
        session = await WebinarSession.filter(webinar_id=webinar.id, starts_at=starts_at).first()
        if session is None:
            session = await WebinarSession.create(webinar=webinar, starts_at=starts_at)
    token = crypto.new_token()
    registrant = await Registrant.create(
        contact=contact,
        webinar=webinar,
        session=session,
        join_token_hash=crypto.hash_token(token),
        join_token_sealed=crypto.seal(token),
        answers=answers or {},
        utm=utm or {},
        referrer=referrer,
    )
    if registered_at is not None:
        await Registrant.filter(id=registrant.id).update(created_at=registered_at)
        registrant.created_at = registered_at
    return registrant


async def attend(
    registrant: Registrant,
    *,
    watched: float,
    joined: bool = True,
    clicked_offer: bool = False,
    chats: int = 0,
    answers: int = 0,
    last_seen_at: datetime | None = None,
) -> Attendance:
    """The Attendance row of a registrant in their session."""
    assert registrant.session_id is not None
    return await Attendance.create(
        webinar_id=registrant.webinar_id,
        session_id=registrant.session_id,
        registrant_id=registrant.id,
        contact_id=registrant.contact_id,
        first_join_at=(last_seen_at or NOW) if joined else None,
        last_seen_at=last_seen_at,
        watched_seconds=watched,
        furthest_seconds=watched,
        clicked_offer=clicked_offer,
        chat_messages=chats,
        responses=answers,
    )


# --- The score, by hand ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("inputs", "expected"),
    [
        # 30·3/4 + 30·(1+.5+.3)/3 + 15·3/5 + 10·5/5 + 15·1/2 = 22.5 + 18 + 9 + 10 + 7.5 = 67
        (people.ScoreInputs(4, 3, (1.0, 0.5, 0.3), 3, 7, 1), 67),
        # Everything at or past its cap: 30 + 30 + 15 + 10 + 15
        (people.ScoreInputs(2, 2, (1.0, 1.0), 9, 5, 2), 100),
        # 30·1/4 + 30·0.5 = 7.5 + 15 = 22.5: half rounds up
        (people.ScoreInputs(4, 1, (0.5,), 0, 0, 0), 23),
        # 30·1/3 + 30·(0.2) + 15·1/5 = 10 + 6 + 3 = 19
        (people.ScoreInputs(3, 1, (0.2,), 1, 0, 0), 19),
        # Registered, never came: 0
        (people.ScoreInputs(2, 0, (), 0, 0, 0), 0),
        # No registration in the window: 0, whatever else is counted
        (people.ScoreInputs(0, 0, (), 3, 3, 1), 0),
    ],
)
def test_the_score_adds_up_as_its_formula_says(inputs: people.ScoreInputs, expected: int) -> None:
    score = people.engagement_score(inputs)
    assert score.total == expected
    if inputs.registered:
        assert round(sum(part.points for part in score.parts), 6) == pytest.approx(
            expected, abs=0.5
        )
        assert [part.weight for part in score.parts] == [30, 30, 15, 10, 15]


def test_the_formula_shown_names_every_weight_and_cap() -> None:
    text = " ".join(people.SCORE_FORMULA)
    for words in ("30", "attended ÷ registered", "180 days", "up to 5", "up to 2", "100%"):
        assert words in text


async def test_a_contacts_score_counts_only_started_sessions_of_the_last_180_days(
    database: Settings,
) -> None:
    ann = await make_contact("ann@acme.example", "Ann Acme")
    first = await make_webinar("First", video_seconds=1000)
    second = await make_webinar("Second", video_seconds=2000)
    third = await make_webinar("Third")  # no video: an hour
    old = await make_webinar("Old", video_seconds=600)
    coming = await make_webinar("Coming", video_seconds=600)
    one = await register(ann, first, NOW - timedelta(days=10))
    await attend(one, watched=800, clicked_offer=True, chats=3, answers=2)
    two = await register(ann, second, NOW - timedelta(days=20))
    await attend(two, watched=500, chats=4, answers=4)
    await register(ann, third, NOW - timedelta(days=30))  # missed
    four = await register(ann, old, NOW - timedelta(days=200))
    await attend(four, watched=600, clicked_offer=True, chats=9, answers=9)
    await register(ann, coming, NOW + timedelta(days=5))

    facts = await people.registration_facts([ann.id])
    inputs = people.score_inputs(facts, NOW)
    assert inputs == people.ScoreInputs(
        registered=3,
        attended=2,
        watch_shares=(0.8, 0.25),
        answers=6,
        chat_messages=7,
        offer_sessions=1,
    )
    # 30·2/3 + 30·(0.8+0.25)/2 + 15·5/5 + 10·5/5 + 15·1/2 = 20 + 15.75 + 15 + 10 + 7.5 = 68.25
    assert people.engagement_score(inputs).total == 68
    summary = (await people.summaries([ann.id], NOW))[ann.id]
    assert (summary.registrations, summary.attended, summary.score) == (5, 3, 68)
    assert summary.watch_share == pytest.approx((0.8 + 0.25 + 1.0) / 3)


async def test_last_activity_is_the_latest_registration_or_moment_seen(
    database: Settings,
) -> None:
    webinar = await make_webinar("Talk")
    other = await make_webinar("Other talk")
    ann = await make_contact("ann@acme.example")
    held = await register(ann, webinar, NOW - timedelta(days=9), registered_at=NOW - timedelta(10))
    await attend(held, watched=60, last_seen_at=NOW - timedelta(days=9))
    await register(ann, other, None, registered_at=NOW - timedelta(days=12))
    bob = await make_contact("bob@acme.example")
    await register(bob, webinar, NOW - timedelta(days=9), registered_at=NOW - timedelta(days=3))
    latest = await people.last_activity([ann.id, bob.id, ann.id + bob.id + 1])
    assert latest == {ann.id: NOW - timedelta(days=9), bob.id: NOW - timedelta(days=3)}
    assert (await people.summaries([ann.id], NOW))[ann.id].last_activity == NOW - timedelta(9)


async def test_a_person_without_registrations_has_an_empty_summary(database: Settings) -> None:
    bob = await make_contact("bob@example.org")
    assert (await people.summaries([bob.id], NOW))[bob.id] == people.ContactSummary()


async def test_watching_longer_than_the_video_counts_as_all_of_it(database: Settings) -> None:
    ann = await make_contact("ann@acme.example")
    webinar = await make_webinar("Replay", video_seconds=100)
    held = await register(ann, webinar, NOW - timedelta(days=1))
    await attend(held, watched=250)  # watched the replay twice and a half
    [fact] = await people.registration_facts([ann.id])
    assert fact.watch_share == 1.0


# --- The contact list -----------------------------------------------------------------------


async def test_the_list_searches_email_and_name_and_pages(database: Settings) -> None:
    for number in range(people.PAGE_SIZE + 3):
        await make_contact(f"person{number:02d}@example.org", f"Person {number}")
    await make_contact("grace@navy.example", "Grace Hopper")
    page = await people.contact_page(query="", page=1, now=NOW)
    assert (page.total, page.pages, len(page.contacts)) == (people.PAGE_SIZE + 4, 2, 50)
    assert page.contacts[0].email == "grace@navy.example"  # newest first
    assert len((await people.contact_page(query="", page=2, now=NOW)).contacts) == 4
    found = await people.contact_page(query="HOPPER", page=1, now=NOW)
    assert [c.email for c in found.contacts] == ["grace@navy.example"]
    assert (await people.contact_page(query="navy.ex", page=9, now=NOW)).page == 1


# --- One profile ------------------------------------------------------------------------------


async def test_a_profile_shows_everything_about_a_person(database: Settings) -> None:
    fields = [
        {"key": "role", "label": "Your role", "type": "text"},
        {"key": "newsletter", "label": "Send me news", "type": "checkbox"},
    ]
    webinar = await make_webinar("Onboarding", video_seconds=1200, fields=fields)
    ann = await make_contact("ann@acme.example", "Ann Acme")
    starts = NOW - timedelta(days=2)
    held = await register(
        ann,
        webinar,
        starts,
        answers={"newsletter": True, "role": "CTO", "removed_field": "kept"},
        utm={"utm_source": "newsletter", "utm_campaign": "spring"},
        referrer="https://partner.example/post",
    )
    await attend(held, watched=900, clicked_offer=True, chats=1, answers=2)
    poll = await Interaction.create(
        webinar=webinar,
        kind="poll",
        title="Which plan?",
        config={"options": ["Free", "Pro", "Team"], "multiple": False},
        opens_at_seconds=60,
    )
    quiz = await Interaction.create(
        webinar=webinar,
        kind="quiz",
        title="Capital of France?",
        config={"options": ["Lyon", "Paris"], "correct": [1], "multiple": False},
        opens_at_seconds=120,
    )
    session = await WebinarSession.get(id=held.session_id)
    await InteractionResponse.create(interaction=poll, session=session, registrant=held, answer=2)
    await InteractionResponse.create(interaction=quiz, session=session, registrant=held, answer=0)
    await ChatMessage.create(session=session, registrant=held, body="How much is Pro?")
    staff = await make_user(Role.MODERATOR)
    await ChatMessage.create(session=session, registrant=held, staff=staff, body="49 a month")
    await ChatMessage.create(session=session, registrant=held, body="Welcome!", automatic=True)
    await sequences.ensure_steps(webinar)
    follow_up = (await sequences.steps_of(webinar))[-1]
    await PlannedEmail.create(
        kind="step",
        to_email=ann.email,
        registrant=held,
        due_at=starts + timedelta(hours=1),
        state=EmailState.SENT,
        sent_at=starts + timedelta(hours=1, seconds=5),
        message_id="<m1@example>",
        context={"step_id": follow_up.id, "session_id": session.id},
    )
    await PlannedEmail.create(
        kind="join_link", to_email=ann.email, registrant=held, due_at=starts, message_id="<m2@x>"
    )

    found = await profiles.profile(ann.id, NOW)
    assert found is not None
    [view] = found.registrations
    assert [(a.label, a.value) for a in view.answers] == [
        ("Your role", "CTO"),
        ("Send me news", "Yes"),
        ("removed_field", "kept"),
    ]
    assert view.source == [
        ("utm_campaign", "spring"),
        ("utm_source", "newsletter"),
        ("referrer", "https://partner.example/post"),
    ]
    assert view.state == "attended"
    [seen] = view.attendance
    assert (seen.watched_seconds, seen.watch_share, seen.clicked_offer) == (900, 0.75, True)
    assert [(i.title, i.answer, i.correct) for i in view.interactions] == [
        ("Which plan?", "Team", None),
        ("Capital of France?", "Lyon", False),
    ]
    assert [line.body for line in view.chat] == ["How much is Pro?"]  # theirs only
    assert [(e.what, e.state) for e in view.emails] == [
        ("Confirmation with the join link", "scheduled"),
        ("Follow-up: " + sequences.describe(follow_up).lower(), "sent"),
    ]
    # 30·1/1 + 30·0.75 + 15·2/5 + 10·1/5 + 15·1/2 = 30 + 22.5 + 6 + 2 + 7.5 = 68
    assert found.score.total == 68
    assert await profiles.profile(ann.id + 1000, NOW) is None


async def test_a_removed_option_or_step_is_still_described(database: Settings) -> None:
    poll = Interaction(kind="poll", title="P", config={"options": ["A"]})
    assert profiles.describe_answer(poll, [0, 3]) == ("A, option 3", None)
    assert profiles.describe_answer(Interaction(kind="nps", config={}), 9) == ("9 of 10", None)
    rating = Interaction(kind="rating", config={"scale": 5})
    assert profiles.describe_answer(rating, 4) == ("4 of 5", None)
    question = Interaction(kind="question", config={})
    assert profiles.describe_answer(question, "Is there a replay?") == ("Is there a replay?", None)


# --- Accounts ---------------------------------------------------------------------------------


async def test_people_group_by_domain_and_free_mail_groups_nowhere(database: Settings) -> None:
    onboarding = await make_webinar("Onboarding", video_seconds=600)
    other = await make_webinar("Other")
    # acme.example: two people, one attended onboarding.
    ann = await make_contact("ann@acme.example")
    await attend(await register(ann, onboarding, NOW - timedelta(days=3)), watched=300)
    await make_contact("al@acme.example")
    # beta.example: registered for onboarding, missed it.
    await register(await make_contact("bo@beta.example"), onboarding, NOW - timedelta(days=3))
    # gamma.example: registered for a session still to come.
    await register(await make_contact("gil@gamma.example"), onboarding, NOW + timedelta(days=3))
    # delta.example: attended another webinar only.
    dan = await make_contact("dan@delta.example")
    await attend(await register(dan, other, NOW - timedelta(days=1)), watched=10)
    # Free mail: attended, yet no account.
    await attend(
        await register(await make_contact("fay@gmail.com"), onboarding, NOW - timedelta(days=3)),
        watched=600,
    )
    rows = await accounts.account_rows(now=NOW, onboarding_webinar_id=onboarding.id)
    table = {row.key: (row.people, row.registered, row.attended, row.onboarding) for row in rows}
    assert table == {
        "acme.example": (2, 1, 1, "attended"),
        "beta.example": (1, 1, 0, "missed"),
        "gamma.example": (1, 1, 0, "upcoming"),
        "delta.example": (1, 1, 1, "none"),
    }
    assert rows[0].key == "acme.example"  # the most people first

    # Merging delta into acme: one account, the figures of both.
    delta = await accounts.resolve("delta.example")
    acme = await accounts.resolve("acme.example")
    assert delta is not None
    assert acme is not None
    merged = await accounts.merge_accounts(delta, acme)
    assert isinstance(merged, Account)
    assert (merged.name, merged.domains) == ("acme.example", ["acme.example", "delta.example"])
    rows = await accounts.account_rows(now=NOW, onboarding_webinar_id=onboarding.id)
    named = {row.key: (row.name, row.people, row.attended, row.onboarding) for row in rows}
    assert named[str(merged.id)] == ("acme.example", 3, 2, "attended")
    assert "delta.example" not in named
    assert "acme.example" not in named
    # A domain held by the row now resolves to it.
    again = await accounts.resolve("DELTA.example")
    assert again is not None
    assert again.key == str(merged.id)
    assert (await accounts.company_names(["delta.example", "gmail.com", ""])) == {
        "delta.example": "acme.example",
        "gmail.com": "",
        "": "",
    }


async def test_an_account_is_renamed_and_its_domains_checked(database: Settings) -> None:
    checked = accounts.check_account(
        {"name": "  Acme   GmbH ", "domains": "acme.example\n@acme.de, Bücher.example", "notes": ""}
    )
    assert checked == accounts.AccountInput(
        "Acme GmbH", ("acme.example", "acme.de", "xn--bcher-kva.example"), ""
    )
    errors = accounts.check_account({"name": "", "domains": "gmail.com not_a_domain"})
    assert isinstance(errors, FormErrors)
    assert errors.errors == {
        "name": "Enter the company's name.",
        "domains": "gmail.com is a free-mail provider: its people are not one company.",
    }
    bad = accounts.check_account({"name": "X", "domains": "not_a_domain 123"})
    assert isinstance(bad, FormErrors)
    assert bad.errors["domains"] == "“not_a_domain” is not a domain (like example.com)."

    assert isinstance(checked, accounts.AccountInput)
    acme = await accounts.save_account(checked, None)
    assert isinstance(acme, Account)
    beta = await accounts.save_account(accounts.AccountInput("Beta", ("beta.example",), ""), None)
    assert isinstance(beta, Account)
    taken = await accounts.save_account(
        accounts.AccountInput("Beta", ("beta.example", "acme.de"), "n"), beta
    )
    assert isinstance(taken, FormErrors)
    assert "acme.de belongs to the account “Acme GmbH”" in taken.errors["domains"]
    assert (await Account.get(id=beta.id)).domains == ["beta.example"]  # nothing changed

    found = await accounts.find("acme gmbh")
    assert isinstance(found, accounts.AccountRef)
    assert found.key == str(acme.id)
    assert await accounts.find("gmail.com") == (
        "gmail.com is a free-mail provider, not a company's domain."
    )
    await accounts.delete_account(acme)
    ref = await accounts.resolve("acme.de")
    assert ref is not None
    assert (ref.key, ref.row) == ("acme.de", None)
    assert await accounts.resolve("gmail.com") is None
    assert await accounts.resolve("99999") is None


async def test_an_accounts_people_come_with_their_attendance(database: Settings) -> None:
    webinar = await make_webinar("Kick-off", video_seconds=1000)
    ann = await make_contact("ann@acme.example", "Ann")
    await attend(await register(ann, webinar, NOW - timedelta(days=1)), watched=400)
    bob = await make_contact("bob@acme.example", "Bob")
    await register(bob, webinar, NOW - timedelta(days=1))
    ref = await accounts.resolve("acme.example")
    assert ref is not None
    listed = await accounts.account_people(ref, page=1, now=NOW)
    assert listed.total == 2
    assert [
        (p.contact.email, [(r.webinar, r.state, r.watch_share) for r in p.registrations])
        for p in listed.people
    ] == [
        ("ann@acme.example", [("Kick-off", "attended", 0.4)]),
        ("bob@acme.example", [("Kick-off", "missed", 0.0)]),
    ]
