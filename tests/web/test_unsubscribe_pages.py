"""The unsubscribe link through the real app: the page, its button, one-click (RFC 8058), undo."""

from __future__ import annotations

from datetime import datetime

import httpx
import pytest

from app.models import AnalyticsEvent, Contact, Registrant, Webinar
from app.services import auth, crypto, unsubscribe
from app.web.middleware import CSRF_EXEMPT_PATHS

FORM = {"Content-Type": "application/x-www-form-urlencoded"}
ONE_CLICK = b"List-Unsubscribe=One-Click"


async def make_contact(email: str = "ada@example.com", *, language: str = "") -> Contact:
    """A contact, registered for a webinar in `language` when one is given."""
    contact = await Contact.create(email=email)
    if language:
        webinar = await Webinar.create(slug=f"talk-{language}", title="Talk", language=language)
        token = crypto.new_token()
        await Registrant.create(
            contact=contact,
            webinar=webinar,
            join_token_hash=crypto.hash_token(token),
            language=language,
        )
    return contact


def path_of(contact: Contact) -> str:
    return f"/u/{unsubscribe.token_for(contact.id)}"


async def unsubscribed_at(contact: Contact) -> datetime | None:
    await contact.refresh_from_db()
    return contact.unsubscribed_at


async def test_the_page_shows_the_masked_address_and_changes_nothing(
    client: httpx.AsyncClient,
) -> None:
    contact = await make_contact()
    response = await client.get(path_of(contact))
    assert response.status_code == 200
    page = response.text
    assert '<html lang="en">' in page
    assert "Unsubscribe from webinar emails" in page
    assert "a•••@example.com" in page
    assert "ada@example.com" not in page
    assert f'<form method="post" action="{path_of(contact)}"' in page
    assert '<button type="submit" class="btn btn-primary">Unsubscribe</button>' in page
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["referrer-policy"] == "no-referrer"
    assert response.headers["x-robots-tag"] == "noindex"
    # Link scanners fetch pages on their own: neither GET nor HEAD unsubscribes.
    assert (await client.head(path_of(contact))).status_code == 200
    assert await unsubscribed_at(contact) is None
    assert await AnalyticsEvent.all().count() == 0


async def test_the_button_unsubscribes_and_confirms(client: httpx.AsyncClient) -> None:
    contact = await make_contact()
    await client.get(path_of(contact))
    # A browser posts the empty form; the path needs no CSRF token.
    response = await client.post(path_of(contact), content=b"", headers=FORM)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    page = response.text
    assert "You are unsubscribed" in page
    assert "You will get no more emails about webinars from us at a•••@example.com." in page
    assert f'action="{path_of(contact)}/resubscribe"' in page
    assert "Subscribe again" in page
    first = await unsubscribed_at(contact)
    assert first is not None

    # Pressing it again keeps the first moment; the page now offers only the undo.
    again = await client.post(path_of(contact), content=b"", headers=FORM)
    assert again.status_code == 200
    assert await unsubscribed_at(contact) == first
    shown = await client.get(path_of(contact))
    assert "You are unsubscribed" in shown.text
    assert "Subscribe again" in shown.text
    assert await AnalyticsEvent.filter(kind="unsubscribed", contact_id=contact.id).count() == 1


async def test_one_click_from_a_mail_provider(client: httpx.AsyncClient) -> None:
    contact = await make_contact()
    client.cookies.clear()  # the provider has none of our cookies
    response = await client.post(
        unsubscribe.url_for(contact.id), content=ONE_CLICK, headers={**FORM, "accept": "*/*"}
    )
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    assert response.text == "You are unsubscribed."
    assert await unsubscribed_at(contact) is not None


async def test_a_bad_token_finds_nothing_and_changes_nothing(client: httpx.AsyncClient) -> None:
    contact = await make_contact()
    signature = unsubscribe.token_for(contact.id).split(".")[1]
    other = unsubscribe.token_for(contact.id + 1).split(".")[1]
    bad = [
        f"{contact.id}.{other}",  # another contact's signature
        f"{contact.id}.{signature[:-1]}",
        f"{contact.id}",
        "x" * 81,
        unsubscribe.token_for(contact.id + 1),  # well signed, but no such contact
    ]
    client.cookies.clear()
    for token in bad:
        page = await client.get(f"/u/{token}")
        assert page.status_code == 404
        assert "Page not found" in page.text
        assert page.headers["cache-control"] == "no-store"
        clicked = await client.post(f"/u/{token}", content=ONE_CLICK, headers=FORM)
        assert clicked.status_code == 404
        undo = await client.post(f"/u/{token}/resubscribe", content=b"", headers=FORM)
        assert undo.status_code == 404
    assert await unsubscribed_at(contact) is None
    assert await AnalyticsEvent.all().count() == 0


async def test_a_bad_token_does_not_undo_an_unsubscribe(client: httpx.AsyncClient) -> None:
    contact = await make_contact()
    await unsubscribe.unsubscribe(contact.id, auth.utcnow())
    other = unsubscribe.token_for(contact.id + 1).split(".")[1]
    client.cookies.clear()
    response = await client.post(f"/u/{contact.id}.{other}/resubscribe", content=b"", headers=FORM)
    assert response.status_code == 404
    assert await unsubscribed_at(contact) is not None


async def test_german_for_a_german_registrant(client: httpx.AsyncClient) -> None:
    contact = await make_contact(language="de")
    page = await client.get(path_of(contact))
    assert page.status_code == 200
    assert '<html lang="de">' in page.text
    assert "Von Webinar-E-Mails abmelden" in page.text
    assert ">Abmelden</button>" in page.text
    done = await client.post(path_of(contact), content=b"", headers=FORM)
    assert "Sie sind abgemeldet" in done.text
    assert "Wieder abonnieren" in done.text
    client.cookies.clear()
    clicked = await client.post(path_of(contact), content=ONE_CLICK, headers=FORM)
    assert clicked.text == "Sie sind abgemeldet."


async def test_the_latest_registration_chooses_the_language(client: httpx.AsyncClient) -> None:
    contact = await make_contact(language="de")
    webinar = await Webinar.create(slug="later-talk", title="Later", language="en")
    await Registrant.create(
        contact=contact, webinar=webinar, join_token_hash=crypto.hash_token("t"), language="en"
    )
    page = await client.get(path_of(contact))
    assert '<html lang="en">' in page.text


async def test_subscribe_again(client: httpx.AsyncClient) -> None:
    contact = await make_contact()
    client.cookies.clear()
    await client.post(path_of(contact), content=b"", headers=FORM)
    assert await unsubscribed_at(contact) is not None
    response = await client.post(f"{path_of(contact)}/resubscribe", content=b"", headers=FORM)
    assert response.status_code == 200
    assert "You are subscribed again" in response.text
    assert "Emails about webinars to a•••@example.com are back on." in response.text
    assert await unsubscribed_at(contact) is None
    # The page still lets them leave again.
    assert f'<form method="post" action="{path_of(contact)}"' in response.text
    # Resubscribing has no GET: a scanner cannot undo an unsubscribe either.
    assert (await client.get(f"{path_of(contact)}/resubscribe")).status_code in {404, 405}


@pytest.mark.parametrize(
    ("path", "exempt"),
    [
        ("/u/1.abc", True),
        ("/u/1.abc/resubscribe", True),
        ("/u/1.abc/other", False),
        ("/u/", False),
        ("/u/1.abc/resubscribe/x", False),
        ("/admin/u/1.abc", False),
        ("/w/slug/register", True),
    ],
)
def test_only_the_unsubscribe_paths_are_exempt_from_csrf(path: str, exempt: bool) -> None:
    assert bool(CSRF_EXEMPT_PATHS.fullmatch(path)) is exempt
