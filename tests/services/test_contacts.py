"""Contacts: normalised email and phone, one contact per address even under concurrent inserts."""

from __future__ import annotations

import asyncio

import pytest

from app.models import Contact
from app.services import contacts
from app.settings import Settings


@pytest.mark.parametrize(
    ("typed", "stored"),
    [
        ("ada@example.com", "ada@example.com"),
        ("  Ada.Lovelace@Example.COM ", "ada.lovelace@example.com"),
        ("ADA+webinars@Sub.Example.org", "ada+webinars@sub.example.org"),
        # One contact whichever way an internationalised domain is written.
        ("ada@Bücher.de", "ada@xn--bcher-kva.de"),
        ("ada@xn--bcher-kva.de", "ada@xn--bcher-kva.de"),
    ],
)
def test_normalise_email(typed: str, stored: str) -> None:
    assert contacts.normalise_email(typed) == stored


@pytest.mark.parametrize(
    "typed",
    [
        "",
        "   ",
        "ada",
        "ada@",
        "@example.com",
        "ada@@example.com",
        "ada lovelace@example.com",
        "ada@localhost",
        "ada@example.com\nBcc: eve@example.com",
        "a" * 250 + "@example.com",
        "ada@" + "x" * 260 + ".com",
    ],
)
def test_normalise_email_refuses_what_is_not_an_address(typed: str) -> None:
    with pytest.raises(ValueError, match=r".+"):
        contacts.normalise_email(typed)


def test_email_domain() -> None:
    assert contacts.email_domain("ada@sub.example.com") == "sub.example.com"


@pytest.mark.parametrize(
    ("typed", "region", "stored"),
    [
        ("+49 30 1234567", "", "+49301234567"),
        ("+49 (0)30 123 45 67", "", "+49301234567"),
        ("030 1234567", "DE", "+49301234567"),
        ("030 1234567", "de", "+49301234567"),
        ("0049 30 1234567", "DE", "+49301234567"),
        ("(212) 736-5000", "US", "+12127365000"),
        # A +country code wins over the field's default region.
        ("+44 20 7946 0958", "DE", "+442079460958"),
    ],
)
def test_normalise_phone_gives_e164(typed: str, region: str, stored: str) -> None:
    assert contacts.normalise_phone(typed, region) == stored


@pytest.mark.parametrize(
    ("typed", "region", "message"),
    [
        ("", "DE", "Enter a phone number"),
        ("12", "DE", "does not exist"),
        ("+49 12", "", "does not exist"),
        ("call me", "DE", "not a phone number"),
        ("030 1234567", "", "country code"),
        ("1" * 80, "DE", "too long"),
    ],
)
def test_normalise_phone_refuses_with_a_reason(typed: str, region: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        contacts.normalise_phone(typed, region)


async def test_get_or_create_contact_creates_once_and_never_overwrites(
    database: Settings,
) -> None:
    first, created = await contacts.get_or_create_contact(
        email="ada@example.com", name="Ada Lovelace"
    )
    assert created
    assert (first.name, first.phone, first.company_domain) == ("Ada Lovelace", "", "example.com")

    # A later registration of the same address (typed by anyone) fills blanks only.
    again, created = await contacts.get_or_create_contact(
        email="ada@example.com", name="Someone Else", phone="+49301234567"
    )
    assert not created
    assert again.id == first.id
    assert (again.name, again.phone) == ("Ada Lovelace", "+49301234567")
    stored = await Contact.get(id=first.id)
    assert (stored.name, stored.phone) == ("Ada Lovelace", "+49301234567")

    third, _ = await contacts.get_or_create_contact(email="ada@example.com", phone="+12127365000")
    assert third.phone == "+49301234567"
    assert await Contact.all().count() == 1


async def test_an_empty_name_is_filled_in_later(database: Settings) -> None:
    contact, _ = await contacts.get_or_create_contact(email="grace@example.com")
    assert contact.name == ""
    filled, created = await contacts.get_or_create_contact(
        email="grace@example.com", name="Grace Hopper"
    )
    assert not created
    assert filled.name == "Grace Hopper"
    assert (await Contact.get(id=contact.id)).name == "Grace Hopper"


async def test_concurrent_creates_give_one_contact(database: Settings) -> None:
    results = await asyncio.gather(
        *(
            contacts.get_or_create_contact(email="ada@example.com", name=f"Ada {i}")
            for i in range(6)
        )
    )
    assert len({contact.id for contact, _ in results}) == 1
    assert sum(created for _, created in results) == 1
    assert await Contact.all().count() == 1
