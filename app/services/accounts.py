"""Accounts: people grouped by company, which by default means by their email domain.

Every domain seen among contacts is an account of its own (named after the domain), except
free-mail domains, whose people belong to no company. An `Account` row takes over domains: it
renames them, merges several domains into one company and holds notes. A domain belongs to at
most one Account row. An account is named in URLs by its key: the row's id, or the domain of
an account without a row (a domain never consists of digits only, so the two never mix).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from tortoise import connections
from tortoise.functions import Lower
from tortoise.transactions import in_transaction

from app.models import Account, Contact, Webinar, WebinarSession
from app.services import people, rows
from app.services.content import FormErrors

NAME_MAX = 200
NOTES_MAX = 10_000
MAX_DOMAINS = 50
PAGE_SIZE = 50
PEOPLE_PAGE_SIZE = 100

# Addresses anyone can get: people there are private persons, not a company.
FREE_MAIL_DOMAINS = frozenset(
    {
        "gmail.com", "googlemail.com", "outlook.com", "outlook.de", "hotmail.com",
        "hotmail.co.uk", "hotmail.de", "hotmail.fr", "hotmail.it", "live.com", "live.de",
        "live.co.uk", "msn.com", "yahoo.com", "yahoo.co.uk", "yahoo.de", "yahoo.fr", "yahoo.es",
        "yahoo.it", "ymail.com", "rocketmail.com", "aol.com", "aim.com", "icloud.com", "me.com",
        "mac.com", "proton.me", "protonmail.com", "protonmail.ch", "pm.me", "gmx.de", "gmx.net",
        "gmx.at", "gmx.ch", "gmx.com", "web.de", "t-online.de", "freenet.de", "arcor.de",
        "posteo.de", "mailbox.org", "mail.com", "email.com", "mail.ru", "yandex.ru",
        "yandex.com", "zoho.com", "zohomail.com", "fastmail.com", "hey.com", "tutanota.com",
        "tuta.io", "qq.com", "163.com", "126.com", "naver.com", "orange.fr", "wanadoo.fr",
        "free.fr", "laposte.net", "libero.it", "virgilio.it", "btinternet.com", "sky.com",
        "comcast.net", "verizon.net", "att.net", "sbcglobal.net", "bluewin.ch", "seznam.cz",
        "wp.pl", "o2.pl", "onet.pl", "interia.pl", "inbox.com", "hushmail.com",
    }
)  # fmt: skip
_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")

# Where people of an account stand with the onboarding webinar chosen on the page.
ONBOARDING_STATES: dict[str, str] = {
    "attended": "Attended",
    "upcoming": "Registered, session still to come",
    "missed": "Registered but missed",
    "none": "Nobody registered",
}


def is_free_mail(domain: str) -> bool:
    """Whether a domain is a free-mail provider's (its people group into no account)."""
    return domain.lower() in FREE_MAIL_DOMAINS


def clean_domain(raw: str) -> str | None:
    """A domain as contacts store it (lower case, ASCII), or None when it is not one."""
    text = raw.strip().lower().lstrip("@").rstrip(".")
    if "@" in text:
        text = text.rpartition("@")[2]
    try:
        text = text.encode("idna").decode("ascii")
    except UnicodeError:
        return None
    labels = text.split(".")
    if len(text) > 253 or len(labels) < 2 or labels[-1].isdigit():
        return None
    return text if all(_LABEL.fullmatch(label) for label in labels) else None


# --- Who belongs where ----------------------------------------------------------------------


@dataclass(frozen=True)
class AccountRef:
    """An account as found by its key: a stored row, or a domain without one."""

    key: str
    name: str
    domains: tuple[str, ...]
    row: Account | None = None

    @property
    def notes(self) -> str:
        """The notes of a stored account."""
        return self.row.notes if self.row is not None else ""


def ref_of(account: Account) -> AccountRef:
    """The reference of a stored account."""
    return AccountRef(str(account.id), account.name, tuple(account.domains or ()), account)


async def claimed_domains() -> dict[str, Account]:
    """Each domain that an Account row holds, with that row."""
    owners: dict[str, Account] = {}
    for account in await Account.all().order_by("id"):
        for domain in account.domains or ():
            owners.setdefault(domain, account)
    return owners


async def resolve(key: str) -> AccountRef | None:
    """The account a URL key names; a domain held by a row resolves to that row."""
    key = key.strip()
    if key.isdigit():
        # Ids are 32-bit in the database: a longer number names no account.
        account = await Account.get_or_none(id=int(key)) if len(key) <= 9 else None
        return ref_of(account) if account is not None else None
    domain = clean_domain(key)
    if domain is None or is_free_mail(domain):
        return None
    owner = (await claimed_domains()).get(domain)
    if owner is not None:
        return ref_of(owner)
    return AccountRef(domain, domain, (domain,))


async def find(typed: str) -> AccountRef | str:
    """The account an editor means by a name or a domain, or why none can be found."""
    text = " ".join(typed.split())
    if not text:
        return "Enter an account's name or one of its domains (like example.com)."
    named = await Account.annotate(lower=Lower("name")).filter(lower=text.lower())
    if len(named) == 1:
        return ref_of(named[0])
    if len(named) > 1:
        return f"{len(named)} accounts are called “{text}”: enter one of its domains."
    domain = clean_domain(text)
    if domain is None:
        return "Enter an account's name or one of its domains (like example.com)."
    if is_free_mail(domain):
        return f"{domain} is a free-mail provider, not a company's domain."
    found = await resolve(domain)
    return found if found is not None else "No account has this name or domain."


async def names() -> list[str]:
    """The names of the stored accounts, for suggestions."""
    found: list[Any] = await Account.all().order_by("name").values_list("name", flat=True)
    return [str(name) for name in found]


async def company_names(domains: Iterable[str]) -> dict[str, str]:
    """The account name of each domain ("" for free-mail and empty domains)."""
    owners = await claimed_domains()
    names: dict[str, str] = {}
    for domain in set(domains):
        if not domain or is_free_mail(domain):
            names[domain] = ""
        elif domain in owners:
            names[domain] = owners[domain].name
        else:
            names[domain] = domain
    return names


async def account_keys(domains: Iterable[str]) -> dict[str, str]:
    """The account key of each company domain (free-mail and empty domains are left out)."""
    owners = await claimed_domains()
    return {
        domain: str(owners[domain].id) if domain in owners else domain
        for domain in set(domains)
        if domain and not is_free_mail(domain)
    }


# --- The list --------------------------------------------------------------------------------


@dataclass
class AccountRow:
    """One account in the list, with its figures."""

    key: str
    name: str
    domains: list[str]
    saved: bool
    people: int = 0
    registered: int = 0  # people with at least one registration
    attended: int = 0  # people who attended at least one session
    onboarding: str = ""  # a key of ONBOARDING_STATES when a webinar is chosen
    onboarding_registered: int = 0
    onboarding_attended: int = 0


async def _grouped(sql: str, values: list[object]) -> list[dict[str, object]]:
    connection = connections.get("default")
    found: list[dict[str, object]] = await connection.execute_query_dict(sql, values)
    return found


def _count(row: Mapping[str, object], key: str) -> int:
    value = row.get(key) or 0
    return int(value) if isinstance(value, int | float | str) else 0


async def _domain_figures() -> dict[str, dict[str, int]]:
    """Per company domain: people, people registered, people who attended."""
    figures: dict[str, dict[str, int]] = {}
    queries = (
        (
            "people",
            "SELECT company_domain AS domain, COUNT(*) AS n FROM contact "
            "WHERE company_domain <> '' GROUP BY company_domain",
        ),
        (
            "registered",
            "SELECT c.company_domain AS domain, COUNT(DISTINCT r.contact_id) AS n "
            "FROM registrant r JOIN contact c ON c.id = r.contact_id "
            "WHERE c.company_domain <> '' GROUP BY c.company_domain",
        ),
        (
            "attended",
            "SELECT c.company_domain AS domain, COUNT(DISTINCT a.contact_id) AS n "
            "FROM attendance a JOIN contact c ON c.id = a.contact_id "
            "WHERE a.first_join_at IS NOT NULL AND c.company_domain <> '' "
            "GROUP BY c.company_domain",
        ),
    )
    for name, sql in queries:
        for row in await _grouped(sql, []):
            domain = str(row["domain"])
            if not is_free_mail(domain):
                figures.setdefault(domain, {})[name] = _count(row, "n")
    return figures


async def _onboarding_figures(webinar_id: int, now: datetime) -> dict[str, dict[str, int]]:
    """Per company domain, for one webinar: registered, upcoming and attended people."""
    connection = connections.get("default")
    mark = rows.placeholders(connection, 0, 1)
    upcoming = set(
        await WebinarSession.filter(webinar_id=webinar_id, starts_at__gt=now).values_list(
            "id", flat=True
        )
    )
    figures: dict[str, dict[str, int]] = {}
    registered = await _grouped(
        "SELECT c.company_domain AS domain, r.session_id AS session_id, "  # noqa: S608
        "COUNT(DISTINCT r.contact_id) AS n FROM registrant r "
        "JOIN contact c ON c.id = r.contact_id "
        f"WHERE r.webinar_id = {mark} AND c.company_domain <> '' "
        "GROUP BY c.company_domain, r.session_id",
        [webinar_id],
    )
    for row in registered:
        entry = figures.setdefault(str(row["domain"]), {})
        entry["registered"] = entry.get("registered", 0) + _count(row, "n")
        if row["session_id"] in upcoming:
            entry["upcoming"] = entry.get("upcoming", 0) + _count(row, "n")
    attended = await _grouped(
        "SELECT c.company_domain AS domain, COUNT(DISTINCT a.contact_id) AS n "  # noqa: S608
        "FROM attendance a JOIN contact c ON c.id = a.contact_id "
        f"WHERE a.webinar_id = {mark} AND a.first_join_at IS NOT NULL "
        "AND c.company_domain <> '' GROUP BY c.company_domain",
        [webinar_id],
    )
    for row in attended:
        figures.setdefault(str(row["domain"]), {})["attended"] = _count(row, "n")
    return figures


def onboarding_state(registered: int, upcoming: int, attended: int) -> str:
    """Where an account stands with the onboarding webinar."""
    if attended:
        return "attended"
    if upcoming:
        return "upcoming"
    if registered:
        return "missed"
    return "none"


async def account_rows(*, now: datetime, onboarding_webinar_id: int | None) -> list[AccountRow]:
    """Every account with its figures, the biggest first."""
    figures = await _domain_figures()
    found: dict[str, AccountRow] = {}
    owners = await claimed_domains()
    for account in await Account.all():
        found[str(account.id)] = AccountRow(
            str(account.id), account.name, sorted(account.domains or ()), True
        )
    key_of: dict[str, str] = {}
    for domain in figures:
        if domain in owners:
            key_of[domain] = str(owners[domain].id)
        else:
            key_of[domain] = domain
            found[domain] = AccountRow(domain, domain, [domain], False)
    for domain, numbers in figures.items():
        row = found[key_of[domain]]
        row.people += numbers.get("people", 0)
        row.registered += numbers.get("registered", 0)
        row.attended += numbers.get("attended", 0)
    if onboarding_webinar_id is not None:
        upcoming: dict[str, int] = {}
        for domain, numbers in (await _onboarding_figures(onboarding_webinar_id, now)).items():
            held = found.get(key_of.get(domain, ""))
            if held is None:  # a free-mail domain
                continue
            held.onboarding_registered += numbers.get("registered", 0)
            held.onboarding_attended += numbers.get("attended", 0)
            upcoming[held.key] = upcoming.get(held.key, 0) + numbers.get("upcoming", 0)
        for row in found.values():
            row.onboarding = onboarding_state(
                row.onboarding_registered, upcoming.get(row.key, 0), row.onboarding_attended
            )
    return sorted(found.values(), key=lambda row: (-row.people, row.name.lower(), row.key))


# --- One account ------------------------------------------------------------------------------


@dataclass(frozen=True)
class PersonAttendance:
    """One registration of a person of the account."""

    webinar_id: int
    webinar: str
    starts_at: datetime | None
    state: str  # attended, upcoming, missed, no session
    watch_share: float


@dataclass
class Person:
    """A person of an account, with their registrations."""

    contact: Contact
    summary: people.ContactSummary
    registrations: list[PersonAttendance] = field(default_factory=list)


@dataclass(frozen=True)
class AccountPeople:
    """A page of an account's people."""

    people: list[Person]
    total: int
    page: int
    pages: int


async def account_people(ref: AccountRef, *, page: int, now: datetime) -> AccountPeople:
    """The people of an account with their attendance, by email."""
    query = Contact.filter(company_domain__in=list(ref.domains))
    total = await query.count() if ref.domains else 0
    pages = max(1, (total + PEOPLE_PAGE_SIZE - 1) // PEOPLE_PAGE_SIZE)
    page = min(max(1, page), pages)
    contacts = (
        await query.order_by("email").offset((page - 1) * PEOPLE_PAGE_SIZE).limit(PEOPLE_PAGE_SIZE)
        if ref.domains
        else []
    )
    facts = await people.registration_facts([c.id for c in contacts])
    titles = dict(
        await Webinar.filter(id__in={f.webinar_id for f in facts}).values_list("id", "title")
    )
    latest = await people.last_activity(c.id for c in contacts)
    grouped: dict[int, list[people.RegistrationFacts]] = {c.id: [] for c in contacts}
    for fact in facts:
        grouped[fact.contact_id].append(fact)
    found = []
    for contact in contacts:
        own = grouped[contact.id]
        person = Person(contact, people.summarise(own, now, latest.get(contact.id)))
        for fact in own:
            person.registrations.append(
                PersonAttendance(
                    fact.webinar_id,
                    str(titles.get(fact.webinar_id, "")),
                    fact.starts_at,
                    people.registration_state(fact, now),
                    fact.watch_share,
                )
            )
        found.append(person)
    return AccountPeople(found, total, page, pages)


# --- Changing accounts ------------------------------------------------------------------------


@dataclass(frozen=True)
class AccountInput:
    """A checked account form."""

    name: str
    domains: tuple[str, ...]
    notes: str


def check_account(form: Mapping[str, str]) -> AccountInput | FormErrors:
    """An account from its form (name, domains one per line or comma-separated, notes)."""
    errors = FormErrors()
    name = " ".join(form.get("name", "").split())
    if not name:
        errors.add("name", "Enter the company's name.")
    elif len(name) > NAME_MAX:
        errors.add("name", f"Keep the name under {NAME_MAX} characters.")
    domains: list[str] = []
    for raw in re.split(r"[\s,;]+", form.get("domains", "")):
        if not raw:
            continue
        domain = clean_domain(raw)
        if domain is None:
            errors.add("domains", f"“{raw[:80]}” is not a domain (like example.com).")
        elif is_free_mail(domain):
            errors.add(
                "domains",
                f"{domain} is a free-mail provider: its people are not one company.",
            )
        elif domain not in domains:
            domains.append(domain)
    if len(domains) > MAX_DOMAINS:
        errors.add("domains", f"An account has at most {MAX_DOMAINS} domains.")
    notes = form.get("notes", "").replace("\r\n", "\n").strip()
    if len(notes) > NOTES_MAX:
        errors.add("notes", f"Keep the notes under {NOTES_MAX:,} characters.")
    if errors:
        return errors
    return AccountInput(name, tuple(domains), notes)


async def save_account(data: AccountInput, account: Account | None) -> Account | FormErrors:
    """Store an account (a new row when `account` is None); errors when a domain is taken."""
    async with in_transaction():
        owners = await claimed_domains()
        errors = FormErrors()
        for domain in data.domains:
            owner = owners.get(domain)
            if owner is not None and (account is None or owner.id != account.id):
                errors.add(
                    "domains",
                    f"{domain} belongs to the account “{owner.name}”: merge that account "
                    "into this one instead.",
                )
        if errors:
            return errors
        if account is None:
            account = await Account.create(
                name=data.name, domains=list(data.domains), notes=data.notes
            )
        else:
            account.name, account.domains, account.notes = data.name, list(data.domains), data.notes
            await account.save()
    return account


async def merge_accounts(source: AccountRef, target: AccountRef) -> Account | str:
    """Move the source's domains and notes into the target; the source row goes away."""
    if source.key == target.key:
        return "Choose another account to merge into."
    async with in_transaction():
        if target.row is None:
            account = await Account.create(name=target.name, domains=list(target.domains))
        else:
            account = await Account.get(id=target.row.id)
        domains = list(account.domains or ())
        domains += [domain for domain in source.domains if domain not in domains]
        if len(domains) > MAX_DOMAINS:
            return f"An account has at most {MAX_DOMAINS} domains."
        account.domains = domains
        if source.notes:
            account.notes = "\n\n".join(part for part in (account.notes, source.notes) if part)
        if source.row is not None:
            await Account.filter(id=source.row.id).delete()
        await account.save()
    return account


async def delete_account(account: Account) -> None:
    """Remove an account row: each of its domains is an account of its own again."""
    await Account.filter(id=account.id).delete()
