"""Multi-row inserts: the same rows as the ORM would store, new ids back, conflicts skipped."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from tortoise.transactions import in_transaction

from app.models import Contact, EmailState, PlannedEmail, Registrant, Webinar
from app.services import rows
from app.settings import Settings

WHEN = datetime(2027, 3, 28, 0, 30, tzinfo=UTC)


async def test_rows_come_back_as_the_orm_reads_them(database: Settings) -> None:
    webinar = await Webinar.create(slug="growth", title="Growth")
    async with in_transaction() as connection:
        stored = await rows.insert_many(
            connection,
            [Contact(email="ada@example.com", name="Ada"), Contact(email="bob@example.com")],
            returning=("id", "email"),
        )
        ids = {row["email"]: row["id"] for row in stored}
        answer = await rows.insert_many(
            connection,
            [
                Registrant(
                    contact_id=ids["ada@example.com"],
                    webinar_id=webinar.id,
                    join_token_hash="a" * 64,
                    answers={"company": "Analytical Engines", "size": 3},
                    utm={"utm_source": "newsletter"},
                    link_sent_at=WHEN,
                    link_sends=1,
                )
            ],
        )
    assert sorted(ids) == ["ada@example.com", "bob@example.com"]
    ada = await Contact.get(email="ada@example.com")
    assert (ada.id, ada.name, ada.phone, ada.suppressed_at) == (ids[ada.email], "Ada", "", None)
    assert ada.created_at is not None  # auto_now_add applies as in a single insert
    registrant = await Registrant.get(id=answer[0]["id"])
    assert registrant.answers == {"company": "Analytical Engines", "size": 3}
    assert registrant.utm == {"utm_source": "newsletter"}
    assert registrant.link_sent_at == WHEN
    assert (registrant.timezone, registrant.language, registrant.session_id) == ("UTC", "en", None)


async def test_conflicting_rows_are_skipped_and_missing_from_the_answer(
    database: Settings,
) -> None:
    await Contact.create(email="ada@example.com", name="First")
    async with in_transaction() as connection:
        stored = await rows.insert_many(
            connection,
            [Contact(email="ada@example.com", name="Second"), Contact(email="bob@example.com")],
            returning=("email",),
            ignore_conflicts=True,
        )
    assert stored == [{"email": "bob@example.com"}]
    assert (await Contact.get(email="ada@example.com")).name == "First"


async def test_large_batches_are_split_below_the_parameter_limit(database: Settings) -> None:
    emails = [
        PlannedEmail(kind="link", to_email=f"p{i}@example.com", due_at=WHEN, message_id=f"<{i}@x>")
        for i in range(3000)  # 3,000 rows of 11 columns: more parameters than one statement takes
    ]
    async with in_transaction() as connection:
        assert await rows.insert_many(connection, emails, returning=()) == []
    assert await PlannedEmail.filter(state=EmailState.SCHEDULED).count() == 3000


async def test_plain_rows_are_stored_as_the_orm_stores_them(database: Settings) -> None:
    webinar = await Webinar.create(slug="growth", title="Growth")
    async with in_transaction() as connection:
        stored = await rows.insert_rows(
            connection,
            Contact,
            ("email", "name"),
            [("ada@example.com", "Ada"), ("bob@example.com", "")],
            returning=("id", "email"),
        )
        ids = {row["email"]: row["id"] for row in stored}
        answer = await rows.insert_rows(
            connection,
            Registrant,
            ("contact_id", "webinar_id", "join_token_hash", "answers", "link_sent_at"),
            [(ids["ada@example.com"], webinar.id, "a" * 64, {"size": 3}, WHEN)],
        )
        await rows.insert_rows(
            connection,
            PlannedEmail,
            ("kind", "to_email", "due_at", "message_id"),
            [("link", "ada@example.com", WHEN, "<1@x>")],
            returning=(),
        )
    ada = await Contact.get(email="ada@example.com")
    assert (ada.id, ada.name, ada.phone, ada.suppressed_at) == (ids[ada.email], "Ada", "", None)
    assert ada.created_at is not None  # auto_now_add is filled in as the ORM would
    registrant = await Registrant.get(id=answer[0]["id"])
    assert registrant.answers == {"size": 3}
    assert registrant.utm == {}  # a callable default, applied per row
    assert (registrant.link_sent_at, registrant.link_sends, registrant.plan_state) == (WHEN, 0, 1)
    email = await PlannedEmail.get(message_id="<1@x>")
    assert (email.state, email.attempts, email.context) == (EmailState.SCHEDULED, 0, {})


async def test_plain_rows_skip_conflicts_and_refuse_unknown_or_missing_fields(
    database: Settings,
) -> None:
    await Contact.create(email="ada@example.com", name="First")
    async with in_transaction() as connection:
        stored = await rows.insert_rows(
            connection,
            Contact,
            ("email", "name"),
            [("ada@example.com", "Second"), ("bob@example.com", "Bob")],
            returning=("email",),
            ignore_conflicts=True,
        )
        assert stored == [{"email": "bob@example.com"}]
        with pytest.raises(ValueError, match="no column field colour"):
            await rows.insert_rows(connection, Contact, ("email", "colour"), [("c@x.org", "red")])
        with pytest.raises(ValueError, match="has no default"):
            await rows.insert_rows(connection, PlannedEmail, ("kind",), [("link",)])
        with pytest.raises(ValueError, match="1 values for 2 fields"):
            await rows.insert_rows(connection, Contact, ("email", "name"), [("c@x.org",)])
    assert (await Contact.get(email="ada@example.com")).name == "First"


async def test_many_plain_rows_go_in_whatever_their_number(database: Settings) -> None:
    # More parameters than one statement takes: split on SQLite, one array per column on
    # PostgreSQL.
    values = [("link", f"p{i}@example.com", WHEN, f"<{i}@x>") for i in range(3000)]
    async with in_transaction() as connection:
        stored = await rows.insert_rows(
            connection, PlannedEmail, ("kind", "to_email", "due_at", "message_id"), values
        )
    assert len(stored) == 3000
    assert await PlannedEmail.filter(state=EmailState.SCHEDULED, due_at=WHEN).count() == 3000
