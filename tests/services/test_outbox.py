"""Without SMTP_URL, mail goes to the outbox in the database and is browsable in the admin."""

from __future__ import annotations

import html
from email import message_from_string, policy
from email.message import EmailMessage

import httpx
import pytest

from app.models import OutboxMessage, Role
from app.services import mail
from app.settings import Settings
from tests.conftest import login, make_user

HTML_BODY = "<p>Hello Ada, <script>alert('x')</script>your link is ready.</p>"


@pytest.fixture(autouse=True)
def configured_mailer() -> None:
    """The mailer the settings choose, with no test override left behind."""
    mail.use_mailer(None)


async def send_welcome(to: str = "Ada Lovelace <ada@example.com>") -> OutboxMessage:
    await mail.send_now(
        to=to,
        subject="Welcome to Encore",
        text="Hello Ada,\nyour link is ready.\n",
        html=HTML_BODY,
    )
    stored = await OutboxMessage.all().order_by("-id").first()
    assert stored is not None
    return stored


async def test_without_smtp_the_outbox_keeps_the_full_message(database: Settings) -> None:
    assert database.smtp_url == ""
    assert isinstance(mail.get_mailer(), mail.OutboxMailer)

    stored = await send_welcome()

    assert await OutboxMessage.all().count() == 1
    assert stored.sender == database.mail_from
    assert stored.recipients == "ada@example.com"
    assert stored.subject == "Welcome to Encore"

    parsed = message_from_string(stored.content, policy=policy.default)
    assert isinstance(parsed, EmailMessage)
    # A generated Message-ID is long enough to be folded onto a continuation line (legal
    # RFC 5322 folding white space, which the parser keeps in front of the "<").
    assert parsed["Message-ID"].strip() == stored.message_id
    assert stored.message_id.startswith("<")
    assert stored.message_id.endswith(">")
    assert parsed["From"] == database.mail_from
    assert parsed["To"] == "Ada Lovelace <ada@example.com>"
    assert parsed["Subject"] == "Welcome to Encore"
    assert parsed["Date"]
    assert parsed["MIME-Version"] == "1.0"
    assert parsed.get_content_type() == "multipart/alternative"
    text = parsed.get_body(("plain",))
    rich = parsed.get_body(("html",))
    assert text is not None
    assert rich is not None
    assert text.get_content() == "Hello Ada,\nyour link is ready.\n"
    assert rich.get_content().strip() == HTML_BODY


async def test_outbox_lists_every_recipient(database: Settings) -> None:
    stored = await send_welcome("Ada <ada@example.com>, grace@example.com")
    assert stored.recipients == "ada@example.com, grace@example.com"


async def test_admin_lists_and_shows_outbox_messages(client: httpx.AsyncClient) -> None:
    await make_user(Role.OWNER, email="owner@example.com", name="Olivia Owner")
    assert (await login(client, "owner@example.com")).status_code == 303
    first = await send_welcome()
    second = await send_welcome("Grace <grace@example.com>")

    listing = await client.get("/admin/outbox")
    assert listing.status_code == 200
    assert "Welcome to Encore" in listing.text
    assert "ada@example.com" in listing.text
    assert "grace@example.com" in listing.text
    assert f'href="/admin/outbox/{first.id}"' in listing.text
    assert f'href="/admin/outbox/{second.id}"' in listing.text

    page = await client.get(f"/admin/outbox/{first.id}")
    assert page.status_code == 200
    assert "Welcome to Encore" in page.text
    assert html.escape(first.message_id, quote=False) in page.text
    assert "ada@example.com" in page.text
    # The source is shown as text: the message's own markup is escaped, never rendered.
    assert "<script>alert('x')</script>" not in page.text
    assert "&lt;script&gt;" in page.text
    assert "Content-Type: multipart/alternative" in page.text


async def test_admin_outbox_missing_message(client: httpx.AsyncClient) -> None:
    await make_user(Role.OWNER, email="owner@example.com")
    await login(client, "owner@example.com")
    assert (await client.get("/admin/outbox/987654")).status_code == 404


async def test_admin_outbox_needs_permission(client: httpx.AsyncClient) -> None:
    await make_user(Role.OWNER, email="owner@example.com")
    await make_user(Role.MODERATOR, email="mod@example.com")
    stored = await send_welcome()

    anonymous = await client.get("/admin/outbox")
    assert anonymous.status_code in {302, 303, 307}
    assert anonymous.headers["location"].startswith("/login")

    await login(client, "mod@example.com")
    assert (await client.get("/admin/outbox")).status_code == 403
    refused = await client.get(f"/admin/outbox/{stored.id}")
    assert refused.status_code == 403
    assert "Welcome to Encore" not in refused.text
