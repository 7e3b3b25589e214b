"""Unsubscribing a contact from webinar emails: signed links, one-click (RFC 8058) and undo.

Every email to a contact carries the same personal link, `/u/{contact_id}.{signature}`: an HMAC
of the contact's id, so it is stable, cannot be guessed for another contact and is built without
reading the database. It is offered twice:

- in the `List-Unsubscribe` header with `List-Unsubscribe-Post: List-Unsubscribe=One-Click`,
  which lets the mail provider's own "unsubscribe" button POST to it. That request carries none
  of our cookies, so the path is exempt from CSRF checks; the signed link is the only key, and
  forging the request gains nothing the link itself does not give.
- as a link in the email's footer, which opens a page with a button. A GET never changes
  anything: mail security scanners prefetch every link in a message, and a visit alone must not
  unsubscribe anyone.
"""

from __future__ import annotations

import re
from datetime import datetime

from tortoise.transactions import in_transaction

from app.models import AnalyticsEvent, Contact
from app.services import crypto
from app.settings import get_settings

PURPOSE = "unsubscribe"
SIGNATURE_LENGTH = 32  # hex digits: 128 bits of the HMAC
TOKEN_MAX = 80
EVENT_KIND = "unsubscribed"
# One canonical spelling per contact: no sign, no leading zero, SIGNATURE_LENGTH lowercase hex.
_TOKEN = re.compile(r"([1-9][0-9]{0,18})\.([0-9a-f]{32})")


def _signature(contact_id: int) -> str:
    return crypto.sign(str(contact_id), PURPOSE)[:SIGNATURE_LENGTH]


def token_for(contact_id: int) -> str:
    """The personal unsubscribe token of a contact."""
    return f"{contact_id}.{_signature(contact_id)}"


def url_for(contact_id: int) -> str:
    """The absolute unsubscribe link of a contact (the same in every email)."""
    return f"{get_settings().public_base_url}/u/{token_for(contact_id)}"


def contact_id_of(token: str) -> int | None:
    """The contact an unsubscribe token was made for, or None when it is not a valid one."""
    if len(token) > TOKEN_MAX:
        return None
    match = _TOKEN.fullmatch(token)
    if match is None:
        return None
    contact_id = int(match.group(1))
    if not crypto.signatures_match(match.group(2), _signature(contact_id)):
        return None
    return contact_id


def headers_for(contact_id: int) -> dict[str, str]:
    """The List-Unsubscribe headers (RFC 2369 and RFC 8058 one-click) of an email to a contact."""
    return headers_with(url_for(contact_id))


def headers_with(url: str) -> dict[str, str]:
    """The List-Unsubscribe headers of an email whose contact's link (`url_for`) is known."""
    return {
        "List-Unsubscribe": f"<{url}>",
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
    }


async def unsubscribe(contact_id: int, now: datetime) -> bool:
    """Unsubscribe a contact (keeping the first time if already); whether the contact exists."""
    async with in_transaction():
        changed = await Contact.filter(id=contact_id, unsubscribed_at__isnull=True).update(
            unsubscribed_at=now
        )
        if changed:
            await AnalyticsEvent.create(kind=EVENT_KIND, at=now, contact_id=contact_id)
            return True
    return await Contact.filter(id=contact_id).exists()


async def resubscribe(contact_id: int) -> bool:
    """Take back an unsubscribe, so the contact gets emails again; whether the contact exists."""
    await Contact.filter(id=contact_id, unsubscribed_at__isnull=False).update(unsubscribed_at=None)
    return await Contact.filter(id=contact_id).exists()
