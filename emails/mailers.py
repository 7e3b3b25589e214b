"""Delivery: the Mailer protocol, an in-memory mailer for tests, and SMTP on aiosmtplib."""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Protocol
from urllib.parse import parse_qs, unquote, urlsplit

import aiosmtplib

from emails.raw import RawMessage

CLOSE_WAIT_TURNS = 100  # at most about a second for a closing connection to let go


class SendError(Exception):
    """Delivery failed; `permanent` tells a 5xx refusal from a transient failure."""

    def __init__(self, message: str, *, permanent: bool) -> None:
        super().__init__(message)
        self.permanent = permanent


class Mailer(Protocol):
    """Something that delivers a composed message."""

    async def send(self, message: EmailMessage) -> None:
        """Deliver one message or raise SendError."""


# Told, as soon as it is known, how each message of a batch went (its index, None when sent).
Report = Callable[[int, "SendError | None"], None]


def _ignore(index: int, result: SendError | None) -> None:
    """The report of a caller that only wants the list at the end."""


class BulkMailer(Mailer, Protocol):
    """A mailer that also takes many prepared messages at once."""

    async def send_many(
        self, messages: Sequence[RawMessage], report: Report = _ignore
    ) -> list[SendError | None]:
        """Deliver each message; per message None (sent) or why it was not."""


def parse_raw(message: RawMessage) -> EmailMessage:
    """A prepared message as an `EmailMessage`, for mailers that only take those."""
    parsed = message_from_bytes(message.data, policy=policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed


async def send_each(
    mailer: Mailer, messages: Sequence[RawMessage], report: Report = _ignore
) -> list[SendError | None]:
    """Deliver prepared messages through any mailer; per message None or the error.

    `report` hears of each message as soon as it is settled, so that a caller can record
    what was sent while the rest of the batch is still on its way.
    """
    send_many = getattr(mailer, "send_many", None)
    if send_many is not None:
        results: list[SendError | None] = await send_many(messages, report)
        return results
    outcome: list[SendError | None] = []
    for index, message in enumerate(messages):
        result: SendError | None = None
        try:
            await mailer.send(parse_raw(message))
        except SendError as error:
            result = error
        except Exception as error:  # a mailer's own failure is transient for the row
            result = SendError(f"{type(error).__name__}: {error}", permanent=False)
        outcome.append(result)
        report(index, result)
    return outcome


class RateLimit:
    """At most `per_second` messages per second across every connection (None: no cap)."""

    def __init__(self, per_second: float | None) -> None:
        self.interval = 1.0 / per_second if per_second else 0.0
        self._next = 0.0
        self._lock = asyncio.Lock()

    async def take(self) -> None:
        """Wait for the next free slot."""
        if not self.interval:
            return
        async with self._lock:
            now = time.monotonic()
            wait = self._next - now
            self._next = max(now, self._next) + self.interval
        if wait > 0:
            await asyncio.sleep(wait)


@dataclass
class MemoryMailer:
    """Keeps every message in a list: the fake shipped beside the interface."""

    sent: list[EmailMessage] = field(default_factory=list)

    async def send(self, message: EmailMessage) -> None:
        """Remember the message."""
        self.sent.append(message)

    async def send_many(
        self, messages: Sequence[RawMessage], report: Report = _ignore
    ) -> list[SendError | None]:
        """Remember each message, parsed back as a receiver would read it."""
        for index, message in enumerate(messages):
            self.sent.append(parse_raw(message))
            report(index, None)
        return [None] * len(messages)


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
    connections: int = 4  # reused connections for `send_many`
    rate_per_second: float | None = None  # a cap across all connections (None: none)

    async def send(self, message: EmailMessage) -> None:
        """Deliver one message, classifying failures as transient or permanent."""
        client = self._client()
        try:
            await self.connect(client)
            await client.send_message(message)
        except aiosmtplib.SMTPResponseException as exc:
            raise SendError(f"{exc.code} {exc.message}", permanent=500 <= exc.code < 600) from exc
        except aiosmtplib.SMTPRecipientsRefused as exc:
            # Every recipient was refused at RCPT: permanent only if every refusal was a 5xx.
            detail = "; ".join(f"{r.recipient}: {r.code} {r.message}" for r in exc.recipients)
            permanent = all(500 <= r.code < 600 for r in exc.recipients)
            raise SendError(detail, permanent=permanent) from exc
        except (aiosmtplib.SMTPException, OSError) as exc:
            raise SendError(str(exc) or type(exc).__name__, permanent=False) from exc
        finally:
            await _quit(client)

    def _client(self) -> aiosmtplib.SMTP:
        return aiosmtplib.SMTP(
            hostname=self.hostname,
            port=self.port,
            use_tls=self.use_tls,
            start_tls=self.start_tls,
            timeout=self.timeout,
            tls_context=self.tls_context,
        )

    async def connect(self, client: aiosmtplib.SMTP) -> None:
        """Connect a client (with TLS as configured), then sign in.

        Signing in separately keeps a refused login's connection in our hands, so that it is
        closed properly rather than left to the garbage collector.
        """
        await client.connect()
        if self.username:
            await client.login(self.username, self.password or "")

    async def send_many(
        self, messages: Sequence[RawMessage], report: Report = _ignore
    ) -> list[SendError | None]:
        """Deliver over up to `connections` reused connections, within the rate cap.

        A connection that drops or fails is replaced for the next message; the message it was
        carrying is reported as a transient failure (it may or may not have arrived: the row's
        stable Message-ID lets the receiving side recognise a copy when it is tried again).
        """
        results: list[SendError | None] = [None] * len(messages)
        pending = list(range(len(messages) - 1, -1, -1))
        limit = RateLimit(self.rate_per_second)

        async def worker() -> None:
            client: aiosmtplib.SMTP | None = None
            try:
                while pending:
                    index = pending.pop()
                    if limit.interval:
                        await limit.take()
                    if client is None:
                        client = self._client()
                    results[index], usable = await _deliver(self, client, messages[index])
                    report(index, results[index])
                    if not usable:
                        await _quit(client)
                        client = None
            finally:
                if client is not None:
                    await _quit(client)

        workers = max(1, min(self.connections, len(messages)))
        await asyncio.gather(*(worker() for _ in range(workers)))
        return results


def _refusal(refused: Sequence[tuple[str, int, str]]) -> SendError:
    detail = "; ".join(f"{recipient}: {code} {text}" for recipient, code, text in refused)
    return SendError(detail, permanent=all(500 <= code < 600 for _, code, _ in refused))


async def _deliver(
    mailer: SmtpMailer, client: aiosmtplib.SMTP, message: RawMessage
) -> tuple[SendError | None, bool]:
    """Send one message on a connection (opened if needed); the error and whether to keep it."""
    try:
        if not client.is_connected:
            await mailer.connect(client)
        refused, _ = await client.sendmail(message.sender, [message.recipient], message.data)
    except aiosmtplib.SMTPRecipientsRefused as exc:
        error = _refusal([(r.recipient, r.code, r.message) for r in exc.recipients])
        return error, await _reset(client)
    except aiosmtplib.SMTPResponseException as exc:
        error = SendError(f"{exc.code} {exc.message}", permanent=500 <= exc.code < 600)
        return error, exc.code != 421 and await _reset(client)
    except (aiosmtplib.SMTPException, OSError) as exc:
        return SendError(str(exc) or type(exc).__name__, permanent=False), False
    if refused:
        return _refusal([(r, a.code, a.message) for r, a in refused.items()]), True
    return None, True


async def _reset(client: aiosmtplib.SMTP) -> bool:
    """Clear a refused transaction (RSET) so the connection can carry the next message."""
    if not client.is_connected:
        return False
    try:
        await client.rset()
    except (aiosmtplib.SMTPException, OSError):
        return False
    return True


async def _quit(client: aiosmtplib.SMTP) -> None:
    """Say goodbye if the connection still works, else close it; either way, let it close.

    A closed transport finishes closing on the event loop's next turns; waiting for them here
    means no socket is left open behind a connection the caller has given up.
    """
    protocol = client.protocol
    if client.is_connected:
        try:
            await client.quit()
        except (aiosmtplib.SMTPException, OSError):
            client.close()
    else:
        client.close()
    # `connection_lost` marks the socket closed (TLS needs a few turns to shut down).
    for _ in range(CLOSE_WAIT_TURNS):
        if protocol is None or getattr(protocol, "_connection_lost", True):
            return
        await asyncio.sleep(0.01)


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
        connections=max(1, min(32, int(query.get("connections", ["4"])[0]))),
        rate_per_second=float(query["rate"][0]) if "rate" in query else None,
    )
