"""Delivery: the Mailer protocol, an in-memory mailer for tests, and SMTP on aiosmtplib."""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Protocol
from urllib.parse import parse_qs, unquote, urlsplit

import aiosmtplib


class SendError(Exception):
    """Delivery failed; `permanent` tells a 5xx refusal from a transient failure."""

    def __init__(self, message: str, *, permanent: bool) -> None:
        super().__init__(message)
        self.permanent = permanent


class Mailer(Protocol):
    """Something that delivers a composed message."""

    async def send(self, message: EmailMessage) -> None:
        """Deliver one message or raise SendError."""


@dataclass
class MemoryMailer:
    """Keeps every message in a list: the fake shipped beside the interface."""

    sent: list[EmailMessage] = field(default_factory=list)

    async def send(self, message: EmailMessage) -> None:
        """Remember the message."""
        self.sent.append(message)


@dataclass
class SmtpMailer:
    """Sends over SMTP with optional implicit TLS, STARTTLS and AUTH."""

    hostname: str
    port: int
    username: str | None = None
    password: str | None = None
    use_tls: bool = False
    start_tls: bool | None = None  # None: upgrade when the server offers it
    timeout: float = 30.0
    tls_context: ssl.SSLContext | None = None

    async def send(self, message: EmailMessage) -> None:
        """Deliver one message, classifying failures as transient or permanent."""
        try:
            await aiosmtplib.send(
                message,
                hostname=self.hostname,
                port=self.port,
                username=self.username,
                password=self.password,
                use_tls=self.use_tls,
                start_tls=self.start_tls,
                timeout=self.timeout,
                tls_context=self.tls_context,
            )
        except aiosmtplib.SMTPResponseException as exc:
            raise SendError(f"{exc.code} {exc.message}", permanent=500 <= exc.code < 600) from exc
        except aiosmtplib.SMTPRecipientsRefused as exc:
            # Every recipient was refused at RCPT: permanent only if every refusal was a 5xx.
            detail = "; ".join(f"{r.recipient}: {r.code} {r.message}" for r in exc.recipients)
            permanent = all(500 <= r.code < 600 for r in exc.recipients)
            raise SendError(detail, permanent=permanent) from exc
        except (aiosmtplib.SMTPException, OSError) as exc:
            raise SendError(str(exc) or type(exc).__name__, permanent=False) from exc


def smtp_mailer_from_url(url: str) -> SmtpMailer:
    """Build an SmtpMailer from smtp://user:pass@host:port, smtps://... or smtp+starttls://..."""
    parts = urlsplit(url)
    if not parts.hostname:
        raise ValueError("SMTP URL needs a host")
    query = parse_qs(parts.query)
    implicit_tls = parts.scheme == "smtps"
    start_tls: bool | None = True if parts.scheme == "smtp+starttls" else None
    if implicit_tls:
        start_tls = False
    return SmtpMailer(
        hostname=parts.hostname,
        port=parts.port or (465 if implicit_tls else 587 if start_tls else 25),
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
        use_tls=implicit_tls,
        start_tls=start_tls,
        timeout=float(query.get("timeout", ["30"])[0]),
    )
