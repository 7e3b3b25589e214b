"""Timed interactions of the live room: polls, quizzes, NPS, ratings, questions, offers, links.

An interaction opens at a moment of the webinar's video and may close later. Editors add them
in the admin (`check`, then `save`); a presenter may push a poll or an offer into one running
session (`create_pushed`). The room reads `timeline`, sends attendees `public_item`, takes
answers through `parse_answer` and `is_open`, and adds them up with `tally`.

What `check` reads from a form (strings as a browser posts them, or typed values):

- `title`; `opens_at` and `closes_at` as seconds ("75"), minutes:seconds ("12:30") or
  hours:minutes:seconds ("1:02:03"), `closes_at` empty for "until the end"; `required` ("on",
  "1", "true", "yes" or a bool).
- poll and quiz: the options as numbered fields `option_1` ... `option_10` (blank ones are
  skipped), or `options` as a list or as text with one option per line; `multiple`. A quiz
  marks correct options with `correct_N` checkboxes beside `option_N`, or with `correct`, a
  list of indices into `options` as given; and an `explanation`.
- nps: `question` (optional). rating: `scale` (5 or 10). question: `prompt`, `placeholder`.
- offer: `text`, `button`, `url`, `countdown_seconds` (written like a time; empty: none).
- download: `text`, and `file_key`, `file_name`, `size`, `content_type` as set by whoever
  stored the file (never taken from what a browser posts).
- link: `text`, `button`, `url`.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Final
from urllib.parse import urlsplit

from tortoise.expressions import Q

from app.i18n import gettext
from app.models import Interaction, StaffUser, Webinar, WebinarSession
from app.services import audit
from app.services.downloads import DOWNLOAD_PREFIX, FILE_NAME_MAX, MAX_DOWNLOAD_BYTES, drop_file
from app.services.uploads import human_size
from media.storage import Storage, StorageError, clean_key

KINDS: Final = ("poll", "quiz", "nps", "rating", "question", "offer", "download", "link")
ANSWER_KINDS: Final = frozenset({"poll", "quiz", "nps", "rating", "question"})
RESULT_KINDS: Final = frozenset({"poll", "quiz", "nps", "rating"})
PUSH_KINDS: Final = frozenset({"poll", "offer"})

TITLE_MAX = 200
OPTION_MAX = 200
MIN_OPTIONS = 2
MAX_OPTIONS = 10
TEXT_MAX = 2000
BUTTON_MAX = 60
URL_MAX = 2000
PROMPT_MAX = 500
PLACEHOLDER_MAX = 120
NPS_QUESTION_MAX = 300
ANSWER_MAX = 1000
COUNTDOWN_MAX = 24 * 3600
MAX_MOMENT = 100 * 3600  # no video runs longer; a bigger number is a typing slip
SCALES = (5, 10)
# Answers are taken this long before the opening moment (players' clocks drift a little) and
# this long after the closing one (an answer sent just before it closed is still in flight).
OPEN_EARLY = 2.0
CLOSE_GRACE = 10.0
# A duration probed from the file is rarely whole seconds: "60:00" for a 3599.96 s video is fine.
DURATION_TOLERANCE = 1.0
_TRUE = frozenset({"1", "on", "true", "yes"})

# Config keys each kind stores, and the ones attendees may see.
CONFIG_KEYS: Final[Mapping[str, tuple[str, ...]]] = {
    "poll": ("options", "multiple"),
    "quiz": ("options", "correct", "multiple", "explanation"),
    "nps": ("question",),
    "rating": ("scale",),
    "question": ("prompt", "placeholder"),
    "offer": ("text", "button", "url", "countdown_seconds"),
    "download": ("file_key", "file_name", "size", "content_type", "text"),
    "link": ("text", "button", "url"),
}
PUBLIC_KEYS: Final[Mapping[str, tuple[str, ...]]] = {
    "poll": ("options", "multiple"),
    "quiz": ("options", "multiple"),
    "nps": ("question",),
    "rating": ("scale",),
    "question": ("prompt", "placeholder"),
    "offer": ("text", "button", "url", "countdown_seconds"),
    "download": ("text", "file_name", "size"),
    "link": ("text", "button", "url"),
}


class InteractionError(ValueError):
    """Input that cannot be taken; `errors` maps each field to what is wrong with it."""

    def __init__(self, errors: Mapping[str, str]) -> None:
        self.errors: dict[str, str] = dict(errors)
        super().__init__(next(iter(self.errors.values()), "invalid interaction"))


@dataclass(frozen=True)
class CheckedInteraction:
    """An interaction as checked, ready to store."""

    kind: str
    title: str
    config: dict[str, Any]
    opens_at_seconds: float
    closes_at_seconds: float | None
    required: bool


# --- times -----------------------------------------------------------------------------------


def parse_time(value: Any) -> float | None:
    """Seconds from "75", "12:30", "1:02:03" (or a number); None when empty; ValueError if bad."""
    problem = "Enter a time like 12:30 (minutes:seconds), 1:02:03 or a number of seconds."
    if value is None:
        return None
    if isinstance(value, bool):
        raise ValueError(problem)
    if isinstance(value, int | float):
        if not math.isfinite(value) or not 0 <= value <= MAX_MOMENT:
            raise ValueError(problem)
        return float(value)
    if not isinstance(value, str):
        raise ValueError(problem)
    text = value.strip()
    if not text:
        return None
    parts = text.split(":")
    if len(parts) > 3:
        raise ValueError(problem)
    *whole, last = parts
    match = re.fullmatch(r"([0-9]+)(?:[.,]([0-9]+))?", last)
    if match is None or not all(part.isascii() and part.isdigit() for part in whole):
        raise ValueError(problem)
    seconds = float(f"{match.group(1)}.{match.group(2) or 0}")
    numbers = [int(part) for part in whole]
    # After a colon, seconds (and minutes after hours) are written with at most two digits.
    if whole and (len(match.group(1)) > 2 or seconds >= 60):
        raise ValueError(problem)
    if len(numbers) == 2 and (len(whole[1]) > 2 or numbers[1] >= 60):
        raise ValueError(problem)
    if len(numbers) == 1:
        total = numbers[0] * 60 + seconds
    elif len(numbers) == 2:
        total = numbers[0] * 3600 + numbers[1] * 60 + seconds
    else:
        total = seconds
    if total > MAX_MOMENT:
        raise ValueError(problem)
    return total


def clock(seconds: float) -> str:
    """A moment of the video as M:SS or H:MM:SS (tenths shown only when there are some)."""
    tenths = round(seconds * 10)
    whole, fraction = divmod(tenths, 10)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    text = f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"
    return f"{text}.{fraction}" if fraction else text


# --- checking a form ---------------------------------------------------------------------------


def _text(form: Mapping[str, Any], key: str) -> str:
    value = form.get(key)
    if isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return ""


def _flag(form: Mapping[str, Any], key: str) -> bool:
    value = form.get(key)
    if isinstance(value, bool):
        return value
    return isinstance(value, str) and value.strip().lower() in _TRUE


def clean_line(text: str) -> str:
    """One line of text: control characters dropped, runs of whitespace made one space."""
    kept = "".join(" " if unicodedata.category(char) == "Cc" else char for char in text)
    return " ".join(kept.split())


def clean_text(text: str) -> str:
    """Text that may span lines: control characters other than line breaks and tabs dropped."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return "".join(
        char for char in text if char in "\n\t" or unicodedata.category(char) != "Cc"
    ).strip()


def _limited(
    errors: dict[str, str], field: str, value: str, limit: int, *, required: str = ""
) -> str:
    if not value and required:
        errors[field] = required
    elif len(value) > limit:
        errors[field] = f"Use at most {limit} characters (this has {len(value)})."
    return value


def _url(errors: dict[str, str], form: Mapping[str, Any]) -> str:
    value = _text(form, "url").strip()
    if not value:
        errors["url"] = "Enter the web address the button opens, starting with https://."
        return value
    parts = urlsplit(value)
    if (
        parts.scheme.lower() not in {"http", "https"}
        or not parts.hostname
        or any(char.isspace() for char in value)
        or len(value) > URL_MAX
    ):
        errors["url"] = "Enter a full web address starting with https:// (or http://)."
    return value


def _options(form: Mapping[str, Any], errors: dict[str, str]) -> tuple[list[str], dict[int, int]]:
    """The options kept, and where each given position (0-based) went among them."""
    given: list[str] = []
    raw = form.get("options")
    if isinstance(raw, list | tuple):
        for item in raw:
            if not isinstance(item, str):
                errors["options"] = "Each option must be text."
                return [], {}
            given.append(item)
    elif isinstance(raw, str):
        given = raw.splitlines()
    else:
        given = [_text(form, f"option_{number}") for number in range(1, MAX_OPTIONS + 1)]
    options: list[str] = []
    where: dict[int, int] = {}
    seen: set[str] = set()
    for index, item in enumerate(given):
        text = clean_line(item)
        if not text:
            continue
        if len(text) > OPTION_MAX:
            errors["options"] = f"Option {index + 1} is longer than {OPTION_MAX} characters."
        folded = text.casefold()
        if folded in seen and "options" not in errors:
            errors["options"] = f"Each option must differ: “{text}” is there twice."
        seen.add(folded)
        where[index] = len(options)
        options.append(text)
    if "options" not in errors:
        if len(options) < MIN_OPTIONS:
            errors["options"] = f"Enter at least {MIN_OPTIONS} options."
        elif len(options) > MAX_OPTIONS:
            errors["options"] = f"Offer at most {MAX_OPTIONS} options (this has {len(options)})."
    return options, where


def _correct(
    form: Mapping[str, Any], where: dict[int, int], multiple: bool, errors: dict[str, str]
) -> list[int]:
    raw = form.get("correct")
    marked: list[int] = []
    if isinstance(raw, list | tuple):
        for item in raw:
            if not isinstance(item, int) or isinstance(item, bool):
                errors["correct"] = "Mark the correct options by their number."
                return []
            marked.append(item)
    else:
        marked = [n - 1 for n in range(1, MAX_OPTIONS + 1) if _flag(form, f"correct_{n}")]
    correct: set[int] = set()
    for index in marked:
        if index not in where:
            errors["correct"] = f"Option {index + 1} is marked correct but is empty."
            return []
        correct.add(where[index])
    if not correct:
        errors["correct"] = "Mark at least one option as correct."
    elif len(correct) > 1 and not multiple:
        errors["correct"] = (
            "Only one option can be correct when attendees choose one answer: "
            "allow several answers, or mark just one."
        )
    return sorted(correct)


def _countdown(form: Mapping[str, Any], errors: dict[str, str]) -> int:
    try:
        seconds = parse_time(form.get("countdown_seconds"))
    except ValueError:
        errors["countdown_seconds"] = (
            "Enter the countdown like 15:00 (minutes:seconds) or a number of seconds, "
            "or leave it empty."
        )
        return 0
    if seconds is None:
        return 0
    if seconds > COUNTDOWN_MAX:
        errors["countdown_seconds"] = "A countdown lasts at most 24 hours."
    return round(seconds)


def _download(form: Mapping[str, Any], errors: dict[str, str]) -> dict[str, Any]:
    key = _text(form, "file_key")
    size = form.get("size")
    valid_key = key.startswith(DOWNLOAD_PREFIX)
    if valid_key:
        try:
            valid_key = clean_key(key) == key
        except StorageError:
            valid_key = False
    if not key or not valid_key:
        errors["file"] = "Choose the file attendees can download."
    elif not isinstance(size, int) or isinstance(size, bool) or not 0 < size <= MAX_DOWNLOAD_BYTES:
        errors["file"] = (
            f"The file must hold something and be at most {human_size(MAX_DOWNLOAD_BYTES)}."
        )
    name = clean_line(_text(form, "file_name"))[:FILE_NAME_MAX] or "file"
    return {
        "file_key": key,
        "file_name": name,
        "size": size if isinstance(size, int) else 0,
        "content_type": _text(form, "content_type")[:100] or "application/octet-stream",
        "text": _limited(errors, "text", clean_text(_text(form, "text")), TEXT_MAX),
    }


def _config(kind: str, form: Mapping[str, Any], errors: dict[str, str]) -> dict[str, Any]:
    if kind in {"poll", "quiz"}:
        options, where = _options(form, errors)
        multiple = _flag(form, "multiple")
        if kind == "poll":
            return {"options": options, "multiple": multiple}
        return {
            "options": options,
            "correct": _correct(form, where, multiple, errors),
            "multiple": multiple,
            "explanation": _limited(
                errors, "explanation", clean_text(_text(form, "explanation")), TEXT_MAX
            ),
        }
    if kind == "nps":
        question = _limited(
            errors, "question", clean_line(_text(form, "question")), NPS_QUESTION_MAX
        )
        return {"question": question} if question else {}
    if kind == "rating":
        scale = _text(form, "scale").strip()
        if scale not in {str(value) for value in SCALES}:
            errors["scale"] = "Choose 5 or 10 points."
            return {"scale": 5}
        return {"scale": int(scale)}
    if kind == "question":
        return {
            "prompt": _limited(errors, "prompt", clean_text(_text(form, "prompt")), PROMPT_MAX),
            "placeholder": _limited(
                errors, "placeholder", clean_line(_text(form, "placeholder")), PLACEHOLDER_MAX
            ),
        }
    if kind == "download":
        return _download(form, errors)
    button_missing = "Enter the words on the button, like “Get the offer”."
    config: dict[str, Any] = {
        "text": _limited(errors, "text", clean_text(_text(form, "text")), TEXT_MAX),
        "button": _limited(
            errors, "button", clean_line(_text(form, "button")), BUTTON_MAX, required=button_missing
        ),
        "url": _url(errors, form),
    }
    if kind == "offer":
        config["countdown_seconds"] = _countdown(form, errors)
    return config


def _times(
    form: Mapping[str, Any], duration: float | None, errors: dict[str, str]
) -> tuple[float, float | None]:
    opens: float | None = None
    closes: float | None = None
    try:
        opens = parse_time(form.get("opens_at"))
        if opens is None:
            errors["opens_at"] = "Enter when it appears, like 12:30 (minutes:seconds)."
    except ValueError as problem:
        errors["opens_at"] = str(problem)
    try:
        closes = parse_time(form.get("closes_at"))
    except ValueError as problem:
        errors["closes_at"] = f"{problem} Leave it empty to keep it open until the end."
    if opens is not None and duration is not None and opens >= duration:
        errors["opens_at"] = f"The video is {clock(duration)} long: choose a moment before its end."
    if closes is not None and opens is not None and closes <= opens and "opens_at" not in errors:
        errors["closes_at"] = f"It must close after it appears (at {clock(opens)})."
    elif closes is not None and duration is not None and closes > duration + DURATION_TOLERANCE:
        errors["closes_at"] = (
            f"The video ends at {clock(duration)}: choose an earlier moment, or leave this "
            "empty to keep it open until the end."
        )
    return opens or 0.0, closes


def check(kind: str, form: Mapping[str, Any], *, duration: float | None) -> CheckedInteraction:
    """Check an interaction as a form describes it; InteractionError names every bad field."""
    if kind not in KINDS:
        raise InteractionError({"kind": "Choose what kind of interaction to add."})
    errors: dict[str, str] = {}
    title = _limited(
        errors,
        "title",
        clean_line(_text(form, "title")),
        TITLE_MAX,
        required="Enter a title: it is the first thing attendees read.",
    )
    opens, closes = _times(form, duration, errors)
    required = _flag(form, "required")
    if required and kind not in ANSWER_KINDS:
        errors["required"] = (
            "Only a poll, quiz, NPS survey, rating or question can hold the video until answered."
        )
    config = _config(kind, form, errors)
    if errors:
        raise InteractionError(errors)
    return CheckedInteraction(
        kind=kind,
        title=title,
        config=config,
        opens_at_seconds=opens,
        closes_at_seconds=closes,
        required=required,
    )


def form_of(interaction: Interaction) -> dict[str, str]:
    """A stored interaction as the admin form shows it."""
    config = interaction.config or {}
    form: dict[str, str] = {
        "title": interaction.title,
        "opens_at": clock(interaction.opens_at_seconds),
        "closes_at": (
            "" if interaction.closes_at_seconds is None else clock(interaction.closes_at_seconds)
        ),
        "required": "on" if interaction.required else "",
    }
    if interaction.kind in {"poll", "quiz"}:
        for number, option in enumerate(config.get("options", []), start=1):
            form[f"option_{number}"] = str(option)
        for index in config.get("correct", []):
            form[f"correct_{index + 1}"] = "on"
        form["multiple"] = "on" if config.get("multiple") else ""
    for key in ("explanation", "question", "prompt", "placeholder", "text", "button", "url"):
        if key in config:
            form[key] = str(config[key])
    if "scale" in config:
        form["scale"] = str(config["scale"])
    if config.get("countdown_seconds"):
        form["countdown_seconds"] = clock(float(config["countdown_seconds"]))
    return form


# --- storing -----------------------------------------------------------------------------------


def _target(webinar_id: int) -> str:
    return f"webinar:{webinar_id}"


async def _next_position(webinar_id: int) -> int:
    last = await Interaction.filter(webinar_id=webinar_id).order_by("-position").first()
    return 0 if last is None else last.position + 1


async def editable(webinar: Webinar, interaction_id: int) -> Interaction | None:
    """One of the webinar's own interactions (not one pushed into a session), or None."""
    return await Interaction.get_or_none(id=interaction_id, webinar_id=webinar.id, session_id=None)


async def save(
    *,
    webinar: Webinar,
    checked: CheckedInteraction,
    interaction_id: int | None,
    actor: StaffUser | None,
    ip: str = "",
    storage: Storage | None = None,
) -> Interaction:
    """Create or change one of a webinar's interactions; a replaced file is removed from storage."""
    if interaction_id is None:
        row = await Interaction.create(
            webinar=webinar,
            kind=checked.kind,
            title=checked.title,
            config=checked.config,
            opens_at_seconds=checked.opens_at_seconds,
            closes_at_seconds=checked.closes_at_seconds,
            required=checked.required,
            position=await _next_position(webinar.id),
        )
        action = "interaction.created"
    else:
        found = await editable(webinar, interaction_id)
        if found is None:
            raise InteractionError(
                {"form": "This interaction no longer exists: someone may have deleted it."}
            )
        if found.kind != checked.kind:
            raise InteractionError(
                {"kind": "An interaction keeps its kind: add a new one instead."}
            )
        row = found
        replaced = (row.config or {}).get("file_key")
        row.title = checked.title
        row.config = checked.config
        row.opens_at_seconds = checked.opens_at_seconds
        row.closes_at_seconds = checked.closes_at_seconds
        row.required = checked.required
        await row.save()
        action = "interaction.updated"
        if (
            storage is not None
            and isinstance(replaced, str)
            and replaced != checked.config.get("file_key")
        ):
            await drop_file(storage, replaced)
    await audit.record(
        action=action,
        actor=actor,
        target=_target(webinar.id),
        ip=ip,
        details={"interaction": row.id, "kind": row.kind, "title": row.title},
    )
    return row


async def delete(
    *,
    webinar: Webinar,
    interaction_id: int,
    actor: StaffUser | None,
    ip: str = "",
    storage: Storage | None = None,
) -> Interaction | None:
    """Remove one of a webinar's interactions with its answers (and its file); None if gone."""
    row = await editable(webinar, interaction_id)
    if row is None:
        return None
    key = (row.config or {}).get("file_key")
    await row.delete()
    if storage is not None and isinstance(key, str):
        await drop_file(storage, key)
    await audit.record(
        action="interaction.deleted",
        actor=actor,
        target=_target(webinar.id),
        ip=ip,
        details={"interaction": interaction_id, "kind": row.kind, "title": row.title},
    )
    return row


async def duplicate(
    *, webinar: Webinar, interaction_id: int, actor: StaffUser | None, ip: str = ""
) -> Interaction | None:
    """A copy of one of a webinar's interactions at the same moment; None if it is gone."""
    row = await editable(webinar, interaction_id)
    if row is None:
        return None
    suffix = " (copy)"
    copy = await Interaction.create(
        webinar=webinar,
        kind=row.kind,
        title=row.title[: TITLE_MAX - len(suffix)] + suffix,
        config=dict(row.config or {}),
        opens_at_seconds=row.opens_at_seconds,
        closes_at_seconds=row.closes_at_seconds,
        required=row.required,
        position=await _next_position(webinar.id),
    )
    await audit.record(
        action="interaction.duplicated",
        actor=actor,
        target=_target(webinar.id),
        ip=ip,
        details={"interaction": copy.id, "from": row.id, "kind": row.kind},
    )
    return copy


async def create_pushed(
    *,
    session: WebinarSession,
    kind: str,
    title: str,
    config: Mapping[str, Any],
    opens_at: float,
    actor: StaffUser | None,
) -> Interaction:
    """A poll or offer a presenter pushes into one running session, opening at `opens_at`."""
    if kind not in PUSH_KINDS:
        raise InteractionError({"kind": "Only a poll or an offer can be pushed into a session."})
    form: dict[str, Any] = {key: config[key] for key in CONFIG_KEYS[kind] if key in config}
    form.update(title=title, opens_at=opens_at)
    checked = check(kind, form, duration=None)
    webinar_id: int = session.webinar_id  # type: ignore[attr-defined]
    row = await Interaction.create(
        webinar_id=webinar_id,
        session=session,
        kind=checked.kind,
        title=checked.title,
        config=checked.config,
        opens_at_seconds=checked.opens_at_seconds,
        closes_at_seconds=None,
        required=False,
        position=await _next_position(webinar_id),
    )
    await audit.record(
        action="interaction.pushed",
        actor=actor,
        target=_target(webinar_id),
        details={"interaction": row.id, "session": session.id, "kind": kind, "title": row.title},
    )
    return row


# --- the room ----------------------------------------------------------------------------------


async def timeline(webinar_id: int, session_id: int | None) -> list[Interaction]:
    """The webinar's interactions plus those pushed into this session, in the order they open."""
    query = Interaction.filter(webinar_id=webinar_id)
    if session_id is None:
        query = query.filter(session_id=None)
    else:
        query = query.filter(Q(session_id=None) | Q(session_id=session_id))
    return await query.order_by("opens_at_seconds", "position", "id")


def download_path(token: str, interaction_id: int) -> str:
    """The attendee's own address of a download (their join token is the key)."""
    return f"/j/{token}/files/{interaction_id}"


def public_item(interaction: Interaction, *, download_url: str | None = None) -> dict[str, Any]:
    """The interaction as attendees receive it: no correct answers, no storage keys."""
    config = interaction.config or {}
    shown = {key: config[key] for key in PUBLIC_KEYS.get(interaction.kind, ()) if key in config}
    if interaction.kind == "download":
        shown["url"] = download_url
    return {
        "id": interaction.id,
        "kind": interaction.kind,
        "title": interaction.title,
        "opens_at": interaction.opens_at_seconds,
        "closes_at": interaction.closes_at_seconds,
        "required": interaction.required,
        "config": shown,
    }


def shows_results(kind: str) -> bool:
    """Whether attendees see the results after answering (never for questions to the team)."""
    return kind in RESULT_KINDS


# What only those who answered a quiz may see: its answer and how many got it right.
_ANSWERED_ONLY = ("correct", "correct_share", "explanation")


def for_everyone(results: dict[str, Any]) -> dict[str, Any]:
    """Results as sent to a whole session: a quiz's answer left out (the page keeps it)."""
    return {key: value for key, value in results.items() if key not in _ANSWERED_ONLY}


def takes_answer(kind: str) -> bool:
    """Whether attendees answer this kind (offers, downloads and links are only opened)."""
    return kind in ANSWER_KINDS


def is_open(interaction: Interaction, media_seconds: float) -> bool:
    """Whether an answer given at this moment of the video is taken."""
    if media_seconds < interaction.opens_at_seconds - OPEN_EARLY:
        return False
    closes = interaction.closes_at_seconds
    return closes is None or media_seconds <= closes + CLOSE_GRACE


def _refuse(language: str, message: str, **values: object) -> InteractionError:
    text = gettext(language, message)
    return InteractionError({"answer": text.format(**values) if values else text})


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _choice(config: Mapping[str, Any], raw: Any, language: str) -> int | list[int]:
    count = len(config.get("options", []))
    if not config.get("multiple"):
        if not _is_int(raw):
            raise _refuse(language, "Choose one of the options.")
        if not 0 <= raw < count:
            raise _refuse(language, "That option does not exist.")
        return int(raw)
    if not isinstance(raw, list) or not all(_is_int(item) for item in raw):
        raise _refuse(language, "Choose one or more of the options.")
    if not raw:
        raise _refuse(language, "Choose at least one option.")
    if len(raw) > count:
        raise _refuse(language, "Choose at most {count} options.", count=count)
    if len(set(raw)) != len(raw):
        raise _refuse(language, "Choose each option only once.")
    if any(not 0 <= item < count for item in raw):
        raise _refuse(language, "That option does not exist.")
    return sorted(int(item) for item in raw)


def parse_answer(interaction: Interaction, raw: Any, *, language: str = "en") -> Any:
    """An attendee's answer as stored; InteractionError (in `language`) when it cannot be taken."""
    kind = interaction.kind
    config = interaction.config or {}
    if kind in {"poll", "quiz"}:
        return _choice(config, raw, language)
    if kind == "nps":
        if not _is_int(raw) or not 0 <= raw <= 10:
            raise _refuse(language, "Choose a score from 0 to 10.")
        return int(raw)
    if kind == "rating":
        scale = int(config.get("scale", 5))
        if not _is_int(raw) or not 1 <= raw <= scale:
            raise _refuse(language, "Choose a rating from 1 to {scale}.", scale=scale)
        return int(raw)
    if kind == "question":
        if not isinstance(raw, str):
            raise _refuse(language, "Write your question first.")
        text = clean_text(raw)
        if not text:
            raise _refuse(language, "Write your question first.")
        if len(text) > ANSWER_MAX:
            raise _refuse(language, "Please use at most {limit} characters.", limit=ANSWER_MAX)
        return text
    raise _refuse(language, "This takes no answer.")


def stored_answer(interaction: Interaction, value: Any) -> Any:
    """An accepted answer as the database keeps it (a question's text inside an object)."""
    # A JSON column takes any JSON value, but the ORM reads a bare string as JSON text to decode.
    return {"text": value} if interaction.kind == "question" else value


def given_answer(stored: Any) -> Any:
    """A stored answer back in the shape `parse_answer` returns."""
    if isinstance(stored, dict) and set(stored) == {"text"}:
        return stored["text"]
    return stored


def _valid(interaction: Interaction, answer: Any) -> bool:
    try:
        parse_answer(interaction, answer)
    except InteractionError:
        return False
    return True


def _half_up(value: Fraction) -> int:
    """Round half away from zero, as people do by hand (12.5 -> 13, -12.5 -> -13)."""
    rounded = math.floor(abs(value) + Fraction(1, 2))
    return rounded if value >= 0 else -rounded


def tally(interaction: Interaction, answers: Iterable[Any]) -> dict[str, Any]:
    """What the answers add up to; answers that no longer fit are left out.

    The NPS `score` and the rating `average` are None while there are no answers.
    """
    kind = interaction.kind
    config = interaction.config or {}
    given = list(answers)
    valid = [answer for answer in given if _valid(interaction, answer)]
    total = len(valid)
    if kind in {"poll", "quiz"}:
        counts = [0] * len(config.get("options", []))
        for answer in valid:
            for index in answer if isinstance(answer, list) else [answer]:
                counts[index] += 1
        result: dict[str, Any] = {"counts": counts, "total": total}
        if kind == "quiz":
            correct = sorted(config.get("correct", []))
            right = sum(
                1
                for answer in valid
                if (sorted(answer) if isinstance(answer, list) else [answer]) == correct
            )
            result.update(
                correct=correct,
                correct_share=round(right / total, 4) if total else 0.0,
                explanation=config.get("explanation", ""),
            )
        return result
    if kind == "nps":
        counts = [0] * 11
        for answer in valid:
            counts[answer] += 1
        promoters, passives = counts[9] + counts[10], counts[7] + counts[8]
        detractors = total - promoters - passives
        score = _half_up(Fraction(promoters - detractors, total) * 100) if total else None
        return {
            "counts": counts,
            "total": total,
            "promoters": promoters,
            "passives": passives,
            "detractors": detractors,
            "score": score,
        }
    if kind == "rating":
        counts = [0] * int(config.get("scale", 5))
        for answer in valid:
            counts[answer - 1] += 1
        average = _half_up(Fraction(sum(valid), total) * 10) / 10 if total else None
        return {"counts": counts, "total": total, "average": average}
    if kind == "question":
        return {"total": total}
    # Offers, downloads and links take no answers: a response row is a click.
    return {"total": len(given)}
