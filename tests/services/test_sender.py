"""The email sender: settings, DNS checks against a real loopback DNS server, and DKIM signing."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any, cast

import dkim
import dns.message
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset
import pytest
from aiosmtpd.controller import Controller

from app.models import EmailState, PlannedEmail, WorkspaceSetting
from app.services import crypto, delivery, mail, workspace
from app.services import sender as senders
from app.services.sender import Check, SenderForm
from app.settings import Settings, SettingsError, get_settings, load_settings, use_settings
from emails import MemoryMailer, SmtpMailer
from emails.raw import build
from tests.emails.test_smtp import HOST, Recorder, start_controller

DOMAIN = "acme-events.com"
SELECTOR = "encore"
NOW = datetime(2030, 3, 1, 9, 0, tzinfo=UTC)
NOTE = "test_sender_note"
BULK = "test_sender_bulk"
UNSUBSCRIBE = {
    "List-Unsubscribe": "<https://acme-events.com/u/abc>",
    "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
}


# --- a real DNS server on loopback ------------------------------------------------------------


def txt_data(value: str) -> str:
    """A TXT value in zone-file syntax: quoted strings of at most 255 bytes each."""
    escaped = [
        value[i : i + 255].replace("\\", "\\\\").replace('"', '\\"')
        for i in range(0, len(value), 255)
    ]
    return " ".join(f'"{part}"' for part in escaped) or '""'


@dataclass
class LoopbackDns(asyncio.DatagramProtocol):
    """A UDP DNS server answering TXT queries from a dict (NXDOMAIN for unknown names)."""

    records: dict[str, list[str]] = field(default_factory=dict)
    answering: bool = True
    questions: list[str] = field(default_factory=list)
    port: int = 0
    transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)
        self.port = transport.get_extra_info("sockname")[1]

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        query = dns.message.from_wire(data)
        question = query.question[0]
        name = question.name.to_text(omit_final_dot=True).lower()
        self.questions.append(name)
        if not self.answering or self.transport is None:
            return
        response = dns.message.make_response(query)
        values = self.records.get(name)
        if values is None:
            response.set_rcode(dns.rcode.NXDOMAIN)
        elif question.rdtype == dns.rdatatype.TXT and values:
            response.answer.append(
                dns.rrset.from_text(
                    question.name,
                    300,
                    dns.rdataclass.IN,
                    dns.rdatatype.TXT,
                    *(txt_data(value) for value in values),
                )
            )
        self.transport.sendto(response.to_wire(), addr)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


async def serve_dns(records: dict[str, list[str]], *, answering: bool = True) -> LoopbackDns:
    """Start a loopback DNS server on a free UDP port."""
    loop = asyncio.get_running_loop()
    _, protocol = await loop.create_datagram_endpoint(
        lambda: LoopbackDns(records=records, answering=answering), local_addr=("127.0.0.1", 0)
    )
    return protocol


def point_dns_at(server: LoopbackDns) -> None:
    """Make the current settings look records up on the loopback server."""
    use_settings(get_settings().model_copy(update={"dns_nameserver": f"127.0.0.1:{server.port}"}))


@pytest.fixture
async def dns_server() -> AsyncIterator[LoopbackDns]:
    server = await serve_dns({})
    yield server
    server.close()


@pytest.fixture
def dns_settings(tmp_path: Path) -> Settings:
    """Settings without a database, for the DNS checks alone."""
    value = load_settings(
        var_dir=tmp_path / "var",
        public_base_url="http://testserver",
        secret_key="test-secret-key-" + "x" * 32,
    )
    use_settings(value)
    return value


@pytest.fixture(scope="module")
def key_pair() -> tuple[str, str]:
    """One generated key for the module (generating RSA keys takes a moment)."""
    return senders.generate_key()


def good_records(record: str) -> dict[str, list[str]]:
    return {
        DOMAIN: ["google-site-verification=abc123", "v=spf1 include:_spf.mailhost.net ~all"],
        f"{SELECTOR}._domainkey.{DOMAIN}": [record],
        f"_dmarc.{DOMAIN}": ["v=DMARC1; p=none; rua=mailto:dmarc@acme-events.com"],
    }


def by_name(checks: list[Check]) -> dict[str, Check]:
    assert [check.name for check in checks] == ["SPF", "DKIM", "DMARC"]
    return {check.name: check for check in checks}


# --- DNS checks -------------------------------------------------------------------------------


async def test_all_three_records_right(
    dns_settings: Settings, dns_server: LoopbackDns, key_pair: tuple[str, str]
) -> None:
    _, record = key_pair
    assert len(record) > 255  # served as several strings, joined again by the check
    dns_server.records.update(good_records(record))
    point_dns_at(dns_server)
    checks = by_name(await senders.check_domain(DOMAIN, SELECTOR, record))
    assert all(check.ok for check in checks.values()), checks
    assert checks["SPF"].found == "v=spf1 include:_spf.mailhost.net ~all"
    assert checks["DKIM"].found == record
    assert checks["DMARC"].found.startswith("v=DMARC1")
    assert all(check.advice == "" for check in checks.values())
    assert sorted(dns_server.questions) == sorted(good_records(record))


async def test_missing_spf_and_dmarc_are_explained(
    dns_settings: Settings, dns_server: LoopbackDns, key_pair: tuple[str, str]
) -> None:
    _, record = key_pair
    dns_server.records.update(
        {DOMAIN: ["google-site-verification=abc123"], f"{SELECTOR}._domainkey.{DOMAIN}": [record]}
    )
    point_dns_at(dns_server)
    checks = by_name(await senders.check_domain(DOMAIN, SELECTOR, record))
    assert not checks["SPF"].ok
    assert checks["SPF"].found == ""
    assert f"TXT record at {DOMAIN}" in checks["SPF"].advice
    assert "v=spf1" in checks["SPF"].advice
    assert checks["DKIM"].ok
    assert not checks["DMARC"].ok  # NXDOMAIN
    assert f"TXT record at _dmarc.{DOMAIN}" in checks["DMARC"].advice
    assert "v=DMARC1" in checks["DMARC"].advice


async def test_two_spf_records_are_not_ok(
    dns_settings: Settings, dns_server: LoopbackDns, key_pair: tuple[str, str]
) -> None:
    _, record = key_pair
    records = good_records(record)
    records[DOMAIN].append("v=spf1 mx -all")
    dns_server.records.update(records)
    point_dns_at(dns_server)
    checks = by_name(await senders.check_domain(DOMAIN, SELECTOR, record))
    assert not checks["SPF"].ok
    assert "v=spf1 mx -all" in checks["SPF"].found
    assert "Merge them into one" in checks["SPF"].advice
    assert checks["DKIM"].ok
    assert checks["DMARC"].ok


async def test_dkim_with_another_key_or_none(
    dns_settings: Settings, dns_server: LoopbackDns, key_pair: tuple[str, str]
) -> None:
    _, record = key_pair
    _, other = senders.generate_key()
    records = good_records(other)
    dns_server.records.update(records)
    point_dns_at(dns_server)
    dkim_check = by_name(await senders.check_domain(DOMAIN, SELECTOR, record))["DKIM"]
    assert not dkim_check.ok
    assert dkim_check.found == other
    assert "holds another key" in dkim_check.advice
    assert record in dkim_check.advice  # the exact value to publish

    del dns_server.records[f"{SELECTOR}._domainkey.{DOMAIN}"]
    dkim_check = by_name(await senders.check_domain(DOMAIN, SELECTOR, record))["DKIM"]
    assert not dkim_check.ok
    assert dkim_check.advice == (
        f'Add a TXT record at {SELECTOR}._domainkey.{DOMAIN} with the value "{record}".'
    )

    # Without a key of our own there is nothing to compare.
    dkim_check = by_name(await senders.check_domain(DOMAIN, SELECTOR, ""))["DKIM"]
    assert not dkim_check.ok
    assert "Generate a DKIM key" in dkim_check.advice


async def test_a_silent_dns_server_gives_not_ok_checks(
    dns_settings: Settings, key_pair: tuple[str, str]
) -> None:
    _, record = key_pair
    server = await serve_dns(good_records(record), answering=False)
    try:
        point_dns_at(server)
        started = time.monotonic()
        checks = await senders.check_domain(DOMAIN, SELECTOR, record, seconds=0.5)
        elapsed = time.monotonic() - started
    finally:
        server.close()
    assert elapsed < 5
    assert server.questions  # asked, never answered
    for check in checks:
        assert not check.ok
        assert "did not answer in time" in check.advice


async def test_no_lookups_for_names_nobody_can_publish(
    dns_settings: Settings, dns_server: LoopbackDns
) -> None:
    point_dns_at(dns_server)
    for domain in ("localhost", "example.com", "news.example.org", "mail.test"):
        checks = await senders.check_domain(domain, SELECTOR, "")
        assert [check.ok for check in checks] == [False, False, False]
        assert "not a domain you can publish DNS records for" in checks[0].advice
    assert dns_server.questions == []


def test_the_nameserver_setting_is_checked() -> None:
    assert load_settings(dns_nameserver="127.0.0.1:5353").dns_nameserver == "127.0.0.1:5353"
    assert load_settings(dns_nameserver="[::1]:53").dns_nameserver == "[::1]:53"
    with pytest.raises(SettingsError, match="DNS_NAMESERVER"):
        load_settings(dns_nameserver="dns.example.com:53")
    with pytest.raises(SettingsError, match="DNS_NAMESERVER"):
        load_settings(dns_nameserver="127.0.0.1:99999")


# --- DKIM -------------------------------------------------------------------------------------


def dns_with(record: str, asked: list[bytes] | None = None) -> Any:
    """A `dnsfunc` for dkim.verify that answers with our record."""

    def lookup(name: bytes, timeout: int = 5) -> bytes:
        if asked is not None:
            asked.append(name)
        return record.encode()

    return lookup


def dkim_key(private_pem: str) -> senders.DkimKey:
    return senders.DkimKey(selector=SELECTOR, domain=DOMAIN, private_key=private_pem.encode())


def test_a_built_message_signs_and_verifies(key_pair: tuple[str, str]) -> None:
    private_pem, record = key_pair
    raw = build(
        sender="Acme Events <news@acme-events.com>",
        sender_address="news@acme-events.com",
        to_name="Jörg Müller",
        to_address="joerg@example.com",
        subject="Gleich geht es los: unser Webinar für Sie",
        text="Hallo Jörg,\nin einer Stunde geht es los.\n",
        html="<p>Hallo Jörg,<br>in einer Stunde geht es los.</p>",
        message_id="<reminder-1@acme-events.com>",
        date="Fri, 01 Mar 2030 09:00:00 +0000",
        headers={**UNSUBSCRIBE, "Reply-To": "help@acme-events.com"},
    )
    signed = senders.sign(raw.data, dkim_key(private_pem))
    assert signed.startswith(b"DKIM-Signature: ")
    assert signed.endswith(raw.data)
    asked: list[bytes] = []
    assert dkim.verify(signed, dnsfunc=dns_with(record, asked))
    assert asked == [f"{SELECTOR}._domainkey.{DOMAIN}.".encode()]
    header = signed.split(b"\r\n\r\n", 1)[0].decode()
    for name in ("from", "to", "subject", "reply-to", "list-unsubscribe"):
        assert name in header.split("h=", 1)[1].split(";", 1)[0]
    # A changed body or header no longer verifies.
    assert not dkim.verify(signed.replace(b"Stunde", b"Minute"), dnsfunc=dns_with(record))
    assert not dkim.verify(
        signed.replace(b"Reply-To: help@", b"Reply-To: evil@"), dnsfunc=dns_with(record)
    )
    # Another key does not verify it either.
    _, other = senders.generate_key()
    assert not dkim.verify(signed, dnsfunc=dns_with(other))


def test_generated_keys_publish_their_public_half(key_pair: tuple[str, str]) -> None:
    private_pem, record = key_pair
    assert private_pem.startswith("-----BEGIN RSA PRIVATE KEY-----")
    assert record.startswith("v=DKIM1; k=rsa; p=MIIBIjAN")  # RSA-2048 SubjectPublicKeyInfo
    assert senders.public_record(private_pem) == record


# --- the sender settings and delivery ---------------------------------------------------------


@delivery.renderer(NOTE)
async def _render_note(row: PlannedEmail, now: datetime) -> delivery.Rendered:
    return delivery.Rendered(
        to=row.to_email,
        subject="Your recording is ready, schön!",
        text="Hello,\n\nthe replay is ready. Grüße\n",
        html="<p>Hello,</p><p>the replay is ready. Grüße</p>",
        headers=UNSUBSCRIBE,
    )


@delivery.bulk_renderer(BULK)
async def _render_bulk(rows: list[delivery.Claimed], now: datetime) -> list[delivery.Rendered]:
    return [
        delivery.Rendered(
            to=row.to_email,
            to_name="Ada Lovelace",
            subject="Starting in one hour",
            text="Hello Ada,\nsee you soon.\n",
            html="<p>Hello Ada, see you soon.</p>",
            headers=UNSUBSCRIBE,
        )
        for row in rows
    ]


async def configure_sender(*, sign: bool = True) -> str:
    """Store the sender of the tests with a fresh DKIM key; the key's TXT record."""
    record = await senders.new_key()
    changes, errors = await senders.save(
        SenderForm(
            name="Acme Events",
            address="News@Acme-Events.com",
            reply_to="help@acme-events.com",
            selector=SELECTOR,
            dkim_enabled=sign,
        )
    )
    assert not errors, errors.errors
    assert changes["sender_address"] == "news@acme-events.com"
    return record


@pytest.fixture
def smtp_server() -> Iterator[tuple[Controller, Recorder]]:
    recorder = Recorder()
    controller = start_controller(recorder)
    mail.use_mailer(SmtpMailer(hostname=HOST, port=controller.port, timeout=10))
    yield controller, recorder
    mail.use_mailer(None)
    controller.stop()


def parsed(content: bytes) -> EmailMessage:
    message = message_from_bytes(content, policy=policy.default)
    assert isinstance(message, EmailMessage)
    return message


async def test_without_settings_the_mail_from_setting_is_used(database: Settings) -> None:
    sender = await senders.current()
    assert sender.from_header == "Encore <encore@localhost>"
    assert sender.address == "encore@localhost"
    assert sender.reply_to == ""
    assert sender.dkim is None

    # A name alone keeps the configured address.
    _, errors = await senders.save(SenderForm(name="Acme Events"))
    assert not errors
    assert (await senders.current()).from_header == "Acme Events <encore@localhost>"


async def test_saved_settings_make_the_sender(database: Settings) -> None:
    await configure_sender(sign=False)
    sender = await senders.current()
    assert sender.from_header == "Acme Events <news@acme-events.com>"
    assert sender.address == "news@acme-events.com"
    assert sender.reply_to == "help@acme-events.com"
    assert sender.dkim is None  # not turned on

    _, errors = await senders.save(
        SenderForm(
            name="Acme, Events",
            address="news@acme-events.com",
            selector=SELECTOR,
            dkim_enabled=True,
        )
    )
    assert not errors
    sender = await senders.current()
    assert sender.from_header == '"Acme, Events" <news@acme-events.com>'
    assert sender.reply_to == ""
    assert sender.dkim is not None
    assert (sender.dkim.selector, sender.dkim.domain) == (SELECTOR, DOMAIN)
    assert sender.dkim.private_key.startswith(b"-----BEGIN RSA PRIVATE KEY-----")

    # The key is stored sealed, never in the clear.
    stored = await WorkspaceSetting.get(key="dkim_key_sealed")
    assert "PRIVATE KEY" not in str(stored.value)
    assert crypto.unseal(stored.value["value"]) == sender.dkim.private_key.decode()

    # A new key stops signing until its record is published.
    await senders.new_key()
    assert (await senders.current()).dkim is None
    assert not (await workspace.load()).dkim_enabled


@pytest.mark.parametrize(
    ("form", "field_name", "message"),
    [
        (SenderForm(name="Acme\r\nBcc: victim@example.com"), "sender_name", "single line"),
        (SenderForm(name="Acme\nEvents"), "sender_name", "single line"),
        (SenderForm(address="not an address"), "sender_address", "@"),
        (SenderForm(address="news@acme-events.com\r\nBcc: x@y.com"), "sender_address", ""),
        (SenderForm(address="nachrichten-jörg@acme-events.com"), "sender_address", "ASCII"),
        (SenderForm(reply_to="help@"), "reply_to", ""),
        (SenderForm(selector="Not_Valid!"), "dkim_selector", "lower-case"),
        (SenderForm(selector="a" * 64), "dkim_selector", "lower-case"),
        (SenderForm(selector="encore", dkim_enabled=True), "dkim_enabled", "Generate a DKIM key"),
    ],
)
async def test_bad_input_is_refused_and_nothing_stored(
    database: Settings, form: SenderForm, field_name: str, message: str
) -> None:
    changes, errors = await senders.save(form)
    assert changes == {}
    assert field_name in errors.errors, errors.errors
    assert message in errors.errors[field_name]
    assert await WorkspaceSetting.all().count() == 0


async def test_a_composed_email_is_signed_and_verifies_after_smtp(
    database: Settings, smtp_server: tuple[Controller, Recorder]
) -> None:
    _, recorder = smtp_server
    record = await configure_sender()
    row = await delivery.plan(NOTE, to_email="ada@example.com", due_at=NOW)
    assert await delivery.deliver_due(NOW) == {EmailState.SENT: 1}

    [received] = recorder.received
    assert received.mail_from == "news@acme-events.com"
    assert received.rcpt_tos == ["ada@example.com"]
    assert dkim.verify(received.content, dnsfunc=dns_with(record))
    message = parsed(received.content)
    assert message["From"] == "Acme Events <news@acme-events.com>"
    assert message["Reply-To"] == "help@acme-events.com"
    assert message["Message-ID"] == row.message_id
    assert f"d={DOMAIN}" in message["DKIM-Signature"]
    assert "c=relaxed/relaxed" in message["DKIM-Signature"]


async def test_bulk_emails_are_signed_and_verify_after_smtp(
    database: Settings, smtp_server: tuple[Controller, Recorder]
) -> None:
    _, recorder = smtp_server
    record = await configure_sender()
    for n in range(3):
        await delivery.plan(BULK, to_email=f"ada{n}@example.com", due_at=NOW)
    assert await delivery.deliver_due(NOW) == {EmailState.SENT: 3}

    assert len(recorder.received) == 3
    for received in recorder.received:
        assert received.mail_from == "news@acme-events.com"
        assert received.content.startswith(b"DKIM-Signature: ")
        assert dkim.verify(received.content, dnsfunc=dns_with(record))
        message = parsed(received.content)
        assert message["From"] == "Acme Events <news@acme-events.com>"
        assert message["Reply-To"] == "help@acme-events.com"
        assert message["To"] == f"Ada Lovelace <{received.rcpt_tos[0]}>"


async def test_unsigned_sender_applies_to_both_paths(
    database: Settings, mailer: MemoryMailer
) -> None:
    await configure_sender(sign=False)
    await delivery.plan(NOTE, to_email="ada@example.com", due_at=NOW)
    await delivery.plan(BULK, to_email="grace@example.com", due_at=NOW)
    assert await delivery.deliver_due(NOW) == {EmailState.SENT: 2}
    assert len(mailer.sent) == 2
    for message in mailer.sent:
        assert message["From"] == "Acme Events <news@acme-events.com>"
        assert message["Reply-To"] == "help@acme-events.com"
        assert message["DKIM-Signature"] is None


async def test_staff_emails_use_the_sender(database: Settings, mailer: MemoryMailer) -> None:
    record = await configure_sender()
    await mail.send_now(to="grace@example.com", subject="Your sign-in link", text="Hello.\n")
    [message] = mailer.sent
    assert message["From"] == "Acme Events <news@acme-events.com>"
    assert message["Reply-To"] == "help@acme-events.com"
    assert dkim.verify(message.as_bytes(policy=policy.SMTP), dnsfunc=dns_with(record))


async def test_check_current_uses_the_saved_sender(
    database: Settings, dns_server: LoopbackDns
) -> None:
    record = await configure_sender(sign=False)
    dns_server.records.update(good_records(record))
    point_dns_at(dns_server)
    domain, checks = await senders.check_current()
    assert domain == DOMAIN
    assert [check.ok for check in checks] == [True, True, True]


async def test_message_ids_name_the_senders_domain(database: Settings) -> None:
    planned = await delivery.plan(
        "chat_reply", to_email="ann@example.com", due_at=datetime.now(UTC), context={}
    )
    fallback = database.mail_from.rsplit("@", 1)[-1].strip(" >").lower()
    assert planned.message_id.endswith(f"@{fallback}>")
    await workspace.update(sender_address="news@mail.acme.test")
    delivery.forget_message_domain()  # as the sender settings page does after saving
    planned = await delivery.plan(
        "chat_reply", to_email="ann@example.com", due_at=datetime.now(UTC), context={}
    )
    assert planned.message_id.endswith("@mail.acme.test>")
