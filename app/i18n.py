"""Attendee-facing languages: gettext catalogues (Babel .po files) and locale-aware formatting.

Each language has a folder under `app/translations/` holding one or more `.po` files (one per
area, such as `pages.po` and `emails.po`); they are compiled in memory on first use, so there is
no build step. English is the source language and needs no catalogue.
"""

from __future__ import annotations

import io
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from zoneinfo import ZoneInfo

from babel.core import Locale
from babel.dates import format_date, format_time
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import NullTranslations, Translations

TRANSLATIONS = Path(__file__).parent / "translations"
LANGUAGES = ("en", "de")
DEFAULT_LANGUAGE = "en"


def language_or_default(value: str | None) -> str:
    """A supported language code, falling back to English."""
    return value if value in LANGUAGES else DEFAULT_LANGUAGE


@lru_cache(maxsize=len(LANGUAGES))
def translations(language: str) -> NullTranslations:
    """The merged catalogues of a language (English: the identity)."""
    folder = TRANSLATIONS / language
    merged: NullTranslations = NullTranslations()
    if language == DEFAULT_LANGUAGE or not folder.is_dir():
        return merged
    for path in sorted(folder.glob("*.po")):
        with path.open("rb") as handle:
            catalogue = read_po(handle, locale=language)
        buffer = io.BytesIO()
        write_mo(buffer, catalogue)
        buffer.seek(0)
        loaded = Translations(fp=buffer)
        if isinstance(merged, Translations):
            merged.merge(loaded)
        else:
            merged = loaded
    return merged


def gettext(language: str, message: str) -> str:
    """`message` in `language`."""
    return translations(language_or_default(language)).gettext(message)


def ngettext(language: str, singular: str, plural: str, n: int) -> str:
    """The singular or plural form of a message in `language`."""
    return translations(language_or_default(language)).ngettext(singular, plural, n)


def format_when(moment: datetime, zone: ZoneInfo, language: str, *, style: str = "full") -> str:
    """A session time as people read it in `language`, in `zone` ("Thursday, 3 December ...")."""
    locale = Locale.parse(language_or_default(language))
    local = moment.astimezone(zone)
    day = format_date(local, format="full" if style == "full" else "medium", locale=locale)
    return f"{day}, {format_time(local, format='short', locale=locale)}"


def zone_label(zone: ZoneInfo, moment: datetime) -> str:
    """A zone with its offset at `moment`, such as 'Europe/Berlin (UTC+01:00)'."""
    offset = moment.astimezone(zone).strftime("%z")
    return f"{zone.key} (UTC{offset[:3]}:{offset[3:]})"
