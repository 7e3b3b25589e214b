"""Bulk sending: messages built as bytes, and SmtpMailer.send_many over reused connections."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.header import decode_header, make_header
from email.message import EmailMessage
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from emails import SendError, SmtpMailer
from emails.mailers import MemoryMailer, send_each
from emails.message import HeaderInjectionError
from emails.raw import RawMessage, Writer, build
from tests.emails.test_smtp import (
    HOST,
    SMTP_PASSWORD,
    SMTP_USER,
    Certificate,
    Recorder,
    certificate,
    check_login,
    dropping_port,
    start_controller,
)

__all__ = ["certificate", "dropping_port"]  # fixtures shared with the SMTP tests

TEXT = (
    "Hello Anna,\n\n"
    "“Wachstum” starts tomorrow at 10:00 — see you there.   \n"
    "A long line: " + "word " * 40 + "\n"
    ".a line that starts with a dot\n"
    "From the team, with 100% = commitment\n"
)
HTML = '<p>Hello Anna,</p>\n<p><a href="https://example.com/j/abc?x=1&amp;y=2">Join</a></p>'


def raw(number: int = 0, **changes: Any) -> RawMessage:
    fields: dict[str, Any] = {
        "sender": "Encore Team <encore@example.com>",
        "sender_address": "encore@example.com",
        "to_name": "Müller, Anna",
        "to_address": f"anna{number}@example.com",
        "subject": "Morgen: Wachstum für alle Größen",
        "text": TEXT,
        "html": HTML,
        "message_id": f"<step-{number}@example.com>",
        "date": "Thu, 03 Dec 2026 15:00:00 GMT",
        "headers": {
            "List-Unsubscribe": "<https://example.com/u/1.abc>",
            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
        },
    }
    fields.update(changes)
    return build(**fields)


def parsed(data: bytes) -> EmailMessage:
    message = message_from_bytes(data, policy=policy.default)
    assert isinstance(message, EmailMessage)
    return message


def test_a_built_message_reads_back_as_written() -> None:
    message = raw()
    email = parsed(message.data)
    assert email["Subject"] == "Morgen: Wachstum für alle Größen"
    assert email["To"].addresses[0].display_name == "Müller, Anna"
    assert email["To"].addresses[0].addr_spec == "anna0@example.com"
    assert email["From"].addresses[0].display_name == "Encore Team"
    assert email["Message-ID"] == "<step-0@example.com>"
    assert email["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    plain = email.get_body(("plain",))
    rich = email.get_body(("html",))
    assert plain is not None
    assert rich is not None
    # On the wire every line ends in CRLF; the text is otherwise exactly as written.
    assert plain.get_content().replace("\r\n", "\n") == TEXT
    assert rich.get_content().replace("\r\n", "\n").rstrip("\n") == HTML
    assert (message.sender, message.recipient) == ("encore@example.com", "anna0@example.com")
    assert max(len(line) for line in message.data.split(b"\r\n")) <= 998
    assert b"\n" not in message.data.replace(b"\r\n", b"")


@pytest.mark.parametrize(
    ("name", "shown"),
    [
        ("Ann Example", "Ann Example <ann@example.com>"),
        ('Ann "The Analyst" Example', '"Ann \\"The Analyst\\" Example" <ann@example.com>'),
        ("", "ann@example.com"),
    ],
)
def test_display_names_are_quoted_as_needed(name: str, shown: str) -> None:
    message = raw(to_name=name, to_address="ann@example.com")
    assert f"To: {shown}\r\n".encode() in message.data
    assert parsed(message.data)["To"].addresses[0].display_name == name


@pytest.mark.parametrize(
    "changes",
    [
        {"subject": "Hi\r\nBcc: eve@example.com"},
        {"to_name": "Ann\nBcc: eve@example.com"},
        {"headers": {"X-Note": "a\r\nBcc: eve@example.com"}},
        {"message_id": "<a@b>\r\nBcc: eve@example.com"},
    ],
)
def test_line_breaks_in_headers_are_refused(changes: dict[str, Any]) -> None:
    with pytest.raises(HeaderInjectionError):
        raw(**changes)


@pytest.mark.parametrize("address", ["jörg@example.com", "a b@example.com", "a@b@c", "<a@b.c>"])
def test_addresses_the_fast_path_cannot_write_are_refused(address: str) -> None:
    with pytest.raises(ValueError, match="not a plain address"):
        raw(to_address=address)


def test_a_writer_shares_the_batchs_headers_and_writes_what_build_writes() -> None:
    writer = Writer(
        sender="Encore Team <encore@example.com>",
        sender_address="encore@example.com",
        date="Thu, 03 Dec 2026 15:00:00 GMT",
        headers={"Reply-To": "help@example.com"},
    )
    first, second = (
        writer.write(
            to_name=name,
            to_address=f"{number}@example.com",
            subject="Morgen",
            text=TEXT,
            html=HTML,
            message_id=f"<{number}@example.com>",
            headers={"List-Unsubscribe": f"<https://example.com/u/{number}>"},
        )
        for number, name in ((1, "Ann"), (2, "Bob"))
    )
    for message, name in ((first, "Ann"), (second, "Bob")):
        email = parsed(message.data)
        assert email["Reply-To"] == "help@example.com"
        assert email["From"].addresses[0].display_name == "Encore Team"
        assert email["To"].addresses[0].display_name == name
        plain = email.get_body(("plain",))
        assert plain is not None
        assert plain.get_content().replace("\r\n", "\n") == TEXT
    assert first.sender == "encore@example.com"
    alone = raw(1, to_name="Ann", to_address="1@example.com", subject="Morgen")
    head = alone.data.split(b"\r\n\r\n", 1)[0]
    assert head.replace(b"<step-1@", b"<1@").split(b"\r\n")[:4] == (first.data.split(b"\r\n")[:4])


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("Ünïcödé Ñame " * 20, "Grüße " * 400 + "\n"),  # a long non-ASCII name, a long line
        ("José", "x" * 3000),  # one word longer than any line may be, no final newline
        ("Zoë", "old Mac line ends\rwindows\r\nunix\n.dot\nFrom here\n= sign \ttab \n"),
        ("A\u2028B", "\u2028 separators \u0085 and \x0c form feed\n"),
    ],
)
def test_awkward_names_and_bodies_read_back_as_written(name: str, text: str) -> None:
    subject = f"Morgen: {name}"
    message = raw(to_name=name, subject=subject, text=text, html=f"<p>{text}</p>")
    assert max(len(line) for line in message.data.split(b"\r\n")) <= 998
    assert b"\n" not in message.data.replace(b"\r\n", b"")
    assert b"\r" not in message.data.replace(b"\r\n", b"")
    email = parsed(message.data)
    assert email["To"].addresses[0].addr_spec == "anna0@example.com"
    # RFC 2047 decoding joins adjacent encoded words (the standard library's address parser
    # keeps the space between them, even for names it folds itself).
    phrase = message.header("To").rsplit(" <", 1)[0].replace("\r\n", "")
    assert str(make_header(decode_header(phrase))) == name.strip()
    plain = email.get_body(("plain",))
    rich = email.get_body(("html",))
    assert plain is not None
    assert rich is not None
    assert email["Subject"] == subject
    written = text.replace("\r\n", "\n").replace("\r", "\n")
    assert plain.get_content().replace("\r\n", "\n") == written
    assert rich.get_content().replace("\r\n", "\n") == f"<p>{written}</p>"
    # Quoted-printable lines stay within 76 characters (RFC 2045).
    body = message.data.split(b"\r\n\r\n", 1)[1]
    assert max(len(line) for line in body.split(b"\r\n")) <= 76


@pytest.mark.parametrize("name", ["Ann\rBcc: eve@example.com", "Ann\r\n", "\nAnn"])
def test_a_writer_refuses_line_breaks_in_names(name: str) -> None:
    with pytest.raises(HeaderInjectionError):
        raw(to_name=name)


@pytest.mark.parametrize(
    "headers", [{"Reply-To": "a@example.com\r\nBcc: eve@example.com"}, {"X\nY": "z"}]
)
def test_a_writer_refuses_line_breaks_in_shared_headers(headers: dict[str, str]) -> None:
    with pytest.raises(HeaderInjectionError):
        Writer(
            sender="Encore <encore@example.com>",
            sender_address="encore@example.com",
            date="Thu, 03 Dec 2026 15:00:00 GMT",
            headers=headers,
        )


async def test_a_mailer_without_send_many_gets_each_message_parsed() -> None:
    class OneByOne:
        def __init__(self) -> None:
            self.sent: list[EmailMessage] = []

        async def send(self, message: EmailMessage) -> None:
            if "refuse" in str(message["To"]):
                raise SendError("550 no such user", permanent=True)
            self.sent.append(message)

    mailer = OneByOne()
    results = await send_each(mailer, [raw(1), raw(2, to_name="refuse"), raw(3)])
    assert [r is None for r in results] == [True, False, True]
    assert isinstance(results[1], SendError)
    assert results[1].permanent
    assert [m["Message-ID"] for m in mailer.sent] == [
        "<step-1@example.com>",
        "<step-3@example.com>",
    ]
    memory = MemoryMailer()
    assert await send_each(memory, [raw(4)]) == [None]
    assert memory.sent[0]["Subject"] == "Morgen: Wachstum für alle Größen"


# --- over SMTP --------------------------------------------------------------------------------


@dataclass
class CountingRecorder(Recorder):
    """Accepts everything and counts the connections it was sent on."""

    sessions: set[int] = field(default_factory=set)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.sessions.add(id(session))
        return await super().handle_DATA(server, session, envelope)


@dataclass
class Moody(CountingRecorder):
    """Answers RCPT for some addresses with a fixed reply, the first time only if `once`."""

    replies: dict[str, str] = field(default_factory=dict)
    once: bool = False

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: list[str]
    ) -> str:
        reply = self.replies.get(address)
        if reply is not None:
            if self.once:
                del self.replies[address]
            return reply
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"


@pytest.fixture
def counting() -> Iterator[tuple[CountingRecorder, Controller]]:
    handler = CountingRecorder()
    controller = start_controller(handler)
    yield handler, controller
    controller.stop()


async def test_many_messages_share_a_few_connections(
    counting: tuple[CountingRecorder, Controller],
) -> None:
    handler, controller = counting
    mailer = SmtpMailer(hostname=HOST, port=controller.port, timeout=10, connections=3)
    results = await mailer.send_many([raw(n) for n in range(12)])
    assert results == [None] * 12
    assert len(handler.received) == 12
    assert 1 <= len(handler.sessions) <= 3
    ids = sorted(parsed(r.content)["Message-ID"] for r in handler.received)
    assert ids == sorted(f"<step-{n}@example.com>" for n in range(12))
    assert {r.mail_from for r in handler.received} == {"encore@example.com"}


async def test_starttls_and_auth_on_reused_connections(certificate: Certificate) -> None:
    handler = CountingRecorder()
    controller = start_controller(
        handler,
        tls_context=certificate.server_context(),
        require_starttls=True,
        authenticator=check_login,
        auth_require_tls=True,
    )
    try:
        mailer = SmtpMailer(
            hostname=HOST,
            port=controller.port,
            username=SMTP_USER,
            password=SMTP_PASSWORD,
            timeout=10,
            tls_context=certificate.client_context(),
            connections=2,
        )
        assert await mailer.send_many([raw(n) for n in range(5)]) == [None] * 5
    finally:
        controller.stop()
    assert len(handler.received) == 5
    assert all(r.tls and r.authenticated for r in handler.received)


async def test_a_refused_recipient_fails_alone_and_the_connection_carries_on() -> None:
    handler = Moody(
        replies={
            "anna1@example.com": "451 4.3.0 Try again later",
            "anna3@example.com": "550 5.1.1 No such user",
        }
    )
    controller = start_controller(handler)
    try:
        mailer = SmtpMailer(hostname=HOST, port=controller.port, timeout=10, connections=1)
        results = await mailer.send_many([raw(n) for n in range(5)])
    finally:
        controller.stop()
    assert [r is None for r in results] == [True, False, True, False, True]
    assert isinstance(results[1], SendError)
    assert not results[1].permanent
    assert "451" in str(results[1])
    assert isinstance(results[3], SendError)
    assert results[3].permanent
    assert "550" in str(results[3])
    assert len(handler.received) == 3
    assert len(handler.sessions) == 1  # one connection throughout


async def test_451_then_250_is_delivered_on_the_next_attempt() -> None:
    handler = Moody(replies={"anna0@example.com": "451 4.7.1 Greylisted"}, once=True)
    controller = start_controller(handler)
    try:
        mailer = SmtpMailer(hostname=HOST, port=controller.port, timeout=10)
        (first,) = await mailer.send_many([raw(0)])
        (second,) = await mailer.send_many([raw(0)])
    finally:
        controller.stop()
    assert isinstance(first, SendError)
    assert not first.permanent
    assert second is None
    assert len(handler.received) == 1


async def test_a_connection_dropped_mid_message_is_transient_for_each(dropping_port: int) -> None:
    mailer = SmtpMailer(hostname=HOST, port=dropping_port, timeout=10, connections=2)
    results = await mailer.send_many([raw(n, text="x" * 200_000) for n in range(3)])
    assert all(isinstance(r, SendError) and not r.permanent for r in results)


async def test_the_rate_cap_spaces_messages_out(
    counting: tuple[CountingRecorder, Controller],
) -> None:
    handler, controller = counting
    mailer = SmtpMailer(
        hostname=HOST, port=controller.port, timeout=10, connections=3, rate_per_second=20
    )
    started = time.monotonic()
    assert await mailer.send_many([raw(n) for n in range(6)]) == [None] * 6
    # Six messages at 20 per second: the last may start 5 intervals (0.25 s) after the first.
    assert time.monotonic() - started >= 0.24
    assert len(handler.received) == 6


async def test_nothing_to_send_opens_no_connection() -> None:
    mailer = SmtpMailer(hostname=HOST, port=1, timeout=1)
    assert await asyncio.wait_for(mailer.send_many([]), 5) == []
