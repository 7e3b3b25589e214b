"""A join's single statement: the chat and the answers it reads are what the plain reads give."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from app.models import ChatMessage, Interaction, InteractionResponse, Role, WebinarSession
from app.services import auth, chat, room
from app.settings import Settings
from tests.conftest import make_user
from tests.realtime.test_room import make_attendee, make_session


async def poll(session: WebinarSession, kind: str, opens_at: int) -> Interaction:
    """An interaction of the session's webinar."""
    return await Interaction.create(
        webinar_id=session.webinar_id,  # type: ignore[attr-defined]
        kind=kind,
        title=kind,
        config={"options": ["a", "b", "c"]},
        opens_at_seconds=opens_at,
    )


async def say(session: WebinarSession, body: str, **values: Any) -> ChatMessage:
    """A chat message of the session."""
    return await ChatMessage.create(session=session, body=body, **values)


async def test_the_join_reads_the_chat_and_the_answers_as_the_plain_reads_do(
    database: Settings,
) -> None:
    session = await make_session(chat_mode="open")
    ann, token = await make_attendee(session, name="Ann Example")
    bob, _ = await make_attendee(session, name="Bob Example")
    team = await make_user(Role.MODERATOR, email="pat@example.com", name="Pat")
    asked = await say(session, "Can I import users? ✓", registrant=ann, sender_name="Ann")
    await say(session, "Welcome, everyone", staff=team, sender_name="Pat", visibility="public")
    await say(session, "Bob's own question", registrant=bob, sender_name="Bob")
    await say(
        session,
        "Yes: CSV or the API",
        staff=team,
        sender_name="Pat",
        registrant=ann,
        reply_to=asked,
        media_seconds=734.25,
        pinned=True,
    )
    await say(session, "gone", registrant=bob, visibility="public", deleted_at=auth.utcnow())
    await say(session, "Bob, in public", registrant=bob, sender_name="Bob", visibility="public")
    await say(session, "Thanks!", registrant=ann, sender_name="Ann", visibility="public")
    await say(session, "We answer in a minute", automatic=True, registrant=ann)
    answers: dict[int, Any] = {}
    for kind, stored, given in (
        ("poll", 1, 1),
        ("poll", [0, 2], [0, 2]),
        ("rating", 4, 4),
        ("question", {"text": "How about SSO?"}, "How about SSO?"),
        ("nps", 0, 0),
    ):
        interaction = await poll(session, kind, 60 * (len(answers) + 1))
        await InteractionResponse.create(
            interaction=interaction, session=session, registrant=ann, answer=stored
        )
        answers[interaction.id] = given
    other = await poll(session, "poll", 600)
    await InteractionResponse.create(interaction=other, session=session, registrant=bob, answer=2)

    admission = await room.admit(token, auth.utcnow())
    payload = admission.payload
    assert payload["session"]["mode"] == "live"
    assert payload["answered"] == {str(key): value for key, value in answers.items()}
    seen = payload["chat"]
    assert seen == await chat.history_for_attendee(session.id, ann.id, replay=False)
    assert [m["body"] for m in seen] == [
        "Can I import users? ✓",
        "Welcome, everyone",
        "Yes: CSV or the API",
        "Bob, in public",
        "Thanks!",
        "We answer in a minute",
    ]
    reply = seen[2]
    assert reply["sender"] == "team"
    assert reply["reply_to"] == asked.id
    assert reply["pinned"] is True
    assert reply["media_seconds"] == 734.25
    assert reply["registrant_id"] == ann.id
    assert "registrant_id" not in seen[3], "someone else's public message does not name them"
    assert seen[4]["registrant_id"] == ann.id, "one's own messages stay one's own"
    assert seen[5]["sender"] == "team"  # the auto-response
    written = await ChatMessage.get(id=asked.id)
    assert seen[0]["at_ms"] == int(written.created_at.timestamp() * 1000)


async def test_an_attendee_with_nothing_said_or_answered_joins_with_empty_lists(
    database: Settings,
) -> None:
    session = await make_session()
    _ann, token = await make_attendee(session)
    payload = (await room.admit(token, auth.utcnow())).payload
    assert payload["chat"] == []
    assert payload["answered"] == {}


async def test_a_live_join_sees_the_latest_messages_and_a_replay_the_whole_chat(
    database: Settings,
) -> None:
    session = await make_session(chat_mode="open")
    ann, token = await make_attendee(session)
    total = chat.HISTORY_LIMIT + 30
    await ChatMessage.bulk_create(
        [
            ChatMessage(session=session, body=f"m{n}", visibility="public", media_seconds=n)
            for n in range(total)
        ]
    )
    live = (await room.admit(token, auth.utcnow())).payload
    assert [m["body"] for m in live["chat"]] == [f"m{n}" for n in range(30, total)]
    later = auth.utcnow() + timedelta(hours=2)  # the 30-minute video ended: a replay, or over
    replayed = (await room.admit(token, later)).payload
    assert replayed["session"]["mode"] in ("replay", "ended")
    assert [m["body"] for m in replayed["chat"]] == [f"m{n}" for n in range(total)]
    assert replayed["chat"] == await chat.history_for_attendee(session.id, ann.id, replay=True)
