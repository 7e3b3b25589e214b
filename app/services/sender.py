"""Who emails come from: the From and Reply-To of the workspace, DKIM signing and DNS checks.

The sender is set in the admin (name, address, Reply-To); until it is, the `MAIL_FROM` setting
is used. A workspace may sign its mail with DKIM: Encore generates an RSA key, keeps it sealed
with the app key, and shows the TXT record to publish at `<selector>._domainkey.<domain>`.
Signing starts only when someone turns it on, and only for mail From that domain.

`check_domain` looks up the three records that decide whether receivers trust the mail: SPF
(which servers may send for the domain), the DKIM public key, and DMARC (what receivers do
when both fail). Each answer comes back as a `Check` with plain advice; a DNS server that does
not answer is reported the same way, never raised.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import re
from dataclasses import dataclass
from email import policy
from email.message import EmailMessage
from email.utils import parseaddr
from typing import Any

import dkim
import dns.asyncresolver
import dns.exception
import dns.name
import dns.rdatatype
import dns.resolver
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from app.services import crypto, workspace
from app.services.contacts import normalise_email
from app.services.content import FormErrors
from app.settings import get_settings, split_host_port
from emails.message import HeaderInjectionError, address

log = logging.getLogger("encore.sender")

NAME_MAX = 80
DEFAULT_SELECTOR = "encore"
SELECTOR = re.compile(r"[a-z0-9-]{1,63}")
LOOKUP_SECONDS = 5.0
# The headers a signature covers. Those absent from a message are signed as absent, so that
# nobody can add them on the way (a Reply-To, say) without breaking the signature.
SIGNED_HEADERS = (
    "from",
    "to",
    "subject",
    "date",
    "message-id",
    "reply-to",
    "mime-version",
    "content-type",
    "list-unsubscribe",
    "list-unsubscribe-post",
)
# Names no one can publish records for: single labels and the reserved names of RFC 2606/6761.
_RESERVED_TLDS = frozenset({"example", "invalid", "localhost", "local", "test"})
_RESERVED_DOMAINS = frozenset({"example.com", "example.net", "example.org"})


@dataclass(frozen=True)
class DkimKey:
    """What signing needs: the selector, the signing domain and the private key (PEM)."""

    selector: str
    domain: str
    private_key: bytes


@dataclass(frozen=True)
class Sender:
    """The sender of the workspace's emails."""

    from_header: str  # e.g. `Encore Team <news@example.com>`
    address: str  # the bare address, also the envelope sender
    reply_to: str  # "" for none
    dkim: DkimKey | None  # None: messages go out unsigned


@dataclass(frozen=True)
class Check:
    """One DNS record of the sender domain as found, and what to do about it."""

    name: str  # SPF, DKIM or DMARC
    ok: bool
    found: str
    advice: str


@dataclass(frozen=True)
class SenderForm:
    """The sender settings as typed in the admin."""

    name: str = ""
    address: str = ""
    reply_to: str = ""
    selector: str = ""
    dkim_enabled: bool = False


def _domain_of(email: str) -> str:
    return email.rpartition("@")[2].lower()


async def current() -> Sender:
    """The sender now: the workspace's settings, else the `MAIL_FROM` setting."""
    stored = await workspace.load()
    fallback = get_settings().mail_from
    fallback_name, fallback_address = parseaddr(fallback)
    name = stored.sender_name or fallback_name
    bare = stored.sender_address or fallback_address
    if not bare:
        return Sender(from_header=fallback, address=fallback, reply_to=stored.reply_to, dkim=None)
    from_header = address(name, bare) if name else bare
    return Sender(
        from_header=from_header,
        address=bare,
        reply_to=stored.reply_to,
        dkim=_dkim_key(stored, _domain_of(bare)),
    )


def _dkim_key(stored: workspace.WorkspaceSettings, domain: str) -> DkimKey | None:
    if not (stored.dkim_enabled and stored.dkim_key_sealed and stored.dkim_selector and domain):
        return None
    pem = crypto.unseal(stored.dkim_key_sealed)
    if pem is None:
        log.warning("the DKIM key cannot be unsealed (was SECRET_KEY changed?); not signing")
        return None
    return DkimKey(selector=stored.dkim_selector, domain=domain, private_key=pem.encode())


def _signature(data: bytes, key: DkimKey) -> bytes:
    header: bytes = dkim.sign(
        data,
        key.selector.encode(),
        key.domain.encode(),
        key.private_key,
        canonicalize=(b"relaxed", b"relaxed"),
        include_headers=[name.encode() for name in SIGNED_HEADERS],
    )
    return header


def sign(data: bytes, key: DkimKey) -> bytes:
    """An RFC 5322 message (CRLF line ends) with a `DKIM-Signature` header prepended."""
    return _signature(data, key) + data


def signed(data: bytes, sender: Sender) -> bytes:
    """The message signed when the sender signs, else as it is (also when signing fails)."""
    if sender.dkim is None:
        return data
    try:
        return sign(data, sender.dkim)
    except dkim.DKIMException:
        log.exception("DKIM signing failed; sending unsigned")
        return data


def sign_message(message: EmailMessage, sender: Sender) -> None:
    """Add a `DKIM-Signature` to a composed message when the sender signs.

    The message is signed as it will be written to the server (the SMTP policy, which also
    fixes its MIME boundaries). The header is stored unfolded but with its spaces, so the
    writer folds it at those spaces again; relaxed canonicalisation ignores the difference.
    """
    if sender.dkim is None:
        return
    try:
        header = _signature(message.as_bytes(policy=policy.SMTP), sender.dkim)
    except dkim.DKIMException:
        log.exception("DKIM signing failed; sending unsigned")
        return
    name, _, value = header.decode("ascii").partition(":")
    message[name] = value.replace("\r\n", "").strip()


def generate_key() -> tuple[str, str]:
    """A new RSA-2048 private key (PEM) and the DNS TXT value that publishes its public half."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    ).decode("ascii")
    return pem, public_record(pem)


def public_record(private_pem: str) -> str:
    """The DNS TXT value (`v=DKIM1; k=rsa; p=...`) for a private key."""
    key = serialization.load_pem_private_key(private_pem.encode(), password=None)
    der = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return f"v=DKIM1; k=rsa; p={base64.b64encode(der).decode('ascii')}"


def stored_record(stored: workspace.WorkspaceSettings) -> str:
    """The TXT value of the stored DKIM key ("" when there is none or it cannot be unsealed)."""
    pem = crypto.unseal(stored.dkim_key_sealed) if stored.dkim_key_sealed else None
    return public_record(pem) if pem else ""


async def new_key() -> str:
    """Generate and store a new DKIM key; the TXT value to publish.

    Signing is turned off until the record is published: mail signed with a key that DNS does
    not know yet fails DKIM everywhere.
    """
    pem, record = generate_key()
    stored = await workspace.load()
    await workspace.update(
        dkim_key_sealed=crypto.seal(pem),
        dkim_selector=stored.dkim_selector or DEFAULT_SELECTOR,
        dkim_enabled=False,
    )
    return record


def _checked_address(raw: str, key: str, errors: FormErrors) -> str:
    if not raw:
        return ""
    try:
        email = normalise_email(raw)
    except ValueError as error:
        errors.add(key, str(error))
        return raw
    if not email.isascii():
        errors.add(key, "Use an address without accents or other non-ASCII characters.")
    return email


async def save(form: SenderForm) -> tuple[dict[str, Any], FormErrors]:
    """Validate and store the sender settings; what changed, or the errors (nothing stored)."""
    errors = FormErrors()
    stored = await workspace.load()
    name = form.name.strip()
    if len(name) > NAME_MAX:
        errors.add("sender_name", f"A sender name has at most {NAME_MAX} characters.")
    sender_address = _checked_address(form.address.strip(), "sender_address", errors)
    reply_to = _checked_address(form.reply_to.strip(), "reply_to", errors)
    # The From header is built as it will be, so a name that cannot be written is refused here.
    usable = sender_address if "sender_address" not in errors.errors else ""
    try:
        address(name, usable or parseaddr(get_settings().mail_from)[1] or "encore@localhost")
    except HeaderInjectionError:
        errors.add("sender_name", "A sender name must be a single line.")
    selector = form.selector.strip().lower()
    if selector and not SELECTOR.fullmatch(selector):
        errors.add(
            "dkim_selector",
            "A selector has 1 to 63 lower-case letters, digits and hyphens, such as encore.",
        )
    if form.dkim_enabled:
        if not stored.dkim_key_sealed or not stored_record(stored):
            errors.add("dkim_enabled", "Generate a DKIM key first, then publish its record.")
        elif not selector:
            errors.add("dkim_enabled", "Enter the selector under which the key is published.")
    if errors:
        return {}, errors
    values: dict[str, Any] = {
        "sender_name": name,
        "sender_address": sender_address,
        "reply_to": reply_to,
        "dkim_selector": selector,
        "dkim_enabled": form.dkim_enabled,
    }
    changes = {key: value for key, value in values.items() if getattr(stored, key) != value}
    if changes:
        await workspace.update(**changes)
    return changes, errors


# --- DNS checks ----------------------------------------------------------------------------


def _resolver(seconds: float) -> dns.asyncresolver.Resolver:
    nameserver = get_settings().dns_nameserver
    if nameserver:
        host, port = split_host_port(nameserver, default_port=53)
        resolver = dns.asyncresolver.Resolver(configure=False)
        resolver.nameservers = [host]
        resolver.port = port
    else:
        resolver = dns.asyncresolver.Resolver()
    resolver.timeout = seconds
    resolver.lifetime = seconds
    return resolver


@dataclass(frozen=True)
class _Answer:
    records: list[str]
    problem: str = ""  # why there is no answer at all ("" when the server answered)


async def _txt(resolver: dns.asyncresolver.Resolver, name: str) -> _Answer:
    try:
        answer = await resolver.resolve(
            dns.name.from_text(name), dns.rdatatype.TXT, raise_on_no_answer=False, search=False
        )
    except dns.resolver.NXDOMAIN:
        return _Answer([])
    except dns.exception.Timeout:
        return _Answer([], "the DNS server did not answer in time")
    except dns.resolver.NoNameservers:
        return _Answer([], "no DNS server could answer")
    except (dns.exception.DNSException, OSError) as error:
        return _Answer([], f"the lookup failed ({type(error).__name__})")
    records = []
    for rdata in answer.rrset or ():
        records.append(b"".join(rdata.strings).decode("utf-8", errors="replace"))
    return _Answer(records)


def _tags(record: str) -> dict[str, str]:
    tags: dict[str, str] = {}
    for part in record.split(";"):
        key, equals, value = part.partition("=")
        if equals:
            tags.setdefault(key.strip().lower(), "".join(value.split()))
    return tags


def _failed(name: str, where: str, answer: _Answer) -> Check:
    return Check(
        name, False, "", f"Could not look up {where}: {answer.problem}. Try again in a moment."
    )


def _spf(domain: str, answer: _Answer) -> Check:
    if answer.problem:
        return _failed("SPF", domain, answer)
    found = [r for r in answer.records if r.lower() == "v=spf1" or r.lower().startswith("v=spf1 ")]
    if len(found) == 1:
        return Check("SPF", True, found[0], "")
    if not found:
        return Check(
            "SPF",
            False,
            "",
            f"Add a TXT record at {domain} that names the servers sending your mail, such as "
            '"v=spf1 include:<your mail provider> ~all" (your provider documents the include).',
        )
    return Check(
        "SPF",
        False,
        " | ".join(found),
        f"{domain} has {len(found)} SPF records; receivers then treat SPF as failed. "
        "Merge them into one TXT record starting v=spf1.",
    )


def _dkim(domain: str, selector: str, public_txt: str, answer: _Answer | None) -> Check:
    where = f"{selector}._domainkey.{domain}"
    if not public_txt:
        return Check("DKIM", False, "", "Generate a DKIM key first; Encore then shows its record.")
    if answer is None:
        return Check("DKIM", False, "", "Enter a selector, then publish the key under it.")
    if answer.problem:
        return _failed("DKIM", where, answer)
    publish = f'Add a TXT record at {where} with the value "{public_txt}".'
    keys = [r for r in answer.records if "p" in _tags(r)]
    ours = _tags(public_txt)["p"]
    if not keys:
        return Check("DKIM", False, "", publish)
    if len(keys) > 1:
        return Check(
            "DKIM",
            False,
            " | ".join(keys),
            f'{where} has {len(keys)} key records; keep only one, with the value "{public_txt}".',
        )
    if _tags(keys[0])["p"] != ours:
        return Check(
            "DKIM",
            False,
            keys[0],
            f'{where} holds another key. Replace its value with "{public_txt}".',
        )
    return Check("DKIM", True, keys[0], "")


def _dmarc(domain: str, answer: _Answer) -> Check:
    where = f"_dmarc.{domain}"
    if answer.problem:
        return _failed("DMARC", where, answer)
    found = [r for r in answer.records if r.replace(" ", "").upper().startswith("V=DMARC1")]
    if len(found) == 1:
        return Check("DMARC", True, found[0], "")
    if not found:
        return Check(
            "DMARC",
            False,
            "",
            f'Add a TXT record at {where} such as "v=DMARC1; p=none; rua=mailto:dmarc@{domain}" '
            "and, once the reports show your mail passes, make it p=quarantine or p=reject.",
        )
    return Check(
        "DMARC",
        False,
        " | ".join(found),
        f"{where} has {len(found)} DMARC records; receivers then ignore them all. Keep one.",
    )


def _reserved(domain: str) -> bool:
    labels = domain.split(".")
    return (
        len(labels) < 2
        or labels[-1] in _RESERVED_TLDS
        or ".".join(labels[-2:]) in _RESERVED_DOMAINS
    )


async def check_domain(
    domain: str, selector: str, public_txt: str, *, seconds: float = LOOKUP_SECONDS
) -> list[Check]:
    """Look up the SPF, DKIM and DMARC records of a sender domain; one Check each."""
    domain = domain.strip().rstrip(".").lower()
    if _reserved(domain):
        advice = (
            f"{domain or 'This'} is not a domain you can publish DNS records for; "
            "set a sender address at your own domain first."
        )
        return [Check(name, False, "", advice) for name in ("SPF", "DKIM", "DMARC")]
    resolver = _resolver(seconds)
    lookups = [_txt(resolver, domain), _txt(resolver, f"_dmarc.{domain}")]
    if selector:
        lookups.append(_txt(resolver, f"{selector}._domainkey.{domain}"))
    answers = await asyncio.gather(*lookups)
    dkim_answer = answers[2] if selector else None
    return [
        _spf(domain, answers[0]),
        _dkim(domain, selector, public_txt, dkim_answer),
        _dmarc(domain, answers[1]),
    ]


async def check_current(*, seconds: float = LOOKUP_SECONDS) -> tuple[str, list[Check]]:
    """The domain of the current sender and the checks of its records."""
    stored = await workspace.load()
    sender = await current()
    domain = _domain_of(sender.address)
    return domain, await check_domain(
        domain, stored.dkim_selector, stored_record(stored), seconds=seconds
    )
