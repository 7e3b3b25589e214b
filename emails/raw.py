"""Fast message building for bulk sending: RFC 5322 bytes without `EmailMessage`.

Composing a message with the standard library's `EmailMessage` costs milliseconds (header
parsing and folding, policy objects), more than sending it. A sequence email is always the same
shape: a few headers and a `multipart/alternative` text and HTML body in UTF-8. `build` writes
exactly that with string joins and the C codecs of `binascii` (quoted-printable bodies, RFC 2047
encoded words for non-ASCII headers), so thousands of personalised messages take milliseconds
in all. It refuses what it cannot write safely (line breaks in headers, a non-ASCII address)
with `HeaderInjectionError` or `ValueError`; callers fall back to `compose` for the latter.
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
        """The first value of a header as written on the wire ("" when absent)."""
        head = self.data.split(b"\r\n\r\n", 1)[0].decode("ascii")
        prefix = f"{name.lower()}:"
        for line in head.split(CRLF):
            if line.lower().startswith(prefix):
                return line[len(prefix) :].strip()
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


def _quoted_printable(text: str) -> str:
    body = text.replace("\r\n", "\n").replace("\r", "\n")
    encoded = binascii.b2a_qp(body.encode(), quotetabs=False, istext=True, header=False)
    return encoded.decode("ascii").replace("\n", CRLF)


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
    lines = [
        f"From: {_from_header(sender, sender_address)}",
        f"To: {format_address(to_name, to_address)}",
        f"Subject: {encode_words(_one_line(subject, 'Subject'))}",
        f"Date: {_one_line(date, 'Date')}",
        f"Message-ID: {_one_line(message_id, 'Message-ID')}",
    ]
    for name, value in (headers or {}).items():
        lines.append(f"{_one_line(name, 'header name')}: {encode_words(_one_line(value, name))}")
    lines.append("MIME-Version: 1.0")
    text_part = [
        'Content-Type: text/plain; charset="utf-8"',
        "Content-Transfer-Encoding: quoted-printable",
        "",
        _quoted_printable(text),
    ]
    if html is None:
        lines.extend(text_part)
    else:
        boundary = _boundary()
        lines += [f'Content-Type: multipart/alternative; boundary="{boundary}"', ""]
        lines += [f"--{boundary}", *text_part]
        lines += [
            f"--{boundary}",
            'Content-Type: text/html; charset="utf-8"',
            "Content-Transfer-Encoding: quoted-printable",
            "",
            _quoted_printable(html),
            f"--{boundary}--",
        ]
    data = (CRLF.join(lines) + CRLF).encode("ascii")
    return RawMessage(bare_address(sender_address), to_address, message_id, subject, data)
