"""Fast message building for bulk sending: RFC 5322 bytes without `EmailMessage`.

Composing a message with the standard library's `EmailMessage` costs milliseconds (header
parsing and folding, policy objects), more than sending it. A sequence email is always the same
shape: a few headers and a `multipart/alternative` text and HTML body in UTF-8. A `Writer`
writes exactly that with string joins and the C codecs of `binascii` (quoted-printable bodies,
RFC 2047 encoded words for non-ASCII headers), checking and encoding once per batch what every
message shares (From, Date, Reply-To), so thousands of personalised messages take milliseconds
in all; `build` writes a single one. It refuses what it cannot write safely (line breaks in
headers, a non-ASCII address) with `HeaderInjectionError` or `ValueError`; callers fall back to
`compose` for the latter.
"""

from __future__ import annotations

import base64
import binascii
import itertools
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from email.utils import parseaddr
from functools import lru_cache

from emails.message import HeaderInjectionError

CRLF = "\r\n"
# A display name that needs no quoting: RFC 5322 atext and spaces.
_ATOM_PHRASE = re.compile(r"[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~ ]+")
_ENCODED_CHUNK = 45  # bytes of UTF-8 per encoded word: 60 base64 characters, within 75 in all
_BOUNDARY_PREFIX = secrets.token_hex(8)
_boundaries = itertools.count()


@dataclass(frozen=True)
class RawMessage:
    """A message as bytes on the wire, with its envelope."""

    sender: str  # envelope sender (bare address)
    recipient: str  # envelope recipient (bare address)
    message_id: str
    subject: str  # as written, for logs and the outbox
    data: bytes

    def header(self, name: str) -> str:
        """The first value of a header as written on the wire, unfolded ("" when absent)."""
        head = self.data.split(b"\r\n\r\n", 1)[0].decode("ascii")
        prefix = f"{name.lower()}:"
        lines = head.split(CRLF)
        for index, line in enumerate(lines):
            if line.lower().startswith(prefix):
                value = line[len(prefix) :]
                for more in lines[index + 1 :]:
                    if not more.startswith((" ", "\t")):
                        break
                    value += more  # a folded line goes on after its CRLF (RFC 5322 2.2.3)
                return value.strip()
        return ""


def _one_line(value: str, header: str) -> str:
    if "\r" in value or "\n" in value:
        raise HeaderInjectionError(f"{header} must be a single line")
    return value


def encode_words(value: str) -> str:
    """A header value as is when ASCII, else as RFC 2047 base64 encoded words."""
    if value.isascii():
        return value
    data = value.encode()
    words = []
    start = 0
    while start < len(data):
        end = min(start + _ENCODED_CHUNK, len(data))
        while end < len(data) and (data[end] & 0xC0) == 0x80:
            end -= 1  # never split a character between words
        words.append(f"=?utf-8?b?{base64.b64encode(data[start:end]).decode()}?=")
        start = end
    return f"{CRLF} ".join(words)


def bare_address(email: str) -> str:
    """An ASCII addr-spec; ValueError for anything else (the careful composer handles it)."""
    _one_line(email, "address")
    if not email.isascii() or email.count("@") != 1 or any(c in email for c in ' <>(),;:"\\'):
        raise ValueError(f"not a plain address: {email!r}")
    return email


def format_address(name: str, email: str) -> str:
    """`Name <email>`, quoted or encoded as the name needs."""
    address = bare_address(email)
    name = _one_line(name, "name").strip()
    if not name:
        return address
    if not name.isascii():
        return f"{encode_words(name)} <{address}>"
    if _ATOM_PHRASE.fullmatch(name):
        return f"{name} <{address}>"
    quoted = name.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{quoted}" <{address}>'


@lru_cache(maxsize=16)
def _from_header(sender: str, sender_address: str) -> str:
    """The From header of a sender as configured (the same for a whole batch)."""
    name, address = parseaddr(_one_line(sender, "From"))
    return format_address(name, address or sender_address)


def _boundary() -> str:
    """A MIME boundary: a random part per process and a counter.

    Bodies are quoted-printable, where "=" is always written "=3D", so "==" never occurs in them.
    """
    return f"=={_BOUNDARY_PREFIX}{next(_boundaries):x}=="


def _quoted_printable(text: str) -> bytes:
    """A body as quoted-printable UTF-8 with CRLF line ends (RFC 2045: lines of at most 76)."""
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    encoded = binascii.b2a_qp(text.encode(), quotetabs=False, istext=True, header=False)
    return encoded.replace(b"\n", b"\r\n")


_TEXT_HEAD = (
    b'Content-Type: text/plain; charset="utf-8"\r\n'
    b"Content-Transfer-Encoding: quoted-printable\r\n\r\n"
)
_HTML_HEAD = (
    b'Content-Type: text/html; charset="utf-8"\r\n'
    b"Content-Transfer-Encoding: quoted-printable\r\n\r\n"
)


class Writer:
    """Writes the messages of one sender and moment: what they share is checked and encoded once.

    `sender` is the From header as written, `date` the Date of every message, `headers` those
    every message carries after its own (such as Reply-To).
    """

    def __init__(
        self,
        *,
        sender: str,
        sender_address: str,
        date: str,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.envelope_sender = bare_address(sender_address)
        self.from_line = f"From: {_from_header(sender, sender_address)}"
        self.date_line = f"Date: {_one_line(date, 'Date')}"
        self.shared = [_header_line(name, value) for name, value in (headers or {}).items()]

    def write(
        self,
        *,
        to_name: str,
        to_address: str,
        subject: str,
        text: str,
        html: str | None,
        message_id: str,
        headers: Mapping[str, str] | None = None,
    ) -> RawMessage:
        """One message to one person, as bytes with its envelope."""
        lines = [
            self.from_line,
            f"To: {format_address(to_name, to_address)}",
            f"Subject: {encode_words(_one_line(subject, 'Subject'))}",
            self.date_line,
            f"Message-ID: {_one_line(message_id, 'Message-ID')}",
        ]
        if headers:
            lines += [_header_line(name, value) for name, value in headers.items()]
        lines += self.shared
        lines.append("MIME-Version: 1.0")
        if html is None:
            parts = [_TEXT_HEAD, _quoted_printable(text), b"\r\n"]
        else:
            boundary = _boundary()
            lines += [f'Content-Type: multipart/alternative; boundary="{boundary}"', ""]
            delimiter = f"--{boundary}\r\n".encode()
            parts = [
                delimiter,
                _TEXT_HEAD,
                _quoted_printable(text),
                b"\r\n",
                delimiter,
                _HTML_HEAD,
                _quoted_printable(html),
                f"\r\n--{boundary}--\r\n".encode(),
            ]
        data = b"".join([(CRLF.join(lines) + CRLF).encode("ascii"), *parts])
        return RawMessage(self.envelope_sender, to_address, message_id, subject, data)


def _header_line(name: str, value: str) -> str:
    return f"{_one_line(name, 'header name')}: {encode_words(_one_line(value, name))}"


def build(
    *,
    sender: str,
    sender_address: str,
    to_name: str,
    to_address: str,
    subject: str,
    text: str,
    html: str | None,
    message_id: str,
    date: str,
    headers: Mapping[str, str] | None = None,
) -> RawMessage:
    """One message: `sender` is the From header as written, the rest is encoded here."""
    writer = Writer(sender=sender, sender_address=sender_address, date=date)
    return writer.write(
        to_name=to_name,
        to_address=to_address,
        subject=subject,
        text=text,
        html=html,
        message_id=message_id,
        headers=headers,
    )
