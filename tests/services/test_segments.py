"""Segments: each rule alone and together, the editor's checks, the CSV export, and a segment as
the audience of a follow-up email (membership judged at sending time, in bulk per batch)."""

from __future__ import annotations

import csv
import io
from collections.abc import Collection
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

import pytest

from app.models import (
    Account,
    Audience,
    Contact,
    EmailState,
    EmailStep,
    Interaction,
    InteractionResponse,
    OutboxMessage,
    PlannedEmail,
    Registrant,
    Segment,
    StepKind,
    Webinar,
    WebinarSession,
)
from app.services import delivery, mail, segment_forms, segments, sequences
from app.services.content import FormErrors
from app.settings import Settings
from tests.services.test_people import NOW, attend, make_contact, make_webinar, register

FIELDS = [
    {"key": "role", "label": "Your role", "type": "text"},
    {"key": "newsletter", "label": "Send me news", "type": "checkbox"},
]


@dataclass
class World:
    """Two webinars, a poll and a quiz, five people (see `world`)."""

    onboarding: Webinar
    advanced: Webinar
    poll: Interaction
    quiz: Interaction
    people: dict[str, Contact]


async def answer(registrant: Registrant, interaction: Interaction, value: Any) -> None:
    session = await WebinarSession.get(id=registrant.session_id)
    await InteractionResponse.create(
        interaction=interaction, session=session, registrant=registrant, answer=value
    )


@pytest.fixture
async def world(database: Settings) -> World:
    """Who did what.

    ann@acme: Onboarding (10 days ago) attended, watched 80%, clicked the offer, poll "Pro",
        role CTO, newsletter yes; registered 15 days ago.
    bob@acme: Onboarding missed; role " cto "; registered 12 days ago.
    cat@beta: Onboarding attended, watched 30%, poll "Team", quiz a+c (registered 11 days
        ago); Advanced (40 days ago) attended, watched all, clicked the offer (registered 50).
    dan@gmail: Onboarding's next session (in 5 days); registered a day ago.
    eve@beta: Advanced missed; registered 45 days ago.
    """
    onboarding = await make_webinar("Onboarding", video_seconds=1000, fields=FIELDS)
    advanced = await make_webinar("Advanced", video_seconds=2000)
    poll = await Interaction.create(
        webinar=onboarding,
        kind="poll",
        title="Which plan?",
        config={"options": ["Free", "Pro", "Team"], "multiple": False},
        opens_at_seconds=60,
    )
    quiz = await Interaction.create(
        webinar=onboarding,
        kind="quiz",
        title="Which are colours?",
        config={"options": ["red", "ten", "blue"], "correct": [0, 2], "multiple": True},
        opens_at_seconds=90,
    )
    first, later, past = NOW - timedelta(days=10), NOW + timedelta(days=5), NOW - timedelta(40)
    ann = await make_contact("ann@acme.example", "Ann")
    held = await register(
        ann,
        onboarding,
        first,
        answers={"role": "CTO", "newsletter": True},
        registered_at=NOW - timedelta(days=15),
    )
    await attend(held, watched=800, clicked_offer=True)
    await answer(held, poll, 1)
    bob = await make_contact("bob@acme.example", "Bob")
    await register(
        bob, onboarding, first, answers={"role": " cto "}, registered_at=NOW - timedelta(days=12)
    )
    cat = await make_contact("cat@beta.example", "Cat")
    held = await register(cat, onboarding, first, registered_at=NOW - timedelta(days=11))
    await attend(held, watched=300)
    await answer(held, poll, 2)
    await answer(held, quiz, [0, 2])
    held = await register(cat, advanced, past, registered_at=NOW - timedelta(days=50))
    await attend(held, watched=2000, clicked_offer=True)
    dan = await make_contact("dan@gmail.com", "Dan")
    await register(dan, onboarding, later, registered_at=NOW - timedelta(days=1))
    eve = await make_contact("eve@beta.example", "Eve")
    await register(eve, advanced, past, registered_at=NOW - timedelta(days=45))
    return World(
        onboarding,
        advanced,
        poll,
        quiz,
        {"ann": ann, "bob": bob, "cat": cat, "dan": dan, "eve": eve},
    )


async def names_of(
    world: World, rules: segments.Rules, among: Collection[int] | None = None
) -> set[str]:
    found = await segments.members(rules, now=NOW, among=among)
    return {name for name, contact in world.people.items() if contact.id in found}


R = segments.Rules
SLY = '\'=HYPERLINK("http://evil.example","x")'  # as exported: a spreadsheet shows it as text


async def test_each_rule_alone(world: World) -> None:
    onboarding, advanced = world.onboarding.id, world.advanced.id
    assert await names_of(world, R()) == {"ann", "bob", "cat", "dan", "eve"}
    assert await names_of(world, R(webinar_id=advanced)) == {"cat", "eve"}
    assert await names_of(world, R(attendance="attended")) == {"ann", "cat"}
    assert await names_of(world, R(attendance="attended", webinar_id=advanced)) == {"cat"}
    # Dan's session has not started: he has not missed it (yet).
    assert await names_of(world, R(attendance="missed")) == {"bob", "eve"}
    assert await names_of(world, R(attendance="missed", webinar_id=onboarding)) == {"bob"}
    assert await names_of(world, R(min_watch_percent=50)) == {"ann", "cat"}
    assert await names_of(world, R(min_watch_percent=80, webinar_id=onboarding)) == {"ann"}
    assert await names_of(world, R(min_watch_percent=81, webinar_id=onboarding)) == set()
    assert await names_of(world, R(min_watch_percent=30, webinar_id=onboarding)) == {"ann", "cat"}
    assert await names_of(world, R(interaction_id=world.poll.id, option=1)) == {"ann"}
    assert await names_of(world, R(interaction_id=world.poll.id, option=0)) == set()
    assert await names_of(world, R(interaction_id=world.quiz.id, option=2)) == {"cat"}
    assert await names_of(world, R(clicked_offer=True)) == {"ann", "cat"}
    assert await names_of(world, R(clicked_offer=True, webinar_id=onboarding)) == {"ann"}
    assert await names_of(world, R(field_key="role", field_value="CTO")) == {"ann", "bob"}
    assert await names_of(world, R(field_key="role")) == {"ann", "bob"}  # any answer
    assert await names_of(world, R(field_key="newsletter", field_value="yes")) == {"ann"}
    assert await names_of(world, R(field_key="newsletter", field_value="no")) == set()
    assert await names_of(world, R(account="beta.example")) == {"cat", "eve"}
    day = (NOW - timedelta(days=10)).date()
    assert await names_of(world, R(start=day, end=day)) == {"ann", "bob", "cat"}
    assert await names_of(world, R(end=day - timedelta(days=1))) == {"cat", "eve"}
    since = (NOW - timedelta(days=12)).date()
    assert await names_of(world, R(date_of="registration", start=since)) == {"bob", "cat", "dan"}


async def test_one_registration_must_meet_every_condition(world: World) -> None:
    onboarding = world.onboarding.id
    both = R(webinar_id=onboarding, attendance="attended", min_watch_percent=50)
    assert await names_of(world, both) == {"ann"}
    # Cat watched all of Advanced but 30% of Onboarding.
    assert await names_of(world, R(webinar_id=onboarding, min_watch_percent=90)) == set()
    # Cat answered "Team" in Onboarding but clicked the offer in Advanced only.
    team = R(interaction_id=world.poll.id, option=2, clicked_offer=True)
    assert await names_of(world, team) == set()
    assert await names_of(world, R(account="acme.example", attendance="missed")) == {"bob"}


async def test_an_account_rule_follows_the_account_its_domain_belongs_to(world: World) -> None:
    merged = await Account.create(name="Acme Group", domains=["acme.example", "beta.example"])
    assert await names_of(world, R(account=str(merged.id))) == {"ann", "bob", "cat", "eve"}
    assert await names_of(world, R(account="beta.example")) == {"ann", "bob", "cat", "eve"}
    await merged.delete()
    assert await names_of(world, R(account=str(merged.id))) == set()


async def test_membership_among_some_contacts_only(world: World) -> None:
    people = world.people
    among = [people["ann"].id, people["bob"].id, people["eve"].id]
    assert await names_of(world, R(), among) == {"ann", "bob", "eve"}
    assert await names_of(world, R(attendance="attended"), among) == {"ann"}
    assert await names_of(world, R(min_watch_percent=10), [people["cat"].id]) == {"cat"}


async def test_everyone_and_some_contacts_agree_for_rules_about_visits(world: World) -> None:
    # Rules that need a visit read the visits first for everyone; among some contacts they
    # filter the registrations first. Both must give the same members.
    onboarding, advanced = world.onboarding.id, world.advanced.id
    day = (NOW - timedelta(days=10)).date()
    everyone = [contact.id for contact in world.people.values()]
    for rules in (
        R(attendance="attended"),
        R(clicked_offer=True),
        R(min_watch_percent=50),
        R(webinar_id=onboarding, attendance="attended", min_watch_percent=80),
        R(webinar_id=advanced, clicked_offer=True),
        R(account="beta.example", attendance="attended"),
        R(start=day, end=day, clicked_offer=True),
        R(date_of="registration", start=day, min_watch_percent=10),
    ):
        assert await names_of(world, rules) == await names_of(world, rules, everyone), rules


def test_field_values_match_as_people_would_read_them() -> None:
    assert segments.field_matches("  Chief   Officer ", "chief officer")
    assert segments.field_matches(True, "Yes")
    assert segments.field_matches(False, "no")
    assert not segments.field_matches(False, "")  # an unticked box is no answer
    assert segments.field_matches(["a", "B"], "b")
    assert not segments.field_matches("", "")
    assert not segments.field_matches(None, "x")
    assert segments.chose([0, 2], 2)
    assert segments.chose(1, 1)
    assert not segments.chose(True, 1)
    assert not segments.chose("1", 1)


# --- The editor's checks ----------------------------------------------------------------------


async def test_good_rules_are_read_and_stored_and_read_back(world: World) -> None:
    account = await Account.create(name="Acme Group", domains=["acme.example"])
    form = {
        "name": "Engaged",
        "webinar": str(world.onboarding.id),
        "attendance": "attended",
        "watch": "50 %",
        "answer": f"{world.poll.id}:1",
        "clicked_offer": "on",
        "field_key": "role",
        "field_value": "  CTO ",
        "account": "acme group",
        "date_of": "registration",
        "start": "2030-05-01",
        "end": "2030-05-31",
    }
    rules = await segment_forms.check_rules(form)
    assert rules == R(
        webinar_id=world.onboarding.id,
        attendance="attended",
        min_watch_percent=50,
        interaction_id=world.poll.id,
        option=1,
        clicked_offer=True,
        field_key="role",
        field_value="CTO",
        account=str(account.id),
        date_of="registration",
        start=date(2030, 5, 1),
        end=date(2030, 5, 31),
    )
    assert isinstance(rules, segments.Rules)
    assert segments.rules_from(segments.rules_to_json(rules)) == rules
    segment = await Segment.create(name="Engaged", rules=segments.rules_to_json(rules))
    shown = await segment_forms.form_of(segment)
    assert shown == {**form, "watch": "50", "field_value": "CTO", "account": "Acme Group"}
    assert await segment_forms.describe(rules) == [
        "Webinar: Onboarding",
        "Registration date: 2030-05-01 to 2030-05-31",
        "Attended",
        "Watched at least 50%",
        "Answered “Pro” in “Which plan?”",
        "Clicked the offer",
        "Your role: “CTO”",
        "Account: Acme Group",
    ]
    assert await segment_forms.describe(R()) == ["Everyone who registered"]


@pytest.mark.parametrize(
    ("form", "errors"),
    [
        ({"watch": "150"}, {"watch": "Enter a whole percentage from 1 to 100."}),
        ({"watch": "half"}, {"watch": "Enter a whole percentage from 1 to 100."}),
        (
            {"watch": "20", "attendance": "missed"},
            {"watch": "Someone who missed the session watched nothing: clear one."},
        ),
        ({"attendance": "maybe"}, {"attendance": "Choose attended, missed, or either."}),
        ({"start": "2030-13-01"}, {"start": "Enter a date like 2025-03-31."}),
        (
            {"start": "2030-05-02", "end": "2030-05-01"},
            {"end": "The end date comes before the start date."},
        ),
        (
            {"webinar": "987654"},
            {"webinar": "That webinar does not exist (any more): choose another."},
        ),
        (
            {"answer": "987654:0"},
            {"answer": "That poll or quiz does not exist (any more): choose another."},
        ),
        (
            {"account": "gmail.com"},
            {"account": "gmail.com is a free-mail provider, not a company's domain."},
        ),
        (
            {"account": "not a domain"},
            {"account": "Enter an account's name or one of its domains (like example.com)."},
        ),
        ({"field_value": "x"}, {"field_key": "Choose the registration field this value is for."}),
        (
            {"field_key": "shoe_size"},
            {"field_key": "No webinar asks this field (any more): choose another."},
        ),
        ({"date_of": "birthday"}, {"date_of": "Choose the session date or the registration date."}),
    ],
)  # fmt: skip
async def test_bad_rules_are_refused_field_by_field(
    world: World, form: dict[str, str], errors: dict[str, str]
) -> None:
    checked = await segment_forms.check_rules(form)
    assert isinstance(checked, FormErrors)
    assert checked.errors == errors


async def test_an_answer_must_belong_to_the_chosen_webinar(world: World) -> None:
    form = {"webinar": str(world.advanced.id), "answer": f"{world.poll.id}:0"}
    checked = await segment_forms.check_rules(form)
    assert isinstance(checked, FormErrors)
    assert checked.errors == {
        "answer": "This poll belongs to another webinar than the one chosen above."
    }
    removed = await segment_forms.check_rules({"answer": f"{world.poll.id}:3"})
    assert isinstance(removed, FormErrors)
    assert removed.errors == {"answer": "That option is no longer in the poll: choose another."}


async def test_names_are_required_short_and_unique(world: World) -> None:
    taken = await Segment.create(name="Trial users", rules={})
    for typed, problem in (
        ("", "Name the segment."),
        ("x" * 201, "Keep the name under 200 characters."),
        ("  TRIAL   users ", "Another segment has this name: choose another."),
    ):
        errors = FormErrors()
        await segment_forms.check_name(typed, None, errors)
        assert errors.errors == {"name": problem}
    errors = FormErrors()
    assert await segment_forms.check_name("Trial users", taken, errors) == "Trial users"
    assert not errors


# --- Export -----------------------------------------------------------------------------------


async def test_the_export_lists_members_and_neutralises_formulas(world: World) -> None:
    sly = await make_contact("sly@acme.example", SLY[1:])
    await register(sly, world.onboarding, NOW - timedelta(days=10))
    await Account.create(name="+Acme -Group", domains=["acme.example"])
    found = await segments.members(R(webinar_id=world.onboarding.id), now=NOW)
    body = await segments.export_csv(found, now=NOW)
    assert body.startswith("\ufeff".encode())
    rows = list(csv.reader(io.StringIO(body.decode("utf-8-sig"))))
    assert rows[0] == ["email", "name", "company", "registrations", "attended", "watch %", "score"]
    assert rows[1:] == [
        # 30·1/1 + 30·0.8 + 15·0 + 10·0 + 15·1/2 = 30 + 24 + 7.5 = 61.5 -> 62
        ["ann@acme.example", "Ann", "'+Acme -Group", "1", "1", "80", "62"],
        ["bob@acme.example", "Bob", "'+Acme -Group", "1", "0", "", "0"],
        # Onboarding: 30% watched; Advanced (40 days ago): all of it and the offer:
        # 30·2/2 + 30·(0.3+1)/2 + 15·1/2 = 30 + 19.5 + 7.5 = 57; watch % (30+100)/2 = 65
        ["cat@beta.example", "Cat", "beta.example", "2", "2", "65", "57"],
        ["dan@gmail.com", "Dan", "", "1", "0", "", "0"],
        ["sly@acme.example", SLY, "'+Acme -Group", "1", "0", "", "0"],
    ]  # fmt: skip


async def test_the_preview_shows_the_newest_members_with_their_company(world: World) -> None:
    found = await segments.members(R(account="acme.example"), now=NOW)
    shown = await segments.preview(found, now=NOW)
    assert [(m.contact.email, m.company, m.account_key) for m in shown] == [
        ("bob@acme.example", "acme.example", "acme.example"),
        ("ann@acme.example", "acme.example", "acme.example"),
    ]


# --- A segment as the audience of a follow-up -------------------------------------------------


@pytest.fixture
def outbox() -> None:
    """Messages land in the outbox table."""
    mail.use_mailer(None)


async def segment_follow_up(webinar: Webinar, segment: Segment) -> EmailStep:
    """The webinar's only enabled step: a follow-up an hour after the end, to the segment."""
    await sequences.ensure_steps(webinar)
    await EmailStep.filter(webinar_id=webinar.id).update(enabled=False)
    form = {
        "kind": "follow_up",
        "subject": "For the engaged",
        "body": "Hello {first_name}",
        "amount": "1",
        "unit": "hours",
        "audience": "segment",
        "segment": str(segment.id),
        "enabled": "on",
    }
    checked = sequences.check_step(form)
    assert isinstance(checked, sequences.StepInput)
    saved = await sequences.save_step(webinar, checked, None)
    assert isinstance(saved, EmailStep)
    return saved


async def test_a_segment_follow_up_goes_to_those_in_it_when_sent(
    world: World, outbox: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    webinar = world.onboarding
    # Half of Onboarding: Cat watched all of another webinar, but 30% of this one.
    half = R(webinar_id=webinar.id, min_watch_percent=50)
    segment = await Segment.create(name="Watched half", rules=segments.rules_to_json(half))
    step = await segment_follow_up(webinar, segment)
    assert sequences.describe(step, segment_name=segment.name) == (
        "1 hour after the end, to the segment “Watched half”"
    )
    ends = NOW - timedelta(days=10) + timedelta(seconds=1000)
    await sequences.plan_pending(ends)
    planned = await PlannedEmail.filter(kind="step", state=EmailState.SCHEDULED).order_by("due_at")
    # ann, bob, cat after the first session; dan after the next one, in five days
    assert [email.to_email for email in planned][-1] == "dan@gmail.com"
    assert len(planned) == 4
    # Bob watches a replay before the follow-up is due: he belongs to the segment by then.
    bob = await Registrant.get(contact_id=world.people["bob"].id, webinar_id=webinar.id)
    await attend(bob, watched=600)
    calls: list[Collection[int] | None] = []
    counted = segments.members

    async def counting(
        rules: segments.Rules, *, now: datetime, among: Collection[int] | None = None
    ) -> set[int]:
        calls.append(among)
        return await counted(rules, now=now, among=among)

    monkeypatch.setattr(segments, "members", counting)
    outcome = await delivery.deliver_due(ends + timedelta(hours=1, minutes=1))
    assert outcome == {EmailState.SENT: 2, EmailState.CANCELLED: 1}
    assert sorted(m.recipients for m in await OutboxMessage.all()) == [
        "ann@acme.example",
        "bob@acme.example",
    ]
    cat = await PlannedEmail.get(to_email="cat@beta.example")
    assert (cat.state, cat.error) == (EmailState.CANCELLED, "not in the segment now")
    # One membership question for the whole batch, about its people only.
    assert len(calls) == 1
    assert set(calls[0] or ()) == {
        c.id for n, c in world.people.items() if n in {"ann", "bob", "cat"}
    }


async def test_a_follow_up_whose_segment_was_deleted_sends_nothing(
    world: World, outbox: None
) -> None:
    webinar = world.onboarding
    segment = await Segment.create(name="Everyone", rules={})
    step = await segment_follow_up(webinar, segment)
    ends = NOW - timedelta(days=10) + timedelta(seconds=1000)
    await sequences.plan_pending(ends)
    await segments.delete(segment)
    await step.refresh_from_db()
    assert sequences.segment_of(step) is None
    assert step.audience == Audience.SEGMENT
    assert sequences.describe(step) == "1 hour after the end, to a deleted segment (sends nothing)"
    outcome = await delivery.deliver_due(ends + timedelta(hours=1, minutes=1))
    assert outcome == {EmailState.CANCELLED: 3}
    reasons: list[Any] = await PlannedEmail.filter(state=EmailState.CANCELLED).values_list(
        "error", flat=True
    )
    assert set(reasons) == {"its segment was deleted"}
    assert await OutboxMessage.all().count() == 0


def test_a_segment_follow_up_needs_its_segment() -> None:
    checked = sequences.check_step(
        {
            "kind": StepKind.FOLLOW_UP.value,
            "subject": "Hi",
            "body": "Hello",
            "amount": "1",
            "unit": "days",
            "audience": "segment",
            "segment": "",
        }
    )
    assert isinstance(checked, FormErrors)
    assert checked.errors == {"segment": "Choose the segment that gets this follow-up."}
    other = sequences.check_step(
        {"kind": "follow_up", "subject": "Hi", "body": "Hello", "amount": "1", "unit": "days",
         "audience": "missed", "segment": "12"}
    )  # fmt: skip
    assert isinstance(other, sequences.StepInput)
    assert other.segment_id is None  # only a segment audience keeps one
