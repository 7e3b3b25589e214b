"""SmtpMailer against a real aiosmtpd server on loopback; compose() and URL parsing."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import ssl
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from emails import SendError, SmtpMailer, compose, smtp_mailer_from_url
from emails.message import HeaderInjectionError, address

HOST = "127.0.0.1"
SMTP_USER = "mailer"
SMTP_PASSWORD = "s3cret-pass"


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def message(**overrides: str) -> EmailMessage:
    """A text + HTML message with a fixed Message-ID."""
    fields: dict[str, Any] = {
        "sender": "Encore <encore@example.com>",
        "to": "Ada <ada@example.com>",
        "subject": "Your webinar starts soon",
        "text": "Hello Ada,\nit starts in one hour.\n",
        "html": "<p>Hello Ada,<br>it starts in <b>one hour</b>.</p>",
        "message_id": "<reminder-42@example.com>",
    }
    fields.update(overrides)
    return compose(**fields)


# --- a real SMTP server -----------------------------------------------------------------------


@dataclass
class Received:
    """One message as the server accepted it."""

    mail_from: str
    rcpt_tos: list[str]
    content: bytes
    tls: bool
    authenticated: bool


@dataclass
class Recorder:
    """An aiosmtpd handler that accepts everything and keeps it."""

    received: list[Received] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        content = envelope.original_content or envelope.content
        self.received.append(
            Received(
                mail_from=envelope.mail_from,
                rcpt_tos=list(envelope.rcpt_tos),
                content=bytes(content),
                tls=server.transport.get_extra_info("ssl_object") is not None,
                authenticated=bool(session.authenticated),
            )
        )
        return "250 2.0.0 Message accepted for delivery"


@dataclass
class Refuser:
    """An aiosmtpd handler that refuses at one stage of the transaction with one reply."""

    stage: str
    reply: str

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: list[str]
    ) -> str:
        if self.stage == "RCPT":
            return self.reply
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        return self.reply


def check_login(
    server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any
) -> AuthResult:
    """aiosmtpd authenticator: one known user and password."""
    ok = (
        isinstance(auth_data, LoginPassword)
        and auth_data.login == SMTP_USER.encode()
        and auth_data.password == SMTP_PASSWORD.encode()
    )
    # handled=False: aiosmtpd then answers a failure with 535 itself.
    return AuthResult(success=ok, handled=False)


def start_controller(handler: Any, **kwargs: Any) -> Controller:
    """Start aiosmtpd on a free loopback port (again on another one if it was taken meanwhile)."""
    for attempt in range(3):
        controller = Controller(
            handler, hostname=HOST, port=free_port(), ready_timeout=10, **kwargs
        )
        try:
            controller.start()
        except OSError:
            if attempt == 2:
                raise
            continue
        return controller
    raise AssertionError("unreachable")


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def plain_server(recorder: Recorder) -> Iterator[Controller]:
    """A plain SMTP server without TLS or AUTH."""
    controller = start_controller(recorder)
    yield controller
    controller.stop()


@dataclass(frozen=True)
class Certificate:
    """A self-signed certificate for 127.0.0.1 and the contexts of both ends."""

    cert_path: Path
    key_path: Path

    def server_context(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.cert_path, self.key_path)
        return context

    def client_context(self) -> ssl.SSLContext:
        # Verifies the chain and the host name: the test trusts exactly this certificate.
        return ssl.create_default_context(cafile=str(self.cert_path))


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> Certificate:
    """Generate a fresh self-signed certificate valid for 127.0.0.1 and localhost."""
    folder = tmp_path_factory.mktemp("tls")
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Encore test SMTP")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address(HOST)), x509.DNSName("localhost")]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(key.public_key()), critical=False
        )
        .sign(key, hashes.SHA256())
    )
    cert_path = folder / "cert.pem"
    key_path = folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return Certificate(cert_path=cert_path, key_path=key_path)


@pytest.fixture
def starttls_server(recorder: Recorder, certificate: Certificate) -> Iterator[Controller]:
    """A server that requires STARTTLS and then AUTH before accepting mail."""
    controller = start_controller(
        recorder,
        tls_context=certificate.server_context(),
        require_starttls=True,
        authenticator=check_login,
        auth_required=True,
        auth_require_tls=True,
    )
    yield controller
    controller.stop()


# --- delivery ---------------------------------------------------------------------------------


async def test_plain_delivery_keeps_parts_and_message_id(
    plain_server: Controller, recorder: Recorder
) -> None:
    mailer = SmtpMailer(hostname=HOST, port=plain_server.port, timeout=10)
    await mailer.send(message())

    assert len(recorder.received) == 1
    got = recorder.received[0]
    assert got.mail_from == "encore@example.com"
    assert got.rcpt_tos == ["ada@example.com"]
    assert not got.tls
    parsed = message_from_bytes(got.content, policy=policy.default)
    assert isinstance(parsed, EmailMessage)
    assert parsed["Message-ID"] == "<reminder-42@example.com>"
    assert parsed["Subject"] == "Your webinar starts soon"
    assert parsed.get_content_type() == "multipart/alternative"
    text = parsed.get_body(("plain",))
    html = parsed.get_body(("html",))
    assert text is not None
    assert html is not None
    # Line endings travel as CRLF on the wire.
    assert text.get_content().replace("\r\n", "\n") == "Hello Ada,\nit starts in one hour.\n"
    assert "<b>one hour</b>" in html.get_content()


async def test_starttls_with_auth(
    starttls_server: Controller, recorder: Recorder, certificate: Certificate
) -> None:
    mailer = SmtpMailer(
        hostname=HOST,
        port=starttls_server.port,
        username=SMTP_USER,
        password=SMTP_PASSWORD,
        start_tls=True,
        tls_context=certificate.client_context(),
        timeout=10,
    )
    await mailer.send(message())

    assert len(recorder.received) == 1
    assert recorder.received[0].tls
    assert recorder.received[0].authenticated
    parsed = message_from_bytes(recorder.received[0].content, policy=policy.default)
    assert parsed["Message-ID"] == "<reminder-42@example.com>"


async def test_starttls_is_used_when_offered(
    starttls_server: Controller, recorder: Recorder, certificate: Certificate
) -> None:
    # start_tls=None (the URL default for smtp://) upgrades because the server offers it.
    mailer = SmtpMailer(
        hostname=HOST,
        port=starttls_server.port,
        username=SMTP_USER,
        password=SMTP_PASSWORD,
        tls_context=certificate.client_context(),
        timeout=10,
    )
    await mailer.send(message())
    assert [r.tls for r in recorder.received] == [True]


async def test_wrong_password_is_a_permanent_error(
    starttls_server: Controller, recorder: Recorder, certificate: Certificate
) -> None:
    mailer = SmtpMailer(
        hostname=HOST,
        port=starttls_server.port,
        username=SMTP_USER,
        password="wrong",
        start_tls=True,
        tls_context=certificate.client_context(),
        timeout=10,
    )
    with pytest.raises(SendError) as caught:
        await mailer.send(message())
    assert caught.value.permanent
    assert "535" in str(caught.value)
    assert recorder.received == []


# aiosmtplib leaves the socket of a failed TLS handshake for the garbage collector; under load
# that shows up as an unraisable ResourceWarning here. The refusal itself is what this tests.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
@pytest.mark.filterwarnings("ignore::ResourceWarning")
async def test_untrusted_certificate_is_a_transient_error(
    starttls_server: Controller, recorder: Recorder
) -> None:
    # The default context does not trust the self-signed certificate: nothing is sent in clear.
    mailer = SmtpMailer(
        hostname=HOST,
        port=starttls_server.port,
        username=SMTP_USER,
        password=SMTP_PASSWORD,
        start_tls=True,
        tls_context=ssl.create_default_context(),
        timeout=10,
    )
    with pytest.raises(SendError) as caught:
        await mailer.send(message())
    assert not caught.value.permanent
    assert recorder.received == []


async def test_implicit_tls(recorder: Recorder, certificate: Certificate) -> None:
    controller = start_controller(recorder, ssl_context=certificate.server_context())
    try:
        mailer = SmtpMailer(
            hostname=HOST,
            port=controller.port,
            use_tls=True,
            start_tls=False,
            tls_context=certificate.client_context(),
            timeout=10,
        )
        await mailer.send(message())
    finally:
        controller.stop()
    assert [r.tls for r in recorder.received] == [True]


@pytest.mark.parametrize(
    ("stage", "reply", "permanent"),
    [
        ("RCPT", "550 5.1.1 No such user here", True),
        ("DATA", "550 5.7.1 Message refused", True),
        ("RCPT", "451 4.3.0 Try again later", False),
        ("DATA", "451 4.3.0 Try again later", False),
    ],
)
async def test_refusals_are_classified(stage: str, reply: str, permanent: bool) -> None:
    controller = start_controller(Refuser(stage=stage, reply=reply))
    try:
        mailer = SmtpMailer(hostname=HOST, port=controller.port, timeout=10)
        with pytest.raises(SendError) as caught:
            await mailer.send(message())
    finally:
        controller.stop()
    assert caught.value.permanent is permanent
    assert reply[:3] in str(caught.value)


@pytest.fixture
async def dropping_port() -> AsyncIterator[int]:
    """A bare SMTP server that hangs up in the middle of the message body."""
    got_body = asyncio.Event()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        async def reply(line: bytes) -> None:
            writer.write(line + b"\r\n")
            await writer.drain()

        try:
            await reply(b"220 dropper ESMTP")
            while True:
                line = await reader.readline()
                if not line:
                    return
                verb = line[:4].upper()
                if verb == b"EHLO":
                    await reply(b"250-dropper\r\n250 8BITMIME")
                elif verb in {b"MAIL", b"RCPT"}:
                    await reply(b"250 OK")
                elif verb == b"DATA":
                    await reply(b"354 Go ahead")
                    await reader.read(64)  # a first piece of the message, then hang up
                    got_body.set()
                    return
                else:
                    await reply(b"502 Not implemented")
        finally:
            writer.close()

    server = await asyncio.start_server(serve, HOST, 0)
    port: int = server.sockets[0].getsockname()[1]
    try:
        yield port
        assert got_body.is_set(), "the client never reached the message body"
    finally:
        server.close()
        await server.wait_closed()


async def test_connection_dropped_mid_message_is_transient(dropping_port: int) -> None:
    mailer = SmtpMailer(hostname=HOST, port=dropping_port, timeout=10)
    with pytest.raises(SendError) as caught:
        await mailer.send(message(text="x" * 200_000))
    assert not caught.value.permanent


async def test_nobody_listening_is_transient() -> None:
    mailer = SmtpMailer(hostname=HOST, port=free_port(), timeout=5)
    with pytest.raises(SendError) as caught:
        await mailer.send(message())
    assert not caught.value.permanent
    assert str(caught.value)


# --- composing --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "overrides",
    [
        {"subject": "Hello\r\nBcc: victim@example.com"},
        {"subject": "Hello\nBcc: victim@example.com"},
        {"subject": "Hello\rBcc: victim@example.com"},
        {"to": "ada@example.com\r\nBcc: victim@example.com"},
        {"to": "ada@example.com\nCc: victim@example.com"},
        {"sender": "encore@example.com\nBcc: victim@example.com"},
        {"message_id": "<x@example.com>\r\nBcc: victim@example.com"},
    ],
)
def test_compose_refuses_line_breaks(overrides: dict[str, str]) -> None:
    with pytest.raises(HeaderInjectionError):
        message(**overrides)


@pytest.mark.parametrize(
    ("name", "email"),
    [
        ("Ada\r\nBcc: victim@example.com", "ada@example.com"),
        ("Ada\nBcc: victim@example.com", "ada@example.com"),
        ("Ada", "ada@example.com\nBcc: victim@example.com"),
    ],
)
def test_address_refuses_line_breaks(name: str, email: str) -> None:
    with pytest.raises(HeaderInjectionError):
        address(name, email)


def test_compose_refuses_line_breaks_in_extra_headers() -> None:
    with pytest.raises(HeaderInjectionError):
        compose(
            sender="encore@example.com",
            to="ada@example.com",
            subject="Hi",
            text="Hi",
            headers={"List-Unsubscribe": "<https://x.example>\r\nBcc: victim@example.com"},
        )


def test_address_quotes_display_names() -> None:
    assert address("Ada Lovelace", "ada@example.com") == "Ada Lovelace <ada@example.com>"
    assert address("Lovelace, Ada", "ada@example.com") == '"Lovelace, Ada" <ada@example.com>'


def test_compose_text_only_and_generated_message_id() -> None:
    composed = compose(
        sender="Encore <encore@example.com>", to="a@example.com", subject="S", text="T"
    )
    assert composed.get_content_type() == "text/plain"
    assert composed["Message-ID"].endswith("@example.com>")
    assert composed["Date"]


# --- SMTP URLs --------------------------------------------------------------------------------


def test_url_plain_with_credentials() -> None:
    mailer = smtp_mailer_from_url("smtp://user:pass@mail.example.com:2525")
    assert (mailer.hostname, mailer.port) == ("mail.example.com", 2525)
    assert (mailer.username, mailer.password) == ("user", "pass")
    assert mailer.use_tls is False
    assert mailer.start_tls is None
    assert mailer.timeout == 30.0


def test_url_defaults_and_escapes() -> None:
    mailer = smtp_mailer_from_url("smtp://mail.example.com")
    assert mailer.port == 25
    assert mailer.username is None
    assert mailer.password is None
    escaped = smtp_mailer_from_url(
        "smtp://me%40example.com:p%40ss%3Aword@mail.example.com?timeout=5"
    )
    assert escaped.username == "me@example.com"
    assert escaped.password == "p@ss:word"
    assert escaped.timeout == 5.0


def test_url_smtps() -> None:
    mailer = smtp_mailer_from_url("smtps://user:pass@mail.example.com")
    assert mailer.port == 465
    assert mailer.use_tls is True
    assert mailer.start_tls is False
    assert smtp_mailer_from_url("smtps://mail.example.com:4650").port == 4650


def test_url_starttls() -> None:
    mailer = smtp_mailer_from_url("smtp+starttls://user:pass@mail.example.com")
    assert mailer.port == 587
    assert mailer.use_tls is False
    assert mailer.start_tls is True
    assert (mailer.username, mailer.password) == ("user", "pass")


def test_url_without_host_is_refused() -> None:
    with pytest.raises(ValueError, match="host"):
        smtp_mailer_from_url("smtp://")
