"""Build standards-compliant multipart messages; headers cannot be injected."""

from __future__ import annotations

import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import formatdate


class HeaderInjectionError(ValueError):
    """A header value carried a line break."""


@dataclass(frozen=True)
class Attachment:
    """A file attached to a message, such as a calendar invitation."""

    filename: str
    content: bytes
    mime_type: str = "application/octet-stream"
    # Extra Content-Type parameters, such as {"method": "PUBLISH"} for text/calendar.
    params: Mapping[str, str] = field(default_factory=dict)


def _clean(value: str, header: str) -> str:
    if "\r" in value or "\n" in value:
        raise HeaderInjectionError(f"{header} must be a single line")
    return value


def compose(
    *,
    sender: str,
    to: str,
    subject: str,
    text: str,
    html: str | None = None,
    reply_to: str | None = None,
    message_id: str | None = None,
    headers: dict[str, str] | None = None,
    attachments: Sequence[Attachment] = (),
) -> EmailMessage:
    """A text (and optionally HTML) message with a stable Message-ID and optional attachments."""
    message = EmailMessage()
    message["From"] = _clean(sender, "From")
    message["To"] = _clean(to, "To")
    message["Subject"] = _clean(subject, "Subject")
    message["Date"] = formatdate(localtime=False, usegmt=True)
    domain = sender.rsplit("@", 1)[-1].strip(" >") or "localhost"
    # Short enough to stay on one header line, so parsers read it back unchanged.
    message["Message-ID"] = _clean(
        message_id or f"<{secrets.token_hex(12)}@{domain}>", "Message-ID"
    )
    if reply_to:
        message["Reply-To"] = _clean(reply_to, "Reply-To")
    for name, value in (headers or {}).items():
        message[_clean(name, "header name")] = _clean(value, name)
    message.set_content(text)
    if html is not None:
        message.add_alternative(html, subtype="html")
    for item in attachments:
        maintype, _, subtype = item.mime_type.partition("/")
        if not maintype or not subtype:
            raise ValueError(f"attachment type must be type/subtype, got {item.mime_type!r}")
        params = {_clean(k, "attachment parameter"): _clean(v, k) for k, v in item.params.items()}
        message.add_attachment(
            item.content,
            maintype=_clean(maintype, "attachment type"),
            subtype=_clean(subtype, "attachment type"),
            filename=_clean(item.filename, "attachment filename"),
            params=params,
        )
    return message


def address(name: str, email: str) -> str:
    """A display-name address, quoted as needed; refuses line breaks."""
    _clean(name, "name")
    _clean(email, "email")
    username, _, domain = email.partition("@")
    return str(Address(display_name=name, username=username, domain=domain))
