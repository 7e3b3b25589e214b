"""Multi-row inserts: the same rows as the ORM would store, new ids back, conflicts skipped."""

from __future__ import annotations

from datetime import UTC, datetime

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
