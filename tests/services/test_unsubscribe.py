"""Unsubscribe links: signed per contact, and an unsubscribe that keeps its first moment."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from app.models import AnalyticsEvent, Contact
from app.services import crypto, unsubscribe
from app.settings import Settings, use_settings

NOW = datetime(2030, 3, 1, 9, 30, tzinfo=UTC)


def test_a_token_leads_back_to_its_contact(settings: Settings) -> None:
    token = unsubscribe.token_for(42)
    assert token == unsubscribe.token_for(42)  # stable: the same link in every email
    contact_id, _, signature = token.partition(".")
    assert contact_id == "42"
    assert signature == crypto.sign("42", "unsubscribe")[:32]
    assert unsubscribe.contact_id_of(token) == 42
    assert unsubscribe.url_for(42) == f"http://testserver/u/{token}"


def test_another_contacts_token_is_not_accepted_for_this_one(settings: Settings) -> None:
    mine, theirs = unsubscribe.token_for(7), unsubscribe.token_for(8)
    assert mine.split(".")[1] != theirs.split(".")[1]
    assert unsubscribe.contact_id_of(f"7.{theirs.split('.')[1]}") is None
    assert unsubscribe.contact_id_of(f"8.{mine.split('.')[1]}") is None


@pytest.mark.parametrize(
    "tamper",
    [
        lambda token: token[:-1] + ("0" if token[-1] != "0" else "1"),  # one digit changed
        lambda token: token[:-1],  # shortened
        lambda token: token + "0",  # lengthened
        lambda token: token.upper(),
        lambda token: "0" + token,  # the same id spelt with a leading zero
        lambda token: "+" + token,
        lambda token: token.replace(".", "-"),
        lambda token: token.split(".")[0],
        lambda token: "." + token.split(".")[1],
        lambda token: token + "." + token.split(".")[1],
        lambda token: token + "x" * 80,
        lambda token: " " + token,
    ],
)
def test_a_tampered_token_is_refused(settings: Settings, tamper: Callable[[str], str]) -> None:
    token = unsubscribe.token_for(1234)
    assert unsubscribe.contact_id_of(tamper(token)) is None


@pytest.mark.parametrize(
    "token", ["", ".", "abc", "1.", "x.0123456789abcdef0123456789abcdef", "1" * 81, "٣." + "a" * 32]
)
def test_a_malformed_token_is_refused(settings: Settings, token: str) -> None:
    assert unsubscribe.contact_id_of(token) is None


def test_a_token_under_another_secret_key_is_refused(settings: Settings) -> None:
    token = unsubscribe.token_for(5)
    use_settings(settings.model_copy(update={"secret_key": "another-" + "y" * 40}))
    try:
        assert unsubscribe.contact_id_of(token) is None
    finally:
        use_settings(settings)
    assert unsubscribe.contact_id_of(token) == 5


def test_headers_for_one_click(settings: Settings) -> None:
    assert unsubscribe.headers_for(3) == {
        "List-Unsubscribe": f"<http://testserver/u/{unsubscribe.token_for(3)}>",
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
    }


async def test_unsubscribe_keeps_the_first_moment(database: Settings) -> None:
    contact = await Contact.create(email="ada@example.com")
    assert await unsubscribe.unsubscribe(contact.id, NOW) is True
    await contact.refresh_from_db()
    assert contact.unsubscribed_at == NOW

    assert await unsubscribe.unsubscribe(contact.id, NOW + timedelta(days=1)) is True
    await contact.refresh_from_db()
    assert contact.unsubscribed_at == NOW
    events = await AnalyticsEvent.filter(kind="unsubscribed").values("contact_id", "at")
    assert events == [{"contact_id": contact.id, "at": NOW}]


async def test_unsubscribe_touches_no_other_contact(database: Settings) -> None:
    ada = await Contact.create(email="ada@example.com")
    bob = await Contact.create(email="bob@example.com")
    await unsubscribe.unsubscribe(ada.id, NOW)
    await bob.refresh_from_db()
    assert bob.unsubscribed_at is None


async def test_an_unknown_contact_is_reported(database: Settings) -> None:
    assert await unsubscribe.unsubscribe(999, NOW) is False
    assert await unsubscribe.resubscribe(999) is False
    assert await AnalyticsEvent.all().count() == 0


async def test_resubscribe_clears_the_unsubscribe(database: Settings) -> None:
    contact = await Contact.create(email="ada@example.com")
    await unsubscribe.unsubscribe(contact.id, NOW)
    assert await unsubscribe.resubscribe(contact.id) is True
    await contact.refresh_from_db()
    assert contact.unsubscribed_at is None
    assert await unsubscribe.resubscribe(contact.id) is True  # nothing to undo is fine too

    # A later unsubscribe counts anew.
    later = NOW + timedelta(hours=2)
    await unsubscribe.unsubscribe(contact.id, later)
    await contact.refresh_from_db()
    assert contact.unsubscribed_at == later
