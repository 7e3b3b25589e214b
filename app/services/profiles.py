"""One person's profile: every registration with what happened around it, and their score.

Read by the contact page; figures come from the Attendance rows like everywhere in `people`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from app.models import (
    Attendance,
    ChatMessage,
    Contact,
    EmailStep,
    Interaction,
    InteractionResponse,
    PlannedEmail,
    Registrant,
    Webinar,
    WebinarSession,
)
from app.services import content, interactions, sequences
from app.services.people import (
    ContactSummary,
    Score,
    ScoreInputs,
    engagement_score,
    last_activity,
    option_texts,
    registration_facts,
    registration_state,
    score_inputs,
    summarise,
    video_seconds,
    watch_share,
)


@dataclass(frozen=True)
class Answer:
    """A custom registration field's answer, labelled as on the form."""

    label: str
    value: str


@dataclass(frozen=True)
class SessionAttendance:
    """What they did in one session."""

    session_id: int
    starts_at: datetime | None
    first_join_at: datetime | None
    last_seen_at: datetime | None
    watched_seconds: float
    watch_share: float
    stayed_to_end: bool
    clicked_offer: bool
    downloads: int
    chat_messages: int
    responses: int


@dataclass(frozen=True)
class InteractionAnswer:
    """Their answer to a poll, quiz, NPS, rating or question."""

    kind: str
    title: str
    answer: str
    correct: bool | None  # quizzes only
    at: datetime


@dataclass(frozen=True)
class ChatLine:
    """A chat message they wrote."""

    body: str
    at: datetime
    visibility: str
    deleted: bool


@dataclass(frozen=True)
class EmailLine:
    """An email planned for them."""

    what: str
    state: str
    due_at: datetime
    sent_at: datetime | None
    error: str


@dataclass
class RegistrationView:
    """One registration with everything that happened around it."""

    registrant: Registrant
    webinar: Webinar
    session: WebinarSession | None
    answers: list[Answer]
    source: list[tuple[str, str]]
    state: str = ""  # see registration_state
    attendance: list[SessionAttendance] = field(default_factory=list)
    interactions: list[InteractionAnswer] = field(default_factory=list)
    chat: list[ChatLine] = field(default_factory=list)
    emails: list[EmailLine] = field(default_factory=list)


@dataclass(frozen=True)
class Profile:
    """One person across every webinar."""

    contact: Contact
    registrations: list[RegistrationView]
    score: Score
    inputs: ScoreInputs
    summary: ContactSummary


def answer_text(value: Any) -> str:
    """A stored custom-field answer as words."""
    if isinstance(value, bool):
        return "Yes" if value else "No"
    if value is None:
        return ""
    if isinstance(value, list):
        return ", ".join(answer_text(item) for item in value)
    return str(value)


def labelled_answers(webinar: Webinar, answers: dict[str, Any]) -> list[Answer]:
    """Custom field answers in the form's order, labelled as the form labels them."""
    fields = content.fields_from(webinar.registration_fields)
    labels = {item.key: item.label for item in fields}
    order = [item.key for item in fields]
    keys = [key for key in order if key in answers] + sorted(k for k in answers if k not in labels)
    return [Answer(labels.get(key, key), answer_text(answers[key])) for key in keys]


def source_of(registrant: Registrant) -> list[tuple[str, str]]:
    """How they came: the UTM parameters and the referring page."""
    found = []
    for key, value in sorted((registrant.utm or {}).items()):
        if value:
            found.append((key if key.startswith("utm_") else f"utm_{key}", str(value)))
    if registrant.referrer:
        found.append(("referrer", registrant.referrer))
    return found


def describe_answer(interaction: Interaction, answer: Any) -> tuple[str, bool | None]:
    """An answer as the person chose it, and for a quiz whether it was right."""
    kind = interaction.kind
    config = interaction.config or {}
    if kind in {"poll", "quiz"}:
        correct: bool | None = None
        if kind == "quiz":
            given = sorted(answer) if isinstance(answer, list) else [answer]
            correct = given == sorted(config.get("correct", []))
        return option_texts(interaction, answer), correct
    if kind == "nps":
        return f"{answer} of 10", None
    if kind == "rating":
        return f"{answer} of {config.get('scale', 5)}", None
    return answer_text(answer), None


STEP_KINDS = {
    "confirmation": "Confirmation",
    "reminder": "Reminder",
    "starting": "Starting now",
    "follow_up": "Follow-up",
}
EMAIL_KINDS = {
    "join_link": "Confirmation with the join link",
    "schedule_change": "Notice of a schedule change",
    "chat_reply": "Chat reply",
}


def _id_of(row: Any, relation: str) -> int:
    """The id a foreign key holds, without loading the related row."""
    return int(getattr(row, f"{relation}_id"))


async def profile(contact_id: int, now: datetime) -> Profile | None:
    """Everything known about one contact, registration by registration."""
    contact = await Contact.get_or_none(id=contact_id)
    if contact is None:
        return None
    registrants = (
        await Registrant.filter(contact_id=contact.id)
        .order_by("-created_at", "-id")
        .prefetch_related("webinar", "session")
    )
    views: dict[int, RegistrationView] = {}
    for held in registrants:
        webinar = held.webinar
        assert isinstance(webinar, Webinar)
        session = held.session if isinstance(held.session, WebinarSession) else None
        views[held.id] = RegistrationView(
            registrant=held,
            webinar=webinar,
            session=session,
            answers=labelled_answers(webinar, held.answers or {}),
            source=source_of(held),
        )
    ids = list(views)
    facts = await registration_facts(registrant_ids=ids)
    videos = await video_seconds(view.webinar.id for view in views.values())
    rows = await Attendance.filter(registrant_id__in=ids).order_by("first_join_at", "id")
    session_starts = dict(
        await WebinarSession.filter(id__in={row.session_id for row in rows}).values_list(
            "id", "starts_at"
        )
    )
    for row in rows:
        views[row.registrant_id].attendance.append(
            SessionAttendance(
                session_id=row.session_id,
                starts_at=session_starts.get(row.session_id),
                first_join_at=row.first_join_at,
                last_seen_at=row.last_seen_at,
                watched_seconds=row.watched_seconds,
                watch_share=watch_share(row.watched_seconds, videos[row.webinar_id]),
                stayed_to_end=row.stayed_to_end,
                clicked_offer=row.clicked_offer,
                downloads=row.downloads,
                chat_messages=row.chat_messages,
                responses=row.responses,
            )
        )
    responses = (
        await InteractionResponse.filter(registrant_id__in=ids)
        .order_by("created_at", "id")
        .prefetch_related("interaction")
    )
    for response in responses:
        interaction = response.interaction
        assert isinstance(interaction, Interaction)
        text, correct = describe_answer(interaction, interactions.given_answer(response.answer))
        views[_id_of(response, "registrant")].interactions.append(
            InteractionAnswer(
                interaction.kind, interaction.title, text, correct, response.created_at
            )
        )
    messages = await ChatMessage.filter(
        registrant_id__in=ids, staff_id__isnull=True, automatic=False
    ).order_by("created_at", "id")
    for message in messages:
        views[_id_of(message, "registrant")].chat.append(
            ChatLine(
                message.body, message.created_at, message.visibility, message.deleted_at is not None
            )
        )
    emails = await PlannedEmail.filter(registrant_id__in=ids).order_by("due_at", "id")
    step_ids = {int((e.context or {}).get("step_id") or 0) for e in emails if e.kind == "step"}
    steps = {step.id: step for step in await EmailStep.filter(id__in=step_ids)}
    for email in emails:
        if email.registrant_id is None:
            continue
        what = EMAIL_KINDS.get(email.kind, email.kind)
        if email.kind == "step":
            step = steps.get(int((email.context or {}).get("step_id") or 0))
            what = "An email of the sequence that was removed"
            if step is not None:
                what = f"{STEP_KINDS[step.kind.value]}: {sequences.describe(step).lower()}"
        views[email.registrant_id].emails.append(
            EmailLine(what, email.state.value, email.due_at, email.sent_at, email.error or "")
        )
    for fact in facts:
        views[fact.registrant_id].state = registration_state(fact, now)
    inputs = score_inputs(facts, now)
    return Profile(
        contact=contact,
        registrations=list(views.values()),
        score=engagement_score(inputs),
        inputs=inputs,
        summary=summarise(facts, now, (await last_activity([contact.id])).get(contact.id)),
    )
