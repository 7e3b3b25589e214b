"""Webinars in the editor: create, edit (validated as a whole), publish, archive and duplicate.

The editor submits one form. It is read into a `Draft` (the values as typed, kept to show them
again beside their errors), checked into typed values, and only saved when nothing is wrong:
images included, a refused form changes nothing, neither in the database nor in storage.

Rows of the form (registration fields, FAQ, testimonials, presenters) are named
`<group>-<index>-<name>`; their order is the `order` number of each row, then the index, so the
form works without JavaScript (a row can be moved by typing its position).
"""

from __future__ import annotations

import asyncio
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import phonenumbers
from tortoise.exceptions import IntegrityError
from tortoise.functions import Count
from tortoise.transactions import in_transaction

from app.i18n import LANGUAGES
from app.models import (
    Interaction,
    Presenter,
    Registrant,
    Schedule,
    StaffUser,
    Video,
    VideoState,
    Webinar,
    WebinarSession,
    WebinarStatus,
)
from app.schedule import upcoming_sessions
from app.services import audit, auth, sessions
from app.services.content import (
    FIELD_KEY,
    FONTS,
    HEX_COLOUR,
    MAX_FIELDS,
    MAX_OPTIONS,
    RESERVED_KEYS,
    TEMPLATES,
    FaqItem,
    FieldType,
    FormErrors,
    Landing,
    RegistrationField,
    RegistrationRules,
    Testimonial,
    Theme,
    fields_from,
    fields_to_json,
    landing_from,
    rules_from,
    theme_from,
    to_json,
)
from app.services.images import (
    CleanImage,
    ImageError,
    ImagePurpose,
    ImageUpload,
    clean_image,
    delete_images,
    is_image_key,
    store_image,
)
from media.storage import Storage

FormValue = str | list[str]
FormData = Mapping[str, FormValue]

MAX_SLUG = 80
SLUG = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")
# Words the public pages use next to slugs (/w/theme.css, /w/<slug>/embed) or may use later.
RESERVED_SLUGS = frozenset(
    {"admin", "api", "assets", "embed", "media", "new", "static", "theme", "theme-css", "w"}
)
LIMITS = {
    "title": 200,
    "description": 5000,
    "headline": 200,
    "subheadline": 300,
    "button_label": 60,
    "thank_you_headline": 200,
    "thank_you_message": 2000,
}
MAX_AGENDA = 20
MAX_AGENDA_ITEM = 200
MAX_FAQ = 20
MAX_TESTIMONIALS = 20
MAX_PRESENTERS = 20
MAX_DOMAINS = 200
MAX_ROW_INDEX = 200
ROW_NAMES: dict[str, tuple[str, ...]] = {
    "fields": ("key", "label", "type", "required", "options", "help", "region", "order", "delete"),
    "faq": ("question", "answer", "order", "delete"),
    "testimonials": ("quote", "author", "order", "delete"),
    "presenters": ("id", "name", "title", "bio", "order", "delete", "remove_photo"),
}
# What makes a row worth keeping: a row with none of these filled in is an unused empty row.
_ROW_CONTENT: dict[str, tuple[str, ...]] = {
    "fields": ("key", "label", "options", "help"),
    "faq": ("question", "answer"),
    "testimonials": ("quote", "author"),
    "presenters": ("id", "name", "title", "bio"),
}
_ROW = re.compile(r"(fields|faq|testimonials|presenters)-(\d{1,3})-([a-z_]+)")
SCALARS = (
    "title",
    "slug",
    "description",
    "language",
    "video",
    "template",
    "primary",
    "background",
    "text",
    "font",
    "headline",
    "subheadline",
    "agenda",
    "button_label",
    "thank_you_headline",
    "thank_you_message",
    "allowed_domains",
    "blocked_domains",
)
CHECKBOXES = ("show_presenters", "block_disposable", "remove_logo", "remove_cover")
COLOURS = {"primary": "Primary colour", "background": "Background colour", "text": "Text colour"}
# Letters that Unicode decomposition does not reduce to ASCII but that have a usual spelling.
_TRANSLITERATE = str.maketrans(
    {"ß": "ss", "æ": "ae", "Æ": "AE", "ø": "o", "Ø": "O", "œ": "oe", "Œ": "OE", "ł": "l"}
    | {"Ł": "L", "đ": "d", "Đ": "D", "þ": "th", "Þ": "Th", "ð": "d"}
)
_DOMAIN_LABEL = re.compile(r"(?!-)[a-z0-9-]{1,63}(?<!-)")


class WebinarError(Exception):
    """An action that cannot be done now; the message says why and what to do."""


class WebinarInputError(WebinarError):
    """Input that was refused, with the error of each field."""

    def __init__(self, errors: FormErrors) -> None:
        super().__init__("; ".join(errors.errors.values()))
        self.errors = errors


# --- slugs ---------------------------------------------------------------------------------


def slugify(text: str, *, separator: str = "-", max_length: int = MAX_SLUG) -> str:
    """Lowercase ASCII words of a text joined by a separator ('' when nothing is left)."""
    ascii_text = (
        unicodedata.normalize("NFKD", text.translate(_TRANSLITERATE))
        .encode("ascii", "ignore")
        .decode("ascii")
    )
    words = re.findall(r"[a-z0-9]+", ascii_text.lower())
    slug = ""
    for word in words:
        candidate = f"{slug}{separator}{word}" if slug else word
        if len(candidate) > max_length:
            if not slug:  # one long word: cut it rather than return nothing
                slug = word[:max_length]
            break
        slug = candidate
    return slug


def slug_problem(slug: str) -> str | None:
    """Why a slug cannot be used as typed (None when its form is fine)."""
    if not slug:
        return "Enter the address of the landing page."
    if len(slug) > MAX_SLUG:
        return f"Use at most {MAX_SLUG} characters."
    if not SLUG.fullmatch(slug):
        return "Use lowercase letters a-z, digits and single hyphens between words."
    if slug in RESERVED_SLUGS:
        return f"“{slug}” is reserved; choose another address."
    return None


async def unique_slug(base: str, *, exclude_id: int | None = None) -> str:
    """`base`, or `base-2`, `base-3` ... whichever no other webinar uses and is not reserved."""
    base = base or "webinar"
    taken_rows = Webinar.filter(slug__startswith=base)
    if exclude_id is not None:
        taken_rows = taken_rows.exclude(id=exclude_id)
    taken = {str(value) for value in await taken_rows.values_list("slug", flat=True)}
    number = 1
    while True:
        suffix = "" if number == 1 else f"-{number}"
        candidate = base[: MAX_SLUG - len(suffix)].rstrip("-") + suffix
        if candidate not in taken and candidate not in RESERVED_SLUGS:
            return candidate
        number += 1


def _check_title(raw: str, errors: FormErrors) -> str:
    title = raw.strip()
    if not title:
        errors.add("title", "Enter a title.")
    elif len(title) > LIMITS["title"]:
        errors.add("title", f"Use at most {LIMITS['title']} characters ({len(title)} now).")
    return title


async def create_webinar(*, title: str, actor: StaffUser) -> Webinar:
    """A new draft webinar with a unique address made from its title."""
    errors = FormErrors()
    title = _check_title(title, errors)
    if errors:
        raise WebinarInputError(errors)
    base = slugify(title) or "webinar"
    for _ in range(5):
        slug = await unique_slug(base)
        try:
            webinar = await Webinar.create(slug=slug, title=title, status=WebinarStatus.DRAFT)
        except IntegrityError:
            continue  # another editor took the same address a moment ago: take the next one
        await audit.record(
            action="webinar.created", actor=actor, target=f"webinar:{webinar.id}", details={}
        )
        return webinar
    raise WebinarError("Could not find a free address for this webinar. Try another title.")


# --- the form as typed ---------------------------------------------------------------------


def _one(form: FormData, name: str) -> str:
    value = form.get(name, "")
    if isinstance(value, list):
        value = value[0] if value else ""
    return value.replace("\r\n", "\n").strip()


def _lines(text: str) -> list[str]:
    return [line.strip() for line in text.split("\n") if line.strip()]


def _order_of(row: dict[str, str], index: int) -> tuple[int, int]:
    raw = row.get("order", "")
    position = int(raw) if raw.isdigit() and len(raw) < 6 else 10**6
    return position, index


@dataclass
class Draft:
    """The editor's values as strings, as typed (or as stored), to check and to show again."""

    values: dict[str, str]
    rows: dict[str, list[dict[str, str]]]

    def value(self, name: str) -> str:
        """One scalar value ('' when absent)."""
        return self.values.get(name, "")

    def checked(self, name: str) -> bool:
        """Whether a checkbox is ticked."""
        return self.values.get(name) == "1"

    def kept_rows(self, group: str) -> list[dict[str, str]]:
        """The rows of a repeating group, without those ticked Remove."""
        return [row for row in self.rows.get(group, []) if row.get("delete") != "1"]


def draft_from_webinar(webinar: Webinar, presenters: list[Presenter]) -> Draft:
    """The stored values of a webinar, as the editor shows them."""
    theme = theme_from(webinar.theme)
    landing = landing_from(webinar.landing)
    rules = rules_from(webinar.registration_rules)
    video_id = getattr(webinar, "video_id", None)
    values = {
        "title": webinar.title,
        "slug": webinar.slug,
        "description": webinar.description,
        "language": webinar.language,
        "video": str(video_id) if video_id else "",
        "template": theme.template,
        "primary": theme.primary,
        "background": theme.background,
        "text": theme.text,
        "font": theme.font,
        "logo_key": theme.logo_key,
        "cover_key": theme.cover_key,
        "headline": landing.headline,
        "subheadline": landing.subheadline,
        "agenda": "\n".join(landing.agenda),
        "show_presenters": "1" if landing.show_presenters else "",
        "button_label": landing.button_label,
        "thank_you_headline": landing.thank_you_headline,
        "thank_you_message": landing.thank_you_message,
        "allowed_domains": "\n".join(rules.allowed_domains),
        "blocked_domains": "\n".join(rules.blocked_domains),
        "block_disposable": "1" if rules.block_disposable else "",
    }
    rows: dict[str, list[dict[str, str]]] = {
        "fields": [
            {
                "key": item.key,
                "label": item.label,
                "type": item.type.value,
                "required": "1" if item.required else "",
                "options": "\n".join(item.options),
                "help": item.help,
                "region": item.default_region,
            }
            for item in fields_from(webinar.registration_fields)
        ],
        "faq": [{"question": item.question, "answer": item.answer} for item in landing.faq],
        "testimonials": [
            {"quote": item.quote, "author": item.author} for item in landing.testimonials
        ],
        "presenters": [
            {
                "id": str(p.id),
                "name": p.name,
                "title": p.title,
                "bio": p.bio,
                "photo_key": p.photo_key or "",
            }
            for p in presenters
        ],
    }
    for group in rows.values():
        for position, row in enumerate(group):
            row["i"] = str(position)
            row["order"] = str(position + 1)
    return Draft(values, rows)


def draft_from_form(form: FormData, *, webinar: Webinar, presenters: list[Presenter]) -> Draft:
    """The submitted values (unused empty rows dropped, rows in their chosen order)."""
    values = {name: _one(form, name) for name in SCALARS}
    for name in CHECKBOXES:
        values[name] = "1" if _one(form, name) else ""
    theme = theme_from(webinar.theme)
    # Keys of stored images come from the database, never from the form.
    values["logo_key"] = theme.logo_key
    values["cover_key"] = theme.cover_key
    if not slug_editable(webinar):
        values["slug"] = webinar.slug
    found: dict[str, dict[int, dict[str, str]]] = {group: {} for group in ROW_NAMES}
    for name in form:
        match = _ROW.fullmatch(name)
        if match is None:
            continue
        group, raw_index, field_name = match.groups()
        index = int(raw_index)
        if field_name not in ROW_NAMES[group] or index > MAX_ROW_INDEX:
            continue
        found[group].setdefault(index, {})[field_name] = _one(form, name)
    photos = {str(p.id): p.photo_key or "" for p in presenters}
    rows: dict[str, list[dict[str, str]]] = {}
    for group, by_index in found.items():
        kept = [
            (index, row)
            for index, row in by_index.items()
            if any(row.get(name) for name in _ROW_CONTENT[group])
        ]
        kept.sort(key=lambda item: _order_of(item[1], item[0]))
        ordered: list[dict[str, str]] = []
        for position, (index, row) in enumerate(kept):
            row = {**row, "i": str(index), "order": str(position + 1)}
            if group == "presenters":
                row["photo_key"] = photos.get(row.get("id", ""), "")
            ordered.append(row)
        rows[group] = ordered
    return Draft(values, rows)


# --- checking ------------------------------------------------------------------------------


@dataclass
class PresenterInput:
    """A presenter row as it will be saved."""

    id: int | None
    name: str
    title: str
    bio: str
    photo_key: str  # the stored photo ('' for none)
    remove_photo: bool
    photo_field: str  # the name of the row's file input


@dataclass
class Checked:
    """Typed values of a checked draft (invalid values fall back to what is stored)."""

    title: str
    slug: str
    description: str
    language: str
    video_id: int | None
    theme: Theme
    landing: Landing
    fields: list[RegistrationField]
    rules: RegistrationRules
    presenters: list[PresenterInput]
    removed_presenters: list[Presenter] = field(default_factory=list)


def slug_editable(webinar: Webinar) -> bool:
    """Whether the address may still change: only until the webinar is first published."""
    return webinar.published_at is None


def _bounded(draft: Draft, name: str, errors: FormErrors, *, fallback: str) -> str:
    value = draft.value(name)
    limit = LIMITS[name]
    if len(value) > limit:
        errors.add(name, f"Use at most {limit} characters ({len(value)} now).")
        return fallback
    return value


def _colour(value: str) -> str | None:
    text = value.strip().lower()
    if text and not text.startswith("#"):
        text = "#" + text
    if re.fullmatch(r"#[0-9a-f]{3}", text):
        text = "#" + "".join(ch * 2 for ch in text[1:])
    return text if HEX_COLOUR.fullmatch(text) else None


def _row_text(
    row: dict[str, str], group: str, name: str, label: str, limit: int, errors: FormErrors
) -> str:
    value = row.get(name, "")
    if len(value) > limit:
        errors.add(f"{group}-{row['i']}-{name}", f"{label}: use at most {limit} characters.")
        return value[:limit]
    return value


def domain_name(raw: str) -> str | None:
    """A domain name in lowercase ASCII (IDNA for other scripts), or None if it is not one."""
    text = raw.strip().lower().lstrip("@").rstrip(".")
    if not text or len(text) > 253:
        return None
    try:
        ascii_text = text.encode("idna").decode("ascii")
    except UnicodeError:
        return None
    labels = ascii_text.split(".")
    if len(labels) < 2 or not all(_DOMAIN_LABEL.fullmatch(label) for label in labels):
        return None
    top = labels[-1]
    if not (top.isalpha() or top.startswith("xn--")) or len(top) < 2:
        return None
    return ascii_text


def _domains(draft: Draft, name: str, errors: FormErrors) -> tuple[str, ...]:
    found: list[str] = []
    for line in _lines(draft.value(name)):
        domain = domain_name(line)
        if domain is None:
            errors.add(name, f"“{line[:80]}” is not a domain name like example.com.")
            continue
        if domain not in found:
            found.append(domain)
    if len(found) > MAX_DOMAINS:
        errors.add(name, f"List at most {MAX_DOMAINS} domains.")
    return tuple(found[:MAX_DOMAINS])


def field_key(label: str, taken: set[str]) -> str:
    """A key for a new registration field from its label, unlike any in `taken`."""
    base = slugify(label, separator="_", max_length=32)
    if not base or not base[0].isalpha():
        base = f"field_{base}".rstrip("_")[:32]
    number = 1
    while True:
        candidate = base if number == 1 else f"{base}_{number}"
        if candidate not in taken and candidate not in RESERVED_KEYS:
            return candidate
        number += 1


def _check_fields(draft: Draft, webinar: Webinar, errors: FormErrors) -> list[RegistrationField]:
    stored = {item.key: item for item in fields_from(webinar.registration_fields)}
    rows = draft.kept_rows("fields")
    if len(rows) > MAX_FIELDS:
        errors.add("fields", f"Use at most {MAX_FIELDS} fields; remove {len(rows) - MAX_FIELDS}.")
    # Stored keys stay with their field (answers already given are filed under them), and a
    # new field never takes the key of a stored one, even one removed in this same edit.
    taken = set(stored)
    assigned: set[str] = set()
    result: list[RegistrationField] = []
    for row in rows[:MAX_FIELDS]:
        prefix = f"fields-{row['i']}"
        label = _row_text(row, "fields", "label", "Label", 120, errors)
        help_text = _row_text(row, "fields", "help", "Help text", 300, errors)
        if not label:
            errors.add(f"{prefix}-label", "Enter a label, or tick Remove.")
            continue
        try:
            kind = FieldType(row.get("type") or "text")
        except ValueError:
            errors.add(f"{prefix}-type", "Choose a field type from the list.")
            continue
        key = row.get("key", "")
        if key not in stored or key in assigned or not FIELD_KEY.fullmatch(key):
            if slugify(label, separator="_") in {"name", "email", "e_mail", "email_address"}:
                errors.add(
                    f"{prefix}-label",
                    "The form always asks for name and email address; no field is needed.",
                )
                continue
            key = field_key(label, taken | assigned)
            row["key"] = key
        assigned.add(key)
        options: tuple[str, ...] = ()
        if kind is FieldType.SELECT:
            unique: list[str] = []
            for option in _lines(row.get("options", "")):
                if len(option) > 100:
                    errors.add(f"{prefix}-options", "Keep each option under 100 characters.")
                elif option not in unique:
                    unique.append(option)
            if not unique:
                errors.add(f"{prefix}-options", "Add at least one option, one per line.")
            elif len(unique) > MAX_OPTIONS:
                errors.add(f"{prefix}-options", f"Use at most {MAX_OPTIONS} options.")
            options = tuple(unique[:MAX_OPTIONS])
        region = ""
        if kind is FieldType.PHONE:
            region = row.get("region", "").strip().upper()
            if region and region not in phonenumbers.SUPPORTED_REGIONS:
                errors.add(f"{prefix}-region", "Use a two-letter country code such as US or DE.")
                region = ""
        result.append(
            RegistrationField(
                key=key,
                label=label,
                type=kind,
                required=kind is FieldType.CONSENT or row.get("required") == "1",
                options=options,
                help=help_text,
                default_region=region,
            )
        )
    return result


def _rows_up_to(
    draft: Draft, group: str, most: int, noun: str, errors: FormErrors
) -> list[dict[str, str]]:
    """The first `most` rows of a group that are not ticked Remove; more is an error."""
    rows = draft.kept_rows(group)
    if len(rows) > most:
        errors.add(group, f"Use at most {most} {noun}.")
    return rows[:most]


def _check_landing(draft: Draft, stored: Landing, errors: FormErrors) -> Landing:
    agenda = _lines(draft.value("agenda"))
    if len(agenda) > MAX_AGENDA:
        errors.add("agenda", f"Use at most {MAX_AGENDA} agenda items ({len(agenda)} now).")
        agenda = list(stored.agenda)
    elif any(len(item) > MAX_AGENDA_ITEM for item in agenda):
        errors.add("agenda", f"Keep each agenda item under {MAX_AGENDA_ITEM} characters.")
        agenda = list(stored.agenda)
    faq: list[FaqItem] = []
    for row in _rows_up_to(draft, "faq", MAX_FAQ, "questions", errors):
        question = _row_text(row, "faq", "question", "Question", 300, errors)
        answer = _row_text(row, "faq", "answer", "Answer", 2000, errors)
        if not question:
            errors.add(f"faq-{row['i']}-question", "Enter the question, or tick Remove.")
        elif not answer:
            errors.add(f"faq-{row['i']}-answer", "Enter the answer, or tick Remove.")
        else:
            faq.append(FaqItem(question, answer))
    quotes: list[Testimonial] = []
    for row in _rows_up_to(draft, "testimonials", MAX_TESTIMONIALS, "testimonials", errors):
        quote = _row_text(row, "testimonials", "quote", "Quote", 1000, errors)
        author = _row_text(row, "testimonials", "author", "Author", 200, errors)
        if not quote:
            errors.add(f"testimonials-{row['i']}-quote", "Enter the quote, or tick Remove.")
        else:
            quotes.append(Testimonial(quote, author))
    return Landing(
        headline=_bounded(draft, "headline", errors, fallback=stored.headline),
        subheadline=_bounded(draft, "subheadline", errors, fallback=stored.subheadline),
        agenda=tuple(agenda),
        show_presenters=draft.checked("show_presenters"),
        faq=tuple(faq),
        testimonials=tuple(quotes),
        button_label=_bounded(draft, "button_label", errors, fallback=stored.button_label),
        thank_you_headline=_bounded(
            draft, "thank_you_headline", errors, fallback=stored.thank_you_headline
        ),
        thank_you_message=_bounded(
            draft, "thank_you_message", errors, fallback=stored.thank_you_message
        ),
    )


def _check_presenters(
    draft: Draft, presenters: list[Presenter], errors: FormErrors
) -> tuple[list[PresenterInput], list[Presenter]]:
    by_id = {str(p.id): p for p in presenters}
    kept: list[PresenterInput] = []
    removed: list[Presenter] = []
    seen: set[int] = set()
    rows = draft.rows.get("presenters", [])
    live = draft.kept_rows("presenters")
    if len(live) > MAX_PRESENTERS:
        errors.add("presenters", f"Show at most {MAX_PRESENTERS} presenters.")
    for row in rows:
        stored = by_id.get(row.get("id", ""))
        if stored is not None and stored.id in seen:
            stored = None  # the same presenter twice: the second row is a new one
        if stored is not None:
            seen.add(stored.id)
        if row.get("delete") == "1":
            if stored is not None:
                removed.append(stored)
            continue
        name = _row_text(row, "presenters", "name", "Name", 120, errors)
        title = _row_text(row, "presenters", "title", "Job title", 120, errors)
        bio = _row_text(row, "presenters", "bio", "Bio", 2000, errors)
        if not name:
            errors.add(f"presenters-{row['i']}-name", "Enter the presenter's name, or tick Remove.")
        kept.append(
            PresenterInput(
                id=stored.id if stored is not None else None,
                name=name,
                title=title,
                bio=bio,
                photo_key=(stored.photo_key or "") if stored is not None else "",
                remove_photo=row.get("remove_photo") == "1",
                photo_field=f"presenters-{row['i']}-photo",
            )
        )
    # Only a ticked Remove deletes a presenter: one the form does not mention stays, last.
    for presenter in presenters:
        if presenter.id not in seen:
            kept.append(
                PresenterInput(
                    id=presenter.id,
                    name=presenter.name,
                    title=presenter.title,
                    bio=presenter.bio,
                    photo_key=presenter.photo_key or "",
                    remove_photo=False,
                    photo_field="",
                )
            )
    return kept[:MAX_PRESENTERS], removed


def check_draft(
    draft: Draft,
    *,
    webinar: Webinar,
    presenters: list[Presenter],
    videos: set[int],
) -> tuple[Checked, FormErrors]:
    """Typed values and the error of each field; `videos` are the recordings one may choose."""
    errors = FormErrors()
    stored_theme = theme_from(webinar.theme)
    title = _check_title(draft.value("title"), errors) or webinar.title
    if "title" in errors.errors:
        title = webinar.title
    slug = webinar.slug
    if slug_editable(webinar):
        problem = slug_problem(draft.value("slug"))
        if problem:
            errors.add("slug", problem)
        else:
            slug = draft.value("slug")
    description = draft.value("description")
    if len(description) > LIMITS["description"]:
        errors.add(
            "description",
            f"Use at most {LIMITS['description']} characters ({len(description)} now).",
        )
        description = webinar.description
    language = draft.value("language")
    if language not in LANGUAGES:
        errors.add("language", "Choose a language from the list.")
        language = webinar.language
    stored_video = getattr(webinar, "video_id", None)
    video_id: int | None = stored_video
    raw_video = draft.value("video")
    if not raw_video:
        video_id = None
    elif raw_video.isdigit() and len(raw_video) < 12 and int(raw_video) in videos:
        video_id = int(raw_video)
    else:
        errors.add("video", "Choose a recording that is ready (or none for now).")

    template = draft.value("template")
    if template not in TEMPLATES:
        errors.add("template", "Choose one of the templates.")
        template = stored_theme.template
    colours: dict[str, str] = {}
    for name, label in COLOURS.items():
        colour = _colour(draft.value(name))
        if colour is None:
            errors.add(name, f"{label}: enter # and six hexadecimal digits, like #4338ca.")
            colour = getattr(stored_theme, name)
        colours[name] = colour
    font = draft.value("font")
    if font not in FONTS:
        errors.add("font", "Choose a font from the list.")
        font = stored_theme.font
    theme = Theme(
        template=template,
        primary=colours["primary"],
        background=colours["background"],
        text=colours["text"],
        font=font,
        logo_key="" if draft.checked("remove_logo") else stored_theme.logo_key,
        cover_key="" if draft.checked("remove_cover") else stored_theme.cover_key,
    )
    landing = _check_landing(draft, landing_from(webinar.landing), errors)
    fields = _check_fields(draft, webinar, errors)
    allowed = _domains(draft, "allowed_domains", errors)
    blocked = _domains(draft, "blocked_domains", errors)
    both = sorted(set(allowed) & set(blocked))
    if both:
        errors.add("blocked_domains", f"{both[0]} is both allowed and blocked; keep one.")
    rules = RegistrationRules(
        allowed_domains=allowed,
        blocked_domains=blocked,
        block_disposable=draft.checked("block_disposable"),
    )
    kept, removed = _check_presenters(draft, presenters, errors)
    checked = Checked(
        title=title,
        slug=slug,
        description=description,
        language=language,
        video_id=video_id,
        theme=theme,
        landing=landing,
        fields=fields,
        rules=rules,
        presenters=kept,
        removed_presenters=removed,
    )
    return checked, errors


async def choosable_videos(webinar: Webinar | None = None) -> list[Video]:
    """Recordings a webinar may use: ready or already playable, plus the one it has now."""
    current = getattr(webinar, "video_id", None) if webinar is not None else None
    found = await Video.all().order_by("-created_at")
    return [
        video
        for video in found
        if video.state == VideoState.READY or video.playable or video.id == current
    ]


async def presenters_of(webinar: Webinar) -> list[Presenter]:
    """A webinar's presenters in their page order."""
    return await Presenter.filter(webinar_id=webinar.id).order_by("position", "id")


async def editor_draft(webinar: Webinar) -> Draft:
    """The stored values of a webinar for the editor."""
    return draft_from_webinar(webinar, await presenters_of(webinar))


# --- saving --------------------------------------------------------------------------------


async def _clean_uploads(
    checked: Checked, files: Mapping[str, ImageUpload], errors: FormErrors
) -> dict[str, CleanImage]:
    wanted: list[tuple[str, ImagePurpose]] = [
        ("logo", ImagePurpose.LOGO),
        ("cover", ImagePurpose.COVER),
    ] + [(row.photo_field, ImagePurpose.PHOTO) for row in checked.presenters if row.photo_field]
    cleaned: dict[str, CleanImage] = {}
    for name, purpose in wanted:
        upload = files.get(name)
        if upload is None:
            continue
        try:
            cleaned[name] = await asyncio.to_thread(clean_image, upload, purpose=purpose)
        except ImageError as exc:
            errors.add(name, str(exc))
    return cleaned


async def images_in_use(keys: set[str], *, exclude_webinar: int | None = None) -> set[str]:
    """Which of these image keys a webinar theme or presenter still shows."""
    if not keys:
        return set()
    photos = await Presenter.filter(photo_key__in=list(keys)).values_list("photo_key", flat=True)
    used: set[str] = {str(value) for value in photos}
    themes = Webinar.all()
    if exclude_webinar is not None:
        themes = themes.exclude(id=exclude_webinar)
    for theme in await themes.values_list("theme", flat=True):
        if isinstance(theme, dict):
            used |= {str(theme.get(name)) for name in ("logo_key", "cover_key")} & keys
    return used


async def _drop_unused(keys: set[str], storage: Storage) -> None:
    keys = {key for key in keys if is_image_key(key)}
    unused = keys - await images_in_use(keys)
    await delete_images(sorted(unused), storage=storage)


async def update_webinar(
    webinar: Webinar,
    form: FormData,
    files: Mapping[str, ImageUpload],
    *,
    actor: StaffUser,
    storage: Storage,
) -> FormErrors:
    """Check and save the editor's form; on any error nothing is saved or stored."""
    presenters = await presenters_of(webinar)
    draft = draft_from_form(form, webinar=webinar, presenters=presenters)
    videos = {video.id for video in await choosable_videos(webinar)}
    checked, errors = check_draft(draft, webinar=webinar, presenters=presenters, videos=videos)
    old_slug = webinar.slug
    if checked.slug != old_slug and await Webinar.filter(slug=checked.slug).exists():
        errors.add("slug", "Another webinar uses this address; choose another.")
    cleaned = await _clean_uploads(checked, files, errors)
    if errors:
        return errors

    stored: dict[str, str] = {}
    try:
        for name, image in cleaned.items():
            stored[name] = await store_image(image, storage=storage)
        replaced = await _save(webinar, checked, stored)
    except IntegrityError:
        await delete_images(list(stored.values()), storage=storage)
        errors.add("slug", "Another webinar took this address a moment ago; choose another.")
        return errors
    except BaseException:
        await delete_images(list(stored.values()), storage=storage)
        raise
    await _drop_unused(replaced, storage)
    if checked.slug != old_slug:
        await audit.record(
            action="webinar.address_changed",
            actor=actor,
            target=f"webinar:{webinar.id}",
            details={"from": old_slug, "to": checked.slug},
        )
    return errors


async def _save(webinar: Webinar, checked: Checked, stored: dict[str, str]) -> set[str]:
    """Write the checked values in one transaction; the image keys no longer shown."""
    old_theme = theme_from(webinar.theme)
    theme = Theme(
        template=checked.theme.template,
        primary=checked.theme.primary,
        background=checked.theme.background,
        text=checked.theme.text,
        font=checked.theme.font,
        logo_key=stored.get("logo", checked.theme.logo_key),
        cover_key=stored.get("cover", checked.theme.cover_key),
    )
    replaced = {old_theme.logo_key, old_theme.cover_key} - {theme.logo_key, theme.cover_key}
    async with in_transaction():
        webinar.title = checked.title
        webinar.slug = checked.slug
        webinar.description = checked.description
        webinar.language = checked.language
        webinar.video_id = checked.video_id
        webinar.theme = to_json(theme)
        webinar.landing = to_json(checked.landing)
        webinar.registration_fields = fields_to_json(checked.fields)
        webinar.registration_rules = to_json(checked.rules)
        await webinar.save()
        for presenter in checked.removed_presenters:
            replaced |= await remove_presenter(presenter)
        for position, row in enumerate(checked.presenters):
            photo = stored.get(row.photo_field)
            photo_key = photo or ("" if row.remove_photo else row.photo_key)
            if row.photo_key and row.photo_key != photo_key:
                replaced.add(row.photo_key)
            if row.id is None:
                await add_presenter(
                    webinar,
                    name=row.name,
                    title=row.title,
                    bio=row.bio,
                    photo_key=photo_key,
                    position=position,
                )
            else:
                await update_presenter(
                    row.id,
                    webinar,
                    name=row.name,
                    title=row.title,
                    bio=row.bio,
                    photo_key=photo_key,
                    position=position,
                )
    return {key for key in replaced if key}


async def add_presenter(
    webinar: Webinar, *, name: str, title: str, bio: str, photo_key: str, position: int
) -> Presenter:
    """Add a presenter to a webinar."""
    return await Presenter.create(
        webinar=webinar,
        name=name,
        title=title,
        bio=bio,
        photo_key=photo_key or None,
        position=position,
    )


async def update_presenter(
    presenter_id: int,
    webinar: Webinar,
    *,
    name: str,
    title: str,
    bio: str,
    photo_key: str,
    position: int,
) -> None:
    """Change a presenter of this webinar (one of another webinar is left alone)."""
    await Presenter.filter(id=presenter_id, webinar_id=webinar.id).update(
        name=name, title=title, bio=bio, photo_key=photo_key or None, position=position
    )


async def remove_presenter(presenter: Presenter) -> set[str]:
    """Remove a presenter; the photo key it leaves behind (for deleting when unused)."""
    await Presenter.filter(id=presenter.id).delete()
    return {presenter.photo_key} if presenter.photo_key else set()


async def reorder_presenters(webinar: Webinar, ids: list[int]) -> None:
    """Put a webinar's presenters in the given order (ids not listed go last, as they were)."""
    presenters = await presenters_of(webinar)
    rank = {presenter_id: position for position, presenter_id in enumerate(ids)}
    ordered = sorted(presenters, key=lambda p: (rank.get(p.id, len(ids)), p.position, p.id))
    async with in_transaction():
        for position, presenter in enumerate(ordered):
            if presenter.position != position:
                await Presenter.filter(id=presenter.id).update(position=position)


# --- preview -------------------------------------------------------------------------------


async def preview(webinar: Webinar, form: FormData) -> tuple[Webinar, list[Presenter]]:
    """An unsaved copy of the webinar with the form's values (invalid ones keep the stored)."""
    presenters = await presenters_of(webinar)
    draft = draft_from_form(form, webinar=webinar, presenters=presenters)
    videos = {video.id for video in await choosable_videos(webinar)}
    checked, _ = check_draft(draft, webinar=webinar, presenters=presenters, videos=videos)
    copy = Webinar(
        id=webinar.id,
        slug=checked.slug,
        title=checked.title,
        description=checked.description,
        language=checked.language,
        status=webinar.status,
        video_id=checked.video_id,
        theme=to_json(checked.theme),
        landing=to_json(checked.landing),
        registration_fields=fields_to_json(checked.fields),
        registration_rules=to_json(checked.rules),
        published_at=webinar.published_at,
        chat_mode=webinar.chat_mode,
        created_at=webinar.created_at,
        updated_at=webinar.updated_at,
    )
    shown = [
        Presenter(
            **({"id": row.id} if row.id is not None else {}),
            webinar_id=webinar.id,
            name=row.name or "…",
            title=row.title,
            bio=row.bio,
            photo_key=None if row.remove_photo else (row.photo_key or None),
            position=position,
        )
        for position, row in enumerate(checked.presenters)
    ]
    return copy, shown


# --- status ----------------------------------------------------------------------------------


async def video_warning(webinar: Webinar) -> str | None:
    """Why attendees could not watch yet (no recording, or one still processing); else None."""
    video_id = getattr(webinar, "video_id", None)
    video = await Video.get_or_none(id=video_id) if video_id else None
    if video is None:
        return "No recording is chosen yet: attendees can register, but sessions need one to play."
    if video.state != VideoState.READY and not video.playable:
        return (
            f"The recording “{video.title}” is not ready yet ({video.state.value}); "
            "sessions play once it is."
        )
    return None


async def publish_problem(webinar: Webinar) -> str | None:
    """Why the webinar cannot be published now, or None."""
    if not webinar.title.strip():
        return "Give the webinar a title before publishing."
    if await sessions.load_rules(webinar) is None:
        return "Set up a schedule first: visitors need a session to register for."
    return None


async def publish(webinar: Webinar, *, actor: StaffUser, ip: str = "") -> str | None:
    """Publish the landing page (WebinarError if it cannot be); a warning about the video."""
    problem = await publish_problem(webinar)
    if problem:
        raise WebinarError(problem)
    webinar.status = WebinarStatus.PUBLISHED
    # The first publication fixes the address for good (published links must keep working).
    webinar.published_at = webinar.published_at or auth.utcnow()
    await webinar.save(update_fields=["status", "published_at", "updated_at"])
    await audit.record(
        action="webinar.published",
        actor=actor,
        target=f"webinar:{webinar.id}",
        ip=ip,
        details={"slug": webinar.slug},
    )
    return await video_warning(webinar)


async def _set_status(
    webinar: Webinar, status: WebinarStatus, action: str, *, actor: StaffUser, ip: str
) -> None:
    previous = webinar.status
    webinar.status = status
    await webinar.save(update_fields=["status", "updated_at"])
    await audit.record(
        action=action,
        actor=actor,
        target=f"webinar:{webinar.id}",
        ip=ip,
        details={"slug": webinar.slug, "from": previous.value},
    )


async def unpublish(webinar: Webinar, *, actor: StaffUser, ip: str = "") -> None:
    """Take the landing page offline: the webinar is a draft again (its address is kept)."""
    await _set_status(webinar, WebinarStatus.DRAFT, "webinar.unpublished", actor=actor, ip=ip)


async def archive(webinar: Webinar, *, actor: StaffUser, ip: str = "") -> None:
    """Archive a webinar: offline and out of the way, kept with its registrations."""
    await _set_status(webinar, WebinarStatus.ARCHIVED, "webinar.archived", actor=actor, ip=ip)


async def duplicate(webinar: Webinar, *, actor: StaffUser, ip: str = "") -> Webinar:
    """A draft copy with content, design, form, presenters, schedule and interactions.

    Registrants and sessions stay with the original. Images are shared by key (they are
    deleted only once nothing shows them).
    """
    title = f"Copy of {webinar.title}"[: LIMITS["title"]]
    base = slugify(title) or "webinar"
    presenters = await presenters_of(webinar)
    schedule = await Schedule.get_or_none(webinar_id=webinar.id)
    # Interactions pushed into one session during it belong to that session, not the webinar.
    interactions = await Interaction.filter(webinar_id=webinar.id, session_id=None).order_by("id")
    for _ in range(5):
        slug = await unique_slug(base)
        try:
            async with in_transaction():
                copy = await Webinar.create(
                    slug=slug,
                    title=title,
                    description=webinar.description,
                    language=webinar.language,
                    status=WebinarStatus.DRAFT,
                    video_id=getattr(webinar, "video_id", None),
                    theme=dict(webinar.theme or {}),
                    landing=dict(webinar.landing or {}),
                    registration_fields=list(webinar.registration_fields or []),
                    registration_rules=dict(webinar.registration_rules or {}),
                    chat_mode=webinar.chat_mode,
                    room=dict(webinar.room or {}),
                )
                for presenter in presenters:
                    await Presenter.create(
                        webinar=copy,
                        name=presenter.name,
                        title=presenter.title,
                        bio=presenter.bio,
                        photo_key=presenter.photo_key,
                        position=presenter.position,
                    )
                if schedule is not None:
                    await Schedule.create(
                        webinar=copy,
                        kind=schedule.kind,
                        timezone=schedule.timezone,
                        attendee_local=schedule.attendee_local,
                        rules=dict(schedule.rules or {}),
                        blackout_dates=list(schedule.blackout_dates or []),
                        orphan_policy=schedule.orphan_policy,
                    )
                for item in interactions:
                    await Interaction.create(
                        webinar=copy,
                        kind=item.kind,
                        title=item.title,
                        config=dict(item.config or {}),
                        opens_at_seconds=item.opens_at_seconds,
                        closes_at_seconds=item.closes_at_seconds,
                        required=item.required,
                        position=item.position,
                    )
        except IntegrityError:
            continue  # the address was taken meanwhile: try the next one
        await audit.record(
            action="webinar.duplicated",
            actor=actor,
            target=f"webinar:{copy.id}",
            ip=ip,
            details={"from": webinar.id, "slug": copy.slug},
        )
        return copy
    raise WebinarError("Could not find a free address for the copy. Try again.")


# --- the list --------------------------------------------------------------------------------


@dataclass(frozen=True)
class WebinarRow:
    """A webinar in the admin list with its figures."""

    webinar: Webinar
    registrations: int
    upcoming_sessions: int  # stored sessions still to come (someone registered for them)
    next_start: datetime | None  # the next start the schedule offers


async def overview(*, now: datetime | None = None) -> list[WebinarRow]:
    """Every webinar, newest first, with registrations, upcoming sessions and next start."""
    now = now or auth.utcnow()
    webinars = await Webinar.all().order_by("-created_at", "-id").prefetch_related("video")
    registrations = await _counts(Registrant.all())
    upcoming = await _counts(WebinarSession.filter(starts_at__gte=now, closed_at__isnull=True))
    rows: list[WebinarRow] = []
    for webinar in webinars:
        next_start = None
        if webinar.status != WebinarStatus.ARCHIVED:
            rules = await sessions.load_rules(webinar)
            if rules is not None:
                slots = upcoming_sessions(rules, now, count=1)
                next_start = slots[0].starts_at if slots else None
        rows.append(
            WebinarRow(
                webinar=webinar,
                registrations=registrations.get(webinar.id, 0),
                upcoming_sessions=upcoming.get(webinar.id, 0),
                next_start=next_start,
            )
        )
    return rows


async def _counts(query: Any) -> dict[int, int]:
    rows = await query.annotate(n=Count("id")).group_by("webinar_id").values("webinar_id", "n")
    return {int(row["webinar_id"]): int(row["n"]) for row in rows}
