"""What a webinar's JSON columns hold: theme, landing blocks, registration fields and rules.

The editor writes these shapes and the public pages read them. Reading is tolerant (a missing or
unknown value falls back to its default, so an old row never breaks a page); writing goes through
the editor's validation, which names the field of every error.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any

TEMPLATES = ("classic", "split", "minimal")
LANGUAGES = {"en": "English", "de": "Deutsch"}
# System font stacks only: no third-party font requests that would tell anyone who visits.
FONTS = {
    "system": 'system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif',
    "humanist": '"Gill Sans", "Segoe UI", Candara, "Noto Sans", sans-serif',
    "serif": 'Georgia, "Iowan Old Style", "Times New Roman", serif',
    "mono": 'ui-monospace, "SFMono-Regular", Menlo, Consolas, monospace',
}
MAX_FIELDS = 20
MAX_OPTIONS = 50
HEX_COLOUR = re.compile(r"#[0-9a-fA-F]{6}")
FIELD_KEY = re.compile(r"[a-z][a-z0-9_]{0,39}")
# Keys the registration form itself uses; custom fields cannot take them.
RESERVED_KEYS = frozenset(
    {"name", "email", "session", "timezone", "csrf_token", "website", "referrer", "language"}
)


class FieldType(StrEnum):
    """The kinds of registration field an editor can add."""

    TEXT = "text"
    EMAIL = "email"
    PHONE = "phone"
    SELECT = "select"
    CHECKBOX = "checkbox"
    CONSENT = "consent"


@dataclass(frozen=True)
class Theme:
    """The look of a webinar's public pages."""

    template: str = "classic"
    primary: str = "#4338ca"
    background: str = "#ffffff"
    text: str = "#1f2937"
    font: str = "system"
    logo_key: str = ""
    cover_key: str = ""

    @property
    def font_stack(self) -> str:
        """The CSS font-family value."""
        return FONTS.get(self.font, FONTS["system"])

    @property
    def on_primary(self) -> str:
        """Black or white, whichever reads better on the primary colour."""
        white = contrast_ratio("#ffffff", self.primary)
        black = contrast_ratio("#000000", self.primary)
        return "#ffffff" if white >= black else "#000000"

    def contrast_warnings(self) -> list[str]:
        """Colour pairs below the WCAG 2.1 AA ratio of 4.5:1 for normal text."""
        warnings = []
        if contrast_ratio(self.text, self.background) < 4.5:
            warnings.append("The text colour is hard to read on the background colour.")
        if contrast_ratio(self.on_primary, self.primary) < 4.5:
            warnings.append("Button labels are hard to read on the primary colour.")
        if contrast_ratio(self.primary, self.background) < 3.0:
            warnings.append("Links and outlines in the primary colour are faint on the background.")
        return warnings


@dataclass(frozen=True)
class FaqItem:
    """A question and its answer."""

    question: str
    answer: str


@dataclass(frozen=True)
class Testimonial:
    """A quote and who said it."""

    quote: str
    author: str


@dataclass(frozen=True)
class Landing:
    """The blocks of the landing page and the thank-you page."""

    headline: str = ""
    subheadline: str = ""
    agenda: tuple[str, ...] = ()
    show_presenters: bool = True
    faq: tuple[FaqItem, ...] = ()
    testimonials: tuple[Testimonial, ...] = ()
    button_label: str = ""  # empty: the translated default ("Register now")
    thank_you_headline: str = ""
    thank_you_message: str = ""


@dataclass(frozen=True)
class RegistrationField:
    """One custom question on the registration form (name and email are always asked)."""

    key: str
    label: str
    type: FieldType = FieldType.TEXT
    required: bool = False
    options: tuple[str, ...] = ()  # select
    help: str = ""
    default_region: str = ""  # phone: ISO country for numbers typed without +country code


@dataclass(frozen=True)
class RegistrationRules:
    """Who may register: domain lists and the disposable-address block."""

    allowed_domains: tuple[str, ...] = ()  # empty: any domain
    blocked_domains: tuple[str, ...] = ()
    block_disposable: bool = False


def _text(data: Mapping[str, Any], key: str, default: str = "") -> str:
    value = data.get(key, default)
    return value if isinstance(value, str) else default


def _strings(value: object) -> tuple[str, ...]:
    if not isinstance(value, list):
        return ()
    return tuple(item for item in value if isinstance(item, str) and item)


def theme_from(data: Mapping[str, Any] | None) -> Theme:
    """A Theme from a stored JSON object; bad or missing values take their defaults."""
    data = data or {}
    default = Theme()

    def colour(key: str, fallback: str) -> str:
        value = _text(data, key)
        return value.lower() if HEX_COLOUR.fullmatch(value) else fallback

    template = _text(data, "template")
    font = _text(data, "font")
    return Theme(
        template=template if template in TEMPLATES else default.template,
        primary=colour("primary", default.primary),
        background=colour("background", default.background),
        text=colour("text", default.text),
        font=font if font in FONTS else default.font,
        logo_key=_text(data, "logo_key"),
        cover_key=_text(data, "cover_key"),
    )


def landing_from(data: Mapping[str, Any] | None) -> Landing:
    """Landing blocks from a stored JSON object."""
    data = data or {}
    faq = tuple(
        FaqItem(_text(item, "question"), _text(item, "answer"))
        for item in data.get("faq", []) or []
        if isinstance(item, dict) and _text(item, "question")
    )
    testimonials = tuple(
        Testimonial(_text(item, "quote"), _text(item, "author"))
        for item in data.get("testimonials", []) or []
        if isinstance(item, dict) and _text(item, "quote")
    )
    show = data.get("show_presenters", True)
    return Landing(
        headline=_text(data, "headline"),
        subheadline=_text(data, "subheadline"),
        agenda=_strings(data.get("agenda")),
        show_presenters=show if isinstance(show, bool) else True,
        faq=faq,
        testimonials=testimonials,
        button_label=_text(data, "button_label"),
        thank_you_headline=_text(data, "thank_you_headline"),
        thank_you_message=_text(data, "thank_you_message"),
    )


def fields_from(data: object) -> list[RegistrationField]:
    """Custom registration fields from a stored JSON list; malformed entries are left out."""
    found: list[RegistrationField] = []
    if not isinstance(data, list):
        return found
    seen: set[str] = set()
    for item in data[:MAX_FIELDS]:
        if not isinstance(item, dict):
            continue
        key = _text(item, "key")
        label = _text(item, "label")
        try:
            kind = FieldType(_text(item, "type", "text"))
        except ValueError:
            continue
        if not FIELD_KEY.fullmatch(key) or key in RESERVED_KEYS or key in seen or not label:
            continue
        seen.add(key)
        options = _strings(item.get("options"))[:MAX_OPTIONS]
        if kind is FieldType.SELECT and not options:
            continue
        required = item.get("required", False)
        found.append(
            RegistrationField(
                key=key,
                label=label,
                type=kind,
                # A consent box is only meaningful when it must be ticked.
                required=True if kind is FieldType.CONSENT else required is True,
                options=options,
                help=_text(item, "help"),
                default_region=_text(item, "default_region").upper()[:2],
            )
        )
    return found


def rules_from(data: Mapping[str, Any] | None) -> RegistrationRules:
    """Registration rules from a stored JSON object."""
    data = data or {}
    return RegistrationRules(
        allowed_domains=tuple(d.lower() for d in _strings(data.get("allowed_domains"))),
        blocked_domains=tuple(d.lower() for d in _strings(data.get("blocked_domains"))),
        block_disposable=data.get("block_disposable") is True,
    )


def to_json(value: Theme | Landing | RegistrationRules) -> dict[str, Any]:
    """The JSON object stored for a theme, landing or rules value."""
    data = asdict(value)
    return {key: list(item) if isinstance(item, tuple) else item for key, item in data.items()}


def fields_to_json(items: list[RegistrationField]) -> list[dict[str, Any]]:
    """The JSON list stored for registration fields."""
    return [
        {**asdict(item), "type": item.type.value, "options": list(item.options)} for item in items
    ]


def contrast_ratio(first: str, second: str) -> float:
    """The WCAG 2.1 contrast ratio of two #rrggbb colours (1 to 21)."""
    lighter, darker = sorted((_luminance(first), _luminance(second)), reverse=True)
    return (lighter + 0.05) / (darker + 0.05)


def _luminance(colour: str) -> float:
    channels = [int(colour[i : i + 2], 16) / 255 for i in (1, 3, 5)]
    linear = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


@dataclass
class FormErrors:
    """Errors keyed by field name, for showing each beside its input."""

    errors: dict[str, str] = field(default_factory=dict)

    def add(self, key: str, message: str) -> None:
        """Record the first error of a field."""
        self.errors.setdefault(key, message)

    def __bool__(self) -> bool:
        """Whether there is any error."""
        return bool(self.errors)
