"""Public registration: an untrusted form becomes a Contact and a Registrant with a join link.

Nothing is stored until the whole form is valid (every field error is reported at once, in the
webinar's language). Requests are counted per client before anything else is looked at, so a
flood of invalid forms is limited too. The personal join token is random; only its keyed hash
(for look-up) and a sealed copy (to email the same link again) are stored.
"""

from __future__ import annotations

import html
import logging
import re
import secrets
import time
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import email_validator
from disposable_email_domains import blocklist as disposable_domains
from tortoise.exceptions import IntegrityError

from app.i18n import format_when, gettext, language_or_default, zone_label
from app.models import (
    Contact,
    EmailStep,
    PlannedEmail,
    Registrant,
    RegistrationAttempt,
    Webinar,
    WebinarSession,
    WebinarStatus,
)
from app.schedule import (
    ScheduleRuleError,
    ScheduleRules,
    Slot,
    parse_zone,
    upcoming_sessions,
    watch_now_available,
)
from app.services import (
    analytics_events,
    calendar,
    contacts,
    crypto,
    delivery,
    intake,
    sequences,
    sessions,
)
from app.services.content import (
    FieldType,
    FormErrors,
    RegistrationField,
    RegistrationRules,
    fields_from,
    rules_from,
)
from app.settings import get_settings
from emails.message import Attachment, address

log = logging.getLogger("encore.registration")

NAME_MAX = contacts.NAME_MAX
TEXT_MAX = 500
SESSION_INPUT_MAX = 64
UTM_KEYS = ("utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content")
UTM_MAX = 200
REFERRER_MAX = 500
# Tokens are 43 characters; anything much longer is not one and is not worth hashing.
TOKEN_MAX = 128
WATCH_NOW = "now"
TICKED = "on"
RESEND_EVERY = timedelta(minutes=10)
SENDS_PER_DAY = 5
ATTEMPT_WINDOW = timedelta(hours=1)
ATTEMPT_KEEP = timedelta(days=1)
# Pruning old attempts on about one request in this many keeps the table small without adding
# a delete to every request.
PRUNE_ONE_IN = 16
# A registration stored through the group commit prunes at most this often per process.
PRUNE_EVERY_SECONDS = 60.0
_pruned_at = float("-inf")
CLIENT_PURPOSE = "registration client"
ON_DEMAND_TRIES = 100
LINK_EMAIL = "join_link"
# Bidirectional overrides reorder text on screen: in a name they only serve to mislead.
_BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
_FORBIDDEN_CATEGORIES = frozenset({"Cc", "Cs", "Zl", "Zp"})
# The shape of nearly every address typed into a form, in lower case. The full validator
# accepts each of these (within the length limits, outside special-use domains and IDNA's
# "--" labels) and gives the same address back, so they skip it; everything else goes to it.
_PLAIN_EMAIL = re.compile(
    r"[a-z0-9_+-]+(?:\.[a-z0-9_+-]+)*@(?:[a-z0-9](?:[a-z0-9-]*[a-z0-9])?\.)+[a-z]{2,63}", re.ASCII
)
LOCAL_PART_MAX = 64
LABEL_MAX = 63


class RegistrationError(Exception):
    """The registration was refused; `errors` maps field keys (or "form") to messages."""

    def __init__(self, errors: dict[str, str], status: int = 422) -> None:
        super().__init__("; ".join(f"{key}: {message}" for key, message in errors.items()))
        self.errors = errors
        self.status = status


@dataclass(frozen=True)
class Registered:
    """The outcome of a registration."""

    registrant: Registrant  # contact, webinar and session fetched
    session: WebinarSession | None
    token: str | None  # only for a new registration; otherwise the link was emailed again
    created: bool
    link_emailed: bool


@dataclass(frozen=True)
class _Choice:
    """The session a valid form asks for: an offered start, or watching now."""

    slot: Slot | None
    capacity: int | None
    # With a capacity: the slot and the later ones with a free seat a moment ago, in the order
    # a registration tries them when seats are taken (`sessions.take_seat`).
    options: tuple[Slot, ...] = ()


@dataclass(frozen=True)
class _Form:
    """A valid registration form, typed."""

    name: str
    email: str
    phone: str
    zone: ZoneInfo
    answers: dict[str, Any]
    choice: _Choice


@dataclass(frozen=True)
class FormSpec:
    """What a webinar's form is checked against, parsed from the webinar once."""

    fields: tuple[RegistrationField, ...]
    rules: RegistrationRules


def form_spec(webinar: Webinar) -> FormSpec:
    """The custom fields and registration rules of a webinar, parsed."""
    return FormSpec(
        fields=tuple(fields_from(webinar.registration_fields)),
        rules=rules_from(webinar.registration_rules),
    )


def join_url(token: str) -> str:
    """The absolute personal join link of a token."""
    return f"{get_settings().public_base_url}/j/{token}"


def token_of(registrant: Registrant) -> str | None:
    """The registrant's join token, or None when it cannot be recovered (such as a new key)."""
    if not registrant.join_token_sealed:
        return None
    return crypto.unseal(registrant.join_token_sealed)


async def find_by_token(token: str) -> Registrant | None:
    """The registrant of a join token, with contact, webinar and session fetched."""
    if not isinstance(token, str) or not token or len(token) > TOKEN_MAX:
        return None
    # One query with joins: the live room admits every attendee through here.
    return (
        await Registrant.filter(join_token_hash=crypto.hash_token(token))
        .select_related("contact", "webinar", "session")
        .first()
    )


async def prune_attempts(now: datetime) -> int:
    """Forget registration attempts older than a day; how many were removed."""
    return await RegistrationAttempt.filter(at__lt=now - ATTEMPT_KEEP).delete()


async def register(
    *,
    webinar: Webinar,
    form: Mapping[str, str],
    client: str,
    now: datetime,
    utm: Mapping[str, str] | None = None,
    referrer: str = "",
    rules: ScheduleRules | None = None,
    spec: FormSpec | None = None,
) -> Registered:
    """Register the person of a public form for a webinar session; raises RegistrationError.

    `webinar` and `rules` may be a few seconds old (the web process keeps them briefly): a new
    registration is checked again when its batch is stored, and anything that has to go one
    by one reads both afresh. `spec` is `form_spec(webinar)` when the caller keeps it too.

    An address registers once per webinar. Registering again returns the same registrant
    (token None) and emails the personal link again, at most every 10 minutes and 5 times a
    UTC day, so nobody can flood someone else's inbox through the form. The registrant keeps
    a session that is still to come or running; one that is over, closed or gone is replaced
    by the newly chosen session. The email tells the time of whichever session they hold.
    The email is planned as a row that the scheduler sends within seconds (see
    `app.services.delivery`); `link_emailed` tells whether one was planned.
    """
    language = language_or_default(webinar.language)
    snapshot = rules is not None
    rules = _open_rules(webinar, rules or await sessions.load_rules(webinar), language)
    if _value(form, "website").strip():
        # A field people never see: a bot filled it in. Say nothing that helps it adapt.
        await _count_attempt(client, now, language)
        raise RegistrationError(
            {"form": _t(language, "We could not accept this registration. Please try again.")}
        )
    spec = spec or form_spec(webinar)
    try:
        parsed = await _parse(webinar, rules, spec, form, now, language)
    except RegistrationError:
        await _count_attempt(client, now, language)  # too many attempts outranks the errors
        raise
    utm = utm or {}
    if parsed.choice.slot is not None and parsed.choice.capacity is None:
        fast = await _register_new_person(webinar, parsed, client, now, utm, referrer, language)
        if fast is not None:
            return fast
        if snapshot:
            # One by one from here, against the webinar and schedule as they are now.
            await webinar.refresh_from_db()
            rules = _open_rules(webinar, await sessions.load_rules(webinar), language)
            parsed = await _parse(webinar, rules, form_spec(webinar), form, now, language)
    await _count_attempt(client, now, language)
    contact, new_contact = await contacts.get_or_create_contact(
        email=parsed.email,
        name=parsed.name,
        phone=parsed.phone,
        company_domain=contacts.email_domain(parsed.email),
    )
    # A contact created just now has no registrations (a concurrent twin is caught on insert).
    registrant = (
        None
        if new_contact
        else await Registrant.get_or_none(contact_id=contact.id, webinar_id=webinar.id)
    )
    token: str | None = None
    session: WebinarSession | None = None
    if registrant is None:
        registrant, token, session = await _create_registrant(
            webinar, contact, parsed, now, utm=utm, referrer=referrer
        )
        if token is not None:
            await analytics_events.record_registration(registrant, now)
    if token is None:
        session = await _keep_or_replace_session(registrant, webinar, parsed, now)
    # The related rows are at hand: no need to read them back.
    registrant.contact = contact
    registrant.webinar = webinar
    if session is not None:
        registrant.session = session
    emailed = await _plan_link_email(registrant, contact, webinar, now, new=token is not None)
    return Registered(
        registrant=registrant,
        session=session,
        token=token,
        created=token is not None,
        link_emailed=emailed,
    )


# --- limits ------------------------------------------------------------------------------------


def _open_rules(webinar: Webinar, rules: ScheduleRules | None, language: str) -> ScheduleRules:
    """The rules of a webinar open for registration; 404 when it is not."""
    if webinar.status != WebinarStatus.PUBLISHED or rules is None:
        raise RegistrationError(
            {"form": _t(language, "This webinar is not open for registration.")}, 404
        )
    return rules


def _fully_booked(language: str) -> RegistrationError:
    message = _t(language, "All sessions are fully booked. Please check back later.")
    return RegistrationError({"session": message})


def _too_many(language: str) -> RegistrationError:
    return RegistrationError(
        {"form": _t(language, "Too many registrations from your network. Please try again later.")},
        429,
    )


async def _count_attempt(client: str, now: datetime, language: str) -> None:
    client_hash = crypto.sign(client, CLIENT_PURPOSE)
    limit = get_settings().registrations_per_client_hour
    recent = RegistrationAttempt.filter(client_hash=client_hash, at__gt=now - ATTEMPT_WINDOW)
    refused = _too_many(language)
    # Recorded first, then counted: of requests arriving together the earliest `limit` go
    # through. A refused request is not kept, so a client that keeps trying is let in again an
    # hour after its last counted attempt, and the table cannot grow without bound.
    attempt = await RegistrationAttempt.create(client_hash=client_hash, at=now)
    if await recent.filter(id__lte=attempt.id).count() > limit:
        await attempt.delete()
        raise refused
    if secrets.randbelow(PRUNE_ONE_IN) == 0:
        await prune_attempts(now)


# --- validation --------------------------------------------------------------------------------


def _t(language: str, message: str, **values: object) -> str:
    text = gettext(language, message)
    return text.format(**values) if values else text


def _value(form: Mapping[str, Any], key: str) -> str:
    value = form.get(key, "")
    return value if isinstance(value, str) else ""


def _has_forbidden_characters(text: str) -> bool:
    return any(
        char in _BIDI_CONTROLS or unicodedata.category(char) in _FORBIDDEN_CATEGORIES
        for char in text
    )


def _text_problem(text: str, limit: int, language: str) -> str | None:
    if len(text) > limit:
        return _t(language, "Please use at most {limit} characters.", limit=limit)
    if _has_forbidden_characters(text):
        return _t(language, "This contains characters that are not allowed.")
    if "<" in text or ">" in text:
        return _t(language, "Please leave out the characters < and >.")
    return None


def _check_name(raw: str, errors: FormErrors, language: str) -> str:
    name = unicodedata.normalize("NFC", raw.strip())
    if not name:
        errors.add("name", _t(language, "Please enter your name."))
        return ""
    problem = _text_problem(name, NAME_MAX, language)
    if problem:
        errors.add("name", problem)
        return ""
    return name


def _ascii_domain(domain: str) -> str:
    try:
        return domain.strip().lower().encode("idna").decode("ascii")
    except UnicodeError:
        return domain.strip().lower()


def _within(domain: str, listed: tuple[str, ...]) -> bool:
    for entry in listed:
        candidate = _ascii_domain(entry)
        if candidate and (domain == candidate or domain.endswith("." + candidate)):
            return True
    return False


def _disposable(domain: str) -> bool:
    parts = domain.split(".")
    return any(".".join(parts[i:]) in disposable_domains for i in range(len(parts) - 1))


def normalise_email(raw: str) -> str:
    """`contacts.normalise_email`, with a short way for plain addresses; raises ValueError."""
    typed = raw.strip()
    if typed.isascii() and len(typed) <= contacts.EMAIL_MAX:
        address = typed.lower()
        if _PLAIN_EMAIL.fullmatch(address):
            local, _, domain = address.rpartition("@")
            special = email_validator.SPECIAL_USE_DOMAIN_NAMES
            if (
                len(local) <= LOCAL_PART_MAX
                and "--" not in domain
                and all(len(label) <= LABEL_MAX for label in domain.split("."))
                and not any(domain == name or domain.endswith("." + name) for name in special)
            ):
                return address
    return contacts.normalise_email(raw)


def _check_email(
    raw: str, rules: RegistrationRules, errors: FormErrors, language: str, key: str = "email"
) -> str:
    if not raw.strip():
        errors.add(key, _t(language, "Please enter your email address."))
        return ""
    try:
        email = normalise_email(raw)
    except ValueError:
        errors.add(
            key, _t(language, "Please enter a valid email address, such as ada@example.com.")
        )
        return ""
    domain = contacts.email_domain(email)
    if rules.allowed_domains and not _within(domain, rules.allowed_domains):
        errors.add(
            key,
            _t(
                language,
                "Please use an email address at {domains}.",
                domains=", ".join(rules.allowed_domains),
            ),
        )
        return ""
    if _within(domain, rules.blocked_domains):
        errors.add(
            key,
            _t(language, "Addresses at {domain} cannot register for this webinar.", domain=domain),
        )
        return ""
    if rules.block_disposable and _disposable(domain):
        errors.add(key, _t(language, "Please use a permanent email address, not a disposable one."))
        return ""
    return email


def _check_custom_fields(
    spec: FormSpec, form: Mapping[str, Any], errors: FormErrors, language: str
) -> tuple[dict[str, Any], str]:
    """Typed answers of the custom fields, and the first phone number given."""
    answers: dict[str, Any] = {}
    phone = ""
    required = _t(language, "This field is required.")
    for field in spec.fields:
        raw = _value(form, field.key)
        typed = raw.strip()
        if field.type in (FieldType.CHECKBOX, FieldType.CONSENT):
            ticked = raw == TICKED
            answers[field.key] = ticked
            if field.required and not ticked:
                errors.add(field.key, _t(language, "Please tick this box to register."))
            continue
        answers[field.key] = ""
        if not typed:
            if field.required:
                errors.add(field.key, required)
            continue
        if field.type is FieldType.TEXT:
            problem = _text_problem(typed, TEXT_MAX, language)
            if problem:
                errors.add(field.key, problem)
            else:
                answers[field.key] = unicodedata.normalize("NFC", typed)
        elif field.type is FieldType.EMAIL:
            try:
                answers[field.key] = normalise_email(typed)
            except ValueError:
                errors.add(field.key, _t(language, "Please enter a valid email address."))
        elif field.type is FieldType.PHONE:
            try:
                answers[field.key] = contacts.normalise_phone(typed, field.default_region)
            except ValueError:
                message = (
                    "Please enter a valid phone number."
                    if field.default_region
                    else "Please enter a valid phone number with its country code, such as +44."
                )
                errors.add(field.key, _t(language, message))
            else:
                phone = phone or answers[field.key]
        elif field.type is FieldType.SELECT:
            if typed in field.options:
                answers[field.key] = typed
            else:
                errors.add(field.key, _t(language, "Please choose one of the options."))
    return answers, phone


def _viewer_zone(raw: str) -> ZoneInfo | None:
    try:
        return parse_zone(raw.strip())
    except ScheduleRuleError:
        return None


def _parse_start(raw: str) -> datetime | None:
    if len(raw) > SESSION_INPUT_MAX:
        return None
    try:
        moment = datetime.fromisoformat(raw)
    except ValueError:
        return None
    if moment.tzinfo is None or moment.utcoffset() is None:
        return None
    return moment.astimezone(UTC)


async def _check_session(
    webinar: Webinar,
    rules: ScheduleRules,
    raw: str,
    viewer: ZoneInfo | None,
    now: datetime,
    errors: FormErrors,
    language: str,
) -> _Choice | None:
    choice = raw.strip()
    if not choice:
        errors.add("session", _t(language, "Please choose a session."))
        return None
    if choice == WATCH_NOW:
        if watch_now_available(rules, now, viewer_zone=viewer):
            return _Choice(None, None)
        errors.add("session", _t(language, "Watching now is not available. Please pick a time."))
        return None
    start = _parse_start(choice)
    if start is None:
        errors.add("session", _t(language, "Please choose one of the offered times."))
        return None
    options = await sessions.seat_options(webinar, rules, start, now, viewer_zone=viewer)
    if options:
        return _Choice(options[0], rules.capacity, tuple(options))
    # The same look-ahead as seat_options: tell a start that is gone from one that is full.
    ahead = upcoming_sessions(
        rules, now, count=max(rules.upcoming_count * 4, 12), viewer_zone=viewer
    )
    if any(candidate.starts_at == start for candidate in ahead):
        errors.add(
            "session", _t(language, "All sessions are fully booked. Please check back later.")
        )
    else:
        errors.add(
            "session", _t(language, "That time is no longer available. Please pick another.")
        )
    return None


async def _parse(
    webinar: Webinar,
    rules: ScheduleRules,
    spec: FormSpec,
    form: Mapping[str, Any],
    now: datetime,
    language: str,
) -> _Form:
    errors = FormErrors()
    name = _check_name(_value(form, "name"), errors, language)
    email = _check_email(_value(form, "email"), spec.rules, errors, language)
    answers, phone = _check_custom_fields(spec, form, errors, language)
    viewer = _viewer_zone(_value(form, "timezone"))
    choice = await _check_session(
        webinar, rules, _value(form, "session"), viewer, now, errors, language
    )
    if errors or choice is None:
        raise RegistrationError(dict(errors.errors))
    return _Form(
        name=name,
        email=email,
        phone=phone,
        zone=viewer or rules.zone,
        answers=answers,
        choice=choice,
    )


# --- storing -----------------------------------------------------------------------------------


def _clip(value: object, limit: int) -> str:
    return value.strip()[:limit] if isinstance(value, str) else ""


async def _session_for(webinar: Webinar, choice: _Choice, now: datetime) -> WebinarSession:
    if choice.slot is not None:
        return await sessions.session_for_slot(webinar, choice.slot, capacity=choice.capacity)
    # Sessions are unique per webinar, instant and kind, on-demand ones too: viewers who start
    # in the same microsecond each get their own row a microsecond apart.
    for offset in range(ON_DEMAND_TRIES):
        try:
            return await sessions.on_demand_session(webinar, now + timedelta(microseconds=offset))
        except IntegrityError:
            continue
    raise RuntimeError("could not create an on-demand session")


async def _drop_unused(session: WebinarSession) -> None:
    # An on-demand session belongs to one viewer; one that lost a race is nobody's.
    if session.kind == sessions.ON_DEMAND:
        await session.delete()


async def _create_registrant(
    webinar: Webinar,
    contact: Contact,
    parsed: _Form,
    now: datetime,
    *,
    utm: Mapping[str, str],
    referrer: str,
) -> tuple[Registrant, str | None, WebinarSession | None]:
    """A new registrant, its token and session; (the existing one, None, None) if another won.

    Raises RegistrationError when the sessions with a capacity filled up meanwhile.
    """
    registrant, token = _new_registrant(
        webinar, parsed, now, utm=utm, referrer=referrer, emailed=contact.suppressed_at is None
    )
    registrant.contact_id = contact.id

    async def sit(session: WebinarSession) -> None:
        registrant.session_id = session.id
        await registrant.save()

    try:
        if parsed.choice.capacity is not None:
            seated = await sessions.take_seat(
                webinar, parsed.choice.options, parsed.choice.capacity, sit
            )
            if seated is None:
                raise _fully_booked(language_or_default(webinar.language))
            return registrant, token, seated
        session = await _session_for(webinar, parsed.choice, now)
        try:
            await sit(session)
        except IntegrityError:
            await _drop_unused(session)
            raise
    except IntegrityError:
        # The same address registered concurrently: one registrant, and it is theirs.
        return await Registrant.get(contact_id=contact.id, webinar_id=webinar.id), None, None
    return registrant, token, session


def _token() -> tuple[str, str, str]:
    """A new join token, its keyed hash and its sealed copy."""
    token = crypto.new_token()
    return token, crypto.hash_token(token), crypto.seal(token)


def _tracking(utm: Mapping[str, str], referrer: str) -> tuple[dict[str, str], str]:
    """The UTM values and referrer as stored: trimmed, clipped, empty ones left out."""
    kept = {key: _clip(utm[key], UTM_MAX) for key in UTM_KEYS if _clip(utm.get(key), UTM_MAX)}
    return kept, _clip(referrer, REFERRER_MAX)


def _new_registrant(
    webinar: Webinar,
    parsed: _Form,
    now: datetime,
    *,
    utm: Mapping[str, str],
    referrer: str,
    emailed: bool,
) -> tuple[Registrant, str]:
    """An unsaved registrant (without contact and session) and its new join token."""
    token, token_hash, sealed = _token()
    kept_utm, kept_referrer = _tracking(utm, referrer)
    registrant = Registrant(
        webinar_id=webinar.id,
        join_token_hash=token_hash,
        join_token_sealed=sealed,
        timezone=parsed.zone.key,
        language=language_or_default(webinar.language),
        answers=parsed.answers,
        utm=kept_utm,
        referrer=kept_referrer,
        # The first email is recorded with the row (it is planned right after, unless the
        # address is suppressed, when no email would be sent again anyway).
        link_sent_at=now if emailed else None,
        link_sends=1 if emailed else 0,
    )
    return registrant, token


def _prune_due() -> bool:
    """Whether this process should prune old attempts now (at most every PRUNE_EVERY_SECONDS)."""
    global _pruned_at
    moment = time.monotonic()
    if moment - _pruned_at < PRUNE_EVERY_SECONDS:
        return False
    _pruned_at = moment
    return True


async def _register_new_person(
    webinar: Webinar,
    parsed: _Form,
    client: str,
    now: datetime,
    utm: Mapping[str, str],
    referrer: str,
    language: str,
) -> Registered | None:
    """Register a new address through the group commit; None when it must go one by one."""
    slot = parsed.choice.slot
    assert slot is not None
    token, token_hash, sealed = _token()
    kept_utm, kept_referrer = _tracking(utm, referrer)
    item = intake.NewRegistration(
        client_hash=crypto.sign(client, CLIENT_PURPOSE),
        limit=get_settings().registrations_per_client_hour,
        window_start=now - ATTEMPT_WINDOW,
        now=now,
        email=parsed.email,
        name=parsed.name[:NAME_MAX],
        phone=parsed.phone,
        company_domain=contacts.email_domain(parsed.email),
        webinar_id=webinar.id,
        starts_at=slot.starts_at,
        session_kind=sessions.kind_of(slot),
        viewer_zone=parsed.zone,
        join_token_hash=token_hash,
        join_token_sealed=sealed,
        timezone=parsed.zone.key,
        language=language_or_default(webinar.language),
        answers=parsed.answers,
        utm=kept_utm,
        referrer=kept_referrer,
        email_kind=LINK_EMAIL,
    )
    outcome = await intake.intake().submit(item)
    if outcome is intake.Outcome.LIMITED:
        raise _too_many(language)
    if outcome is not intake.Outcome.STORED:
        return None
    if _prune_due():
        await prune_attempts(now)
    # The stored rows as objects, built directly: every value is known here.
    contact = Contact.construct(
        _saved_in_db=True,
        id=item.contact_id,
        email=item.email,
        name=item.name,
        phone=item.phone,
        company_domain=item.company_domain,
        unsubscribed_at=None,
        suppressed_at=None,
        created_at=item.created_at,
    )
    registrant = Registrant.construct(
        _saved_in_db=True,
        id=item.registrant_id,
        contact=contact,
        webinar=webinar,
        session=item.session,
        join_token_hash=token_hash,
        join_token_sealed=sealed,
        timezone=item.timezone,
        language=item.language,
        answers=item.answers,
        utm=item.utm,
        referrer=item.referrer,
        link_sent_at=now,
        link_sends=1,
        plan_state=1,
        created_at=item.created_at,
    )
    return Registered(
        registrant=registrant,
        session=item.session,
        token=token,
        created=True,
        link_emailed=True,
    )


async def _is_over(session: WebinarSession, webinar: Webinar, now: datetime) -> bool:
    if session.closed_at is not None:
        return True
    return session.starts_at + await calendar.session_duration(webinar) <= now


async def _keep_or_replace_session(
    registrant: Registrant, webinar: Webinar, parsed: _Form, now: datetime
) -> WebinarSession | None:
    """Give a returning registrant the newly chosen session if theirs is over or gone.

    Returns the session they hold afterwards.
    """
    current = None
    if registrant.session_id is not None:
        current = await WebinarSession.get_or_none(id=registrant.session_id)
    if current is not None and not await _is_over(current, webinar, now):
        return current
    # Conditional: if a concurrent request already moved them, its choice stands.
    query = Registrant.filter(id=registrant.id)
    if registrant.session_id is None:
        query = query.filter(session_id__isnull=True)
    else:
        query = query.filter(session_id=registrant.session_id)
    moved = 0

    async def move(session: WebinarSession) -> None:
        nonlocal moved
        moved = await query.update(session_id=session.id, timezone=parsed.zone.key)

    if parsed.choice.capacity is not None:
        seated = await sessions.take_seat(
            webinar, parsed.choice.options, parsed.choice.capacity, move
        )
        if seated is None:
            raise _fully_booked(language_or_default(webinar.language))
        session = seated
    else:
        session = await _session_for(webinar, parsed.choice, now)
        await move(session)
    if not moved:
        await _drop_unused(session)
    else:
        # Their reminders and follow-ups are planned again for the new session.
        await sequences.replan_registrant(registrant.id)
    await registrant.refresh_from_db()
    if registrant.session_id == session.id:
        return session
    if registrant.session_id is None:
        return None
    return await WebinarSession.get_or_none(id=registrant.session_id)


def _session_of(registrant: Registrant) -> WebinarSession | None:
    session = registrant.session
    return session if isinstance(session, WebinarSession) else None


# --- the email ---------------------------------------------------------------------------------


async def _claim_send(registrant: Registrant, now: datetime) -> bool:
    """Record a send of the link if the limits allow one now (one claimant wins a race)."""
    last = registrant.link_sent_at
    if last is not None and now - last < RESEND_EVERY:
        return False
    same_day = last is not None and last.astimezone(UTC).date() == now.astimezone(UTC).date()
    sends = registrant.link_sends if same_day else 0
    if sends >= SENDS_PER_DAY:
        return False
    query = Registrant.filter(id=registrant.id, link_sends=registrant.link_sends)
    if last is None:
        query = query.filter(link_sent_at__isnull=True)
    else:
        query = query.filter(link_sent_at__lte=now - RESEND_EVERY)
    if not await query.update(link_sent_at=now, link_sends=sends + 1):
        return False
    registrant.link_sent_at = now
    registrant.link_sends = sends + 1
    return True


async def usable_token(registrant: Registrant) -> str:
    """The registrant's token; a new one if the sealed copy cannot be opened (new secret key)."""
    token = token_of(registrant)
    if token is not None:
        return token
    # The stored hash was keyed with the old secret too, so the old link no longer works.
    token = crypto.new_token()
    registrant.join_token_hash = crypto.hash_token(token)
    registrant.join_token_sealed = crypto.seal(token)
    await registrant.save(update_fields=["join_token_hash", "join_token_sealed"])
    return token


@dataclass(frozen=True)
class _Message:
    subject: str
    text: str
    html: str
    attachments: tuple[Attachment, ...]


async def _compose_link_email(
    registrant: Registrant,
    contact: Contact,
    webinar: Webinar,
    session: WebinarSession | None,
    url: str,
    *,
    new: bool,
) -> _Message:
    language = language_or_default(registrant.language)
    title = webinar.title

    def t(message: str, **values: object) -> str:
        return _t(language, message, **values)

    subject = (
        t("You're registered: {title}", title=title)
        if new
        else t("Your join link for {title}", title=title)
    )
    greeting = t("Hello {name},", name=contact.name) if contact.name else t("Hello,")
    intro = t("you are registered for “{title}”.", title=title)
    lines: list[str] = [greeting, "", intro, ""]
    parts: list[str] = [f"<p>{html.escape(greeting)}</p>", f"<p>{html.escape(intro)}</p>"]
    attachments: tuple[Attachment, ...] = ()
    own: EmailStep | None = None
    if session is not None and session.kind != sessions.ON_DEMAND:
        zone = calendar.registrant_zone(registrant)
        when = t("When: {when}", when=format_when(session.starts_at, zone, language))
        zone_line = t("Time zone: {zone}", zone=zone_label(zone, session.starts_at))
        join = t("Join with your personal link:")
        duration = await calendar.session_duration(webinar)
        description = calendar.event_description(webinar, url)
        google = calendar.google_calendar_url(
            title=title,
            description=description,
            starts_at=session.starts_at,
            duration=duration,
            url=url,
        )
        outlook = calendar.outlook_calendar_url(
            title=title,
            description=description,
            starts_at=session.starts_at,
            duration=duration,
            url=url,
        )
        ics = calendar.build_ics(
            uid=calendar.event_uid(registrant, session),
            title=title,
            description=description,
            starts_at=session.starts_at,
            duration=duration,
            zone=zone,
            url=url,
        )
        add = t("Add it to your calendar:")
        attached = t("The invitation is attached as invite.ics.")
        own = await sequences.confirmation_of(webinar) if new else None
        if own is not None:
            # The editor's own words, with the calendar links and file added as always.
            values = sequences.values_for(
                registrant, webinar, session, email=contact.email, name=contact.name, join_link=url
            )
            subject, text, inner = sequences.fill_confirmation(own, values)
            lines = [text, ""]
            parts = [inner]
        else:
            lines += [when, zone_line, "", join, url, ""]
            parts += [
                f"<p>{html.escape(when)}<br>{html.escape(zone_line)}</p>",
                f"<p>{html.escape(join)}<br>{_link(url, url)}</p>",
            ]
        lines += [add, f"Google Calendar: {google}", f"Outlook: {outlook}", attached]
        parts.append(
            f"<p>{html.escape(add)} {_link(google, 'Google Calendar')} · "
            f"{_link(outlook, 'Outlook')}<br>{html.escape(attached)}</p>"
        )
        attachments = (
            Attachment(
                filename="invite.ics",
                content=ics,
                mime_type="text/calendar",
                params={"method": "PUBLISH", "charset": "utf-8"},
            ),
        )
    else:
        watch = t("You can start watching whenever you like, with your personal link:")
        lines += [watch, url]
        parts.append(f"<p>{html.escape(watch)}<br>{_link(url, url)}</p>")
    if own is None:
        keep = t("Please do not share this link: it is yours alone.")
        lines += ["", keep]
        parts.append(f"<p>{html.escape(keep)}</p>")
    body = "\n".join(parts)
    document = f'<!doctype html>\n<html lang="{language}">\n<body>\n{body}\n</body>\n</html>\n'
    return _Message(subject, "\n".join(lines) + "\n", document, attachments)


def _link(url: str, label: str) -> str:
    return f'<a href="{html.escape(url)}">{html.escape(label)}</a>'


async def _plan_link_email(
    registrant: Registrant, contact: Contact, webinar: Webinar, now: datetime, *, new: bool
) -> bool:
    """Plan the email with the personal link if the limits allow; whether it was planned.

    A `new` registrant was stored with this first send already recorded.
    """
    if contact.suppressed_at is not None:
        return False  # the address bounced or complained: mail to it does not arrive
    if not new and not await _claim_send(registrant, now):
        return False
    await delivery.plan(
        LINK_EMAIL,
        to_email=contact.email,
        due_at=now,
        registrant_id=registrant.id,
        context={"new": new},
    )
    return True


@delivery.renderer(LINK_EMAIL)
async def _render_link_email(row: PlannedEmail, now: datetime) -> delivery.Rendered:
    """The confirmation (or the link again) as it reads when it is sent."""
    registrant = await Registrant.get_or_none(id=row.registrant_id).prefetch_related(
        "contact", "webinar", "session"
    )
    if registrant is None:
        return delivery.Rendered(skip="the registration was deleted")
    contact = registrant.contact
    webinar = registrant.webinar
    assert isinstance(contact, Contact)
    assert isinstance(webinar, Webinar)
    if contact.suppressed_at is not None:
        return delivery.Rendered(skip="the address is suppressed")
    session = _session_of(registrant)
    if session is None:
        return delivery.Rendered(skip="the registrant has no session")
    url = join_url(await usable_token(registrant))
    message = await _compose_link_email(
        registrant, contact, webinar, session, url, new=bool(row.context.get("new"))
    )
    return delivery.Rendered(
        to=address(contact.name, contact.email) if contact.name else contact.email,
        subject=message.subject,
        text=message.text,
        html=message.html,
        attachments=message.attachments,
    )
