"""Contacts: one per email address across every webinar, with a normalised address and phone."""

from __future__ import annotations

import phonenumbers
from email_validator import EmailNotValidError, validate_email
from tortoise.exceptions import IntegrityError

from app.models import Contact

EMAIL_MAX = 254
NAME_MAX = 200
# Longer than any real phone number written with spaces and punctuation.
PHONE_INPUT_MAX = 64


def normalise_email(value: str) -> str:
    """The address as stored (validated, ASCII domain, lower case); raises ValueError if invalid."""
    typed = value.strip()
    if not typed:
        raise ValueError("Enter an email address.")
    if len(typed) > EMAIL_MAX:
        raise ValueError(f"An email address has at most {EMAIL_MAX} characters.")
    try:
        # Deliverability needs DNS lookups: slow, and a network failure would refuse good input.
        checked = validate_email(typed, check_deliverability=False)
    except EmailNotValidError as exc:
        raise ValueError(str(exc)) from None
    # The ASCII form of an internationalised domain, so that both spellings are one contact.
    normalised = (checked.ascii_email or checked.normalized).lower()
    if len(normalised) > EMAIL_MAX:
        raise ValueError(f"An email address has at most {EMAIL_MAX} characters.")
    return normalised


def email_domain(email: str) -> str:
    """The domain of a normalised address."""
    return email.rpartition("@")[2]


def normalise_phone(value: str, region: str = "") -> str:
    """A phone number in E.164 form; `region` (ISO country) applies to numbers without +code."""
    typed = value.strip()
    if not typed:
        raise ValueError("Enter a phone number.")
    if len(typed) > PHONE_INPUT_MAX:
        raise ValueError("That is too long for a phone number.")
    try:
        number = phonenumbers.parse(typed, region.upper() or None)
    except phonenumbers.NumberParseException:
        if region or typed.startswith(("+", "00")):
            raise ValueError("That is not a phone number.") from None
        raise ValueError("Include the country code, such as +49.") from None
    if not phonenumbers.is_valid_number(number):
        raise ValueError("That phone number does not exist.")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


async def get_or_create_contact(
    *, email: str, name: str = "", phone: str = "", company_domain: str = ""
) -> tuple[Contact, bool]:
    """The contact of a normalised address, created on first use; (contact, created).

    An existing contact only gains a name or phone it does not have yet: anyone can type any
    address into a public form, so a registration never overwrites what is already known.
    Concurrent calls for one address give one contact (the loser of the insert reads it back).
    """
    contact = await Contact.get_or_none(email=email)
    created = False
    if contact is None:
        try:
            contact = await Contact.create(
                email=email,
                name=name[:NAME_MAX],
                phone=phone,
                company_domain=company_domain or email_domain(email),
            )
            created = True
        except IntegrityError:
            contact = await Contact.get(email=email)
    if not created:
        await _fill_blanks(contact, name=name, phone=phone)
    return contact, created


async def _fill_blanks(contact: Contact, *, name: str, phone: str) -> None:
    # Conditional updates: a value another request filled in meanwhile is kept.
    if name and not contact.name:
        await Contact.filter(id=contact.id, name="").update(name=name[:NAME_MAX])
    if phone and not contact.phone:
        await Contact.filter(id=contact.id, phone="").update(phone=phone)
    if (name and not contact.name) or (phone and not contact.phone):
        await contact.refresh_from_db(fields=["name", "phone"])
