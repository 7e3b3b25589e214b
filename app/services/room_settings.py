"""The live room's settings: chat mode and rules, the recording notice, welcome, end screen.

They live on the webinar (`Webinar.chat_mode` and the `Webinar.room` JSON) and are edited in the
admin's Room tab. `room` holds only what differs from the defaults, and the defaults are in the
webinar's language: a webinar whose language changes gets the new language's texts unless the
editor wrote their own. Reading never fails on a stored value it does not understand: it falls
back to the default of that one setting.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit

from app.i18n import gettext, language_or_default
from app.models import StaffUser, Webinar
from app.services import audit

CHAT_MODES = ("private", "moderated", "open")
CHAT_MODE_DESCRIPTIONS: dict[str, str] = {
    "private": "Attendees chat with your team only; nobody else sees their messages.",
    "moderated": "Attendees' messages wait for approval; approved ones go to everyone.",
    "open": "Everyone sees everyone's messages at once.",
}
DEFAULT_CHAT_MODE = "private"

TEXT_MAX = 500  # notice, welcome and auto-response
END_TITLE_MAX = 120
END_TEXT_MAX = 1000
END_BUTTON_MAX = 60
URL_MAX = 2000
SLOW_MODE_MAX = 300
BANNED_WORDS_MAX = 200
BANNED_WORD_MAX = 40
BANNED_LIST_MAX = 20_000  # characters of the form's list, separators and spaces included
# Text fields of the form and the longest each may be.
TEXT_LIMITS: dict[str, int] = {
    "notice": TEXT_MAX,
    "welcome": TEXT_MAX,
    "auto_response": TEXT_MAX,
    "end_title": END_TITLE_MAX,
    "end_text": END_TEXT_MAX,
    "end_button": END_BUTTON_MAX,
    "end_url": URL_MAX,
}
# Shown on a single line in the room, so line breaks are folded into spaces.
ONE_LINE = ("end_title", "end_button", "end_url")
CHECKBOXES = ("show_notice", "chat_enabled")
FORM_FIELDS = (
    "chat_mode",
    "chat_enabled",
    "notice",
    "show_notice",
    "welcome",
    "auto_response",
    "slow_mode_seconds",
    "banned_words",
    "end_title",
    "end_text",
    "end_button",
    "end_url",
)
_TRUE = {"1", "on", "true", "yes"}
_WORD_SEPARATORS = re.compile(r"[\n,]")
_WORD_CHARACTER = re.compile(r"\w")


@dataclass(frozen=True)
class RoomSettings:
    """Everything the live room of one webinar is set to, defaults filled in."""

    chat_mode: str
    notice: str
    show_notice: bool
    welcome: str
    auto_response: str
    slow_mode_seconds: int
    banned_words: tuple[str, ...]
    end_title: str
    end_text: str
    end_button: str
    end_url: str
    chat_enabled: bool


def default_settings(language: str, *, chat_mode: str = DEFAULT_CHAT_MODE) -> RoomSettings:
    """The settings of a webinar nobody has changed, with texts in `language`."""

    def _(message: str) -> str:
        return gettext(language_or_default(language), message)

    return RoomSettings(
        chat_mode=chat_mode if chat_mode in CHAT_MODES else DEFAULT_CHAT_MODE,
        notice=_(
            "This presentation is recorded. "
            "Our team is here live to answer your questions in the chat."
        ),
        show_notice=True,
        welcome=_("Welcome, glad you're here! Write your questions in the chat at any time."),
        auto_response=_(
            "Thanks for your question! "
            "Our team will answer here, or by email if you have left by then."
        ),
        slow_mode_seconds=0,
        banned_words=(),
        end_title=_("Thanks for watching"),
        end_text="",
        end_button="",
        end_url="",
        chat_enabled=True,
    )


def _text(value: object, fallback: str, limit: int) -> str:
    return value[:limit] if isinstance(value, str) else fallback


def _flag(value: object, fallback: bool) -> bool:
    return value if isinstance(value, bool) else fallback


def _seconds(value: object, fallback: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        return fallback
    return min(max(value, 0), SLOW_MODE_MAX)


def _words(value: object, fallback: tuple[str, ...]) -> tuple[str, ...]:
    if not isinstance(value, list | tuple):
        return fallback
    words = [word[:BANNED_WORD_MAX] for word in value if isinstance(word, str) and word.strip()]
    return tuple(words[:BANNED_WORDS_MAX])


def _merged(base: RoomSettings, raw: Mapping[str, Any]) -> RoomSettings:
    """`base` with every understood value of `raw` in place of its own."""
    chat_mode = raw.get("chat_mode", base.chat_mode)
    return RoomSettings(
        chat_mode=chat_mode if chat_mode in CHAT_MODES else base.chat_mode,
        notice=_text(raw.get("notice"), base.notice, TEXT_MAX),
        show_notice=_flag(raw.get("show_notice"), base.show_notice),
        welcome=_text(raw.get("welcome"), base.welcome, TEXT_MAX),
        auto_response=_text(raw.get("auto_response"), base.auto_response, TEXT_MAX),
        slow_mode_seconds=_seconds(raw.get("slow_mode_seconds"), base.slow_mode_seconds),
        banned_words=_words(raw.get("banned_words"), base.banned_words),
        end_title=_text(raw.get("end_title"), base.end_title, END_TITLE_MAX),
        end_text=_text(raw.get("end_text"), base.end_text, END_TEXT_MAX),
        end_button=_text(raw.get("end_button"), base.end_button, END_BUTTON_MAX),
        end_url=_text(raw.get("end_url"), base.end_url, URL_MAX),
        chat_enabled=_flag(raw.get("chat_enabled"), base.chat_enabled),
    )


def room_settings(webinar: Webinar) -> RoomSettings:
    """The webinar's room settings: what the editor set, defaults in its language for the rest."""
    defaults = default_settings(webinar.language, chat_mode=webinar.chat_mode)
    stored = webinar.room if isinstance(webinar.room, dict) else {}
    return _merged(defaults, {key: value for key, value in stored.items() if key != "chat_mode"})


def public_settings(settings: RoomSettings) -> dict[str, Any]:
    """What the attendee's page gets: everything but the banned words."""
    shown = asdict(settings)
    del shown["banned_words"]
    # A button needs both its words and where it goes; the check of the form makes sure of it.
    shown["end_button"] = settings.end_button if settings.end_url else ""
    return shown


# --- the admin's form --------------------------------------------------------------------------


def is_web_address(url: str) -> bool:
    """Whether `url` is an absolute http(s) address with a host."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    return parts.scheme in {"http", "https"} and bool(parts.hostname) and " " not in url


def parse_banned_words(raw: str) -> list[str]:
    """The words of the form's list (one per line or comma separated), each once, as written."""
    words: list[str] = []
    seen: set[str] = set()
    for part in _WORD_SEPARATORS.split(raw):
        word = " ".join(part.split())
        key = _folded(word)
        if word and key not in seen:
            seen.add(key)
            words.append(word)
    return words


def _check_banned_words(raw: str, errors: dict[str, str]) -> tuple[str, ...] | None:
    if len(raw) > BANNED_LIST_MAX:
        errors["banned_words"] = (
            f"This list is too long: at most {BANNED_WORDS_MAX} words "
            f"of up to {BANNED_WORD_MAX} characters each."
        )
        return None
    words = parse_banned_words(raw)
    if len(words) > BANNED_WORDS_MAX:
        errors["banned_words"] = (
            f"List at most {BANNED_WORDS_MAX} words; this list has {len(words)}."
        )
        return None
    too_long = [word for word in words if len(word) > BANNED_WORD_MAX]
    if too_long:
        errors["banned_words"] = (
            f"A blocked word has at most {BANNED_WORD_MAX} characters: "
            f"“{too_long[0][:BANNED_WORD_MAX]}…” is longer."
        )
        return None
    no_letters = [word for word in words if not _WORD_CHARACTER.search(word)]
    if no_letters:
        errors["banned_words"] = (
            f"“{no_letters[0]}” has no letters or digits, so it cannot be matched as a word."
        )
        return None
    return tuple(words)


def _check_seconds(raw: str, errors: dict[str, str]) -> int | None:
    typed = raw.strip()
    if not typed:
        return 0
    try:
        seconds = int(typed)
    except ValueError:
        errors["slow_mode_seconds"] = "Enter a whole number of seconds, such as 10 (0: off)."
        return None
    if not 0 <= seconds <= SLOW_MODE_MAX:
        errors["slow_mode_seconds"] = f"Slow mode is between 0 (off) and {SLOW_MODE_MAX} seconds."
        return None
    return seconds


def check_form(form: Mapping[str, str]) -> tuple[dict[str, Any], dict[str, str]]:
    """The settings typed in the admin's form and the errors to show beside each field.

    Values hold every field that is valid (errors those that are not), so a preview can show
    what is right so far; nothing may be saved while there is any error.
    """
    values: dict[str, Any] = {}
    errors: dict[str, str] = {}
    chat_mode = form.get("chat_mode", "").strip()
    if chat_mode in CHAT_MODES:
        values["chat_mode"] = chat_mode
    else:
        errors["chat_mode"] = "Choose who sees attendees' messages."
    for name in CHECKBOXES:
        values[name] = form.get(name, "").strip().lower() in _TRUE
    for name, limit in TEXT_LIMITS.items():
        text = form.get(name, "").replace("\r\n", "\n").strip()
        if name in ONE_LINE:
            text = " ".join(text.split())
        if len(text) > limit:
            errors[name] = f"Keep this under {limit:,} characters (it has {len(text):,})."
        else:
            values[name] = text
    if values.get("show_notice") and values.get("notice") == "":
        errors["notice"] = "Write the notice, or choose not to show it."
    url = values.get("end_url", "")
    if url and not is_web_address(url):
        errors["end_url"] = "Enter a full web address starting with https:// or http://."
        del values["end_url"]
    if "end_url" in values and "end_button" in values:
        # The button is shown with both its words and where it leads, or not at all.
        if values["end_button"] and not url:
            errors["end_url"] = "Enter where the button leads, or leave the button's text empty."
            del values["end_url"]
        elif url and not values["end_button"]:
            errors["end_button"] = "Enter the button's text, or leave the address empty."
            del values["end_button"]
    seconds = _check_seconds(form.get("slow_mode_seconds", ""), errors)
    if seconds is not None:
        values["slow_mode_seconds"] = seconds
    words = _check_banned_words(form.get("banned_words", ""), errors)
    if words is not None:
        values["banned_words"] = words
    return values, errors


def form_of(settings: RoomSettings) -> dict[str, str]:
    """The settings as the admin's form shows them."""
    form = {name: str(value) for name, value in asdict(settings).items()}
    for name in CHECKBOXES:
        form[name] = "on" if getattr(settings, name) else ""
    form["banned_words"] = "\n".join(settings.banned_words)
    return form


def with_values(settings: RoomSettings, values: Mapping[str, Any]) -> RoomSettings:
    """`settings` with the valid `values` of a form in place, for a preview of unsaved changes."""
    return _merged(settings, values)


def _stored(settings: RoomSettings, defaults: RoomSettings) -> dict[str, Any]:
    """What `room` keeps: only the settings that differ from the defaults."""
    kept: dict[str, Any] = {}
    for field in fields(RoomSettings):
        if field.name == "chat_mode":
            continue  # a column of its own
        value = getattr(settings, field.name)
        if value != getattr(defaults, field.name):
            kept[field.name] = list(value) if isinstance(value, tuple) else value
    return kept


async def save(
    *, webinar: Webinar, values: Mapping[str, Any], actor: StaffUser | None, ip: str = ""
) -> None:
    """Store checked values (from `check_form`); settings missing from `values` stay as they are."""
    current = room_settings(webinar)
    updated = _merged(current, values)
    defaults = default_settings(webinar.language, chat_mode=updated.chat_mode)
    changed = [
        field.name
        for field in fields(RoomSettings)
        if getattr(updated, field.name) != getattr(current, field.name)
    ]
    await _write(webinar, updated.chat_mode, _stored(updated, defaults))
    await audit.record(
        action="room.settings_saved",
        actor=actor,
        target=f"webinar {webinar.id} ({webinar.slug})"[:255],
        ip=ip,
        details={"changed": changed},
    )


async def reset(*, webinar: Webinar, actor: StaffUser | None, ip: str = "") -> None:
    """Put every room setting back to its default (texts in the webinar's language)."""
    await _write(webinar, DEFAULT_CHAT_MODE, {})
    await audit.record(
        action="room.settings_reset",
        actor=actor,
        target=f"webinar {webinar.id} ({webinar.slug})"[:255],
        ip=ip,
        details={},
    )


async def _write(webinar: Webinar, chat_mode: str, room: dict[str, Any]) -> None:
    # Only these two columns: a concurrent save of the webinar's content is not overwritten.
    await Webinar.filter(id=webinar.id).update(chat_mode=chat_mode, room=room)
    webinar.chat_mode = chat_mode
    webinar.room = room


# --- the chat's rules --------------------------------------------------------------------------


def _folded(text: str) -> str:
    """`text` for caseless comparison: "Straße", "STRASSE" and "strasse" are the same."""
    return unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", text).casefold())


@lru_cache(maxsize=256)
def _matcher(words: tuple[str, ...]) -> tuple[re.Pattern[str], dict[str, str]] | None:
    originals: dict[str, str] = {}
    for word in words:
        originals.setdefault(" ".join(_folded(word).split()), word)
    originals.pop("", None)
    if not originals:
        return None
    # Longest first, so that a phrase wins over a word it starts with.
    alternatives = "|".join(re.escape(key) for key in sorted(originals, key=len, reverse=True))
    return re.compile(rf"(?<!\w)(?:{alternatives})(?!\w)"), originals


def find_banned_word(settings: RoomSettings, text: str) -> str | None:
    """The first blocked word `text` contains as a whole word (any case), as the editor wrote it."""
    found = _matcher(settings.banned_words)
    if found is None:
        return None
    pattern, originals = found
    match = pattern.search(" ".join(_folded(text).split()))
    return originals[match.group(0)] if match else None
