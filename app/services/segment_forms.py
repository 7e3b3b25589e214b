"""The segment editor: its form read into rules, the choices it offers, and rules in words."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

from tortoise.functions import Lower

from app.models import EmailStep, Interaction, Segment, Webinar
from app.services import accounts, content, people
from app.services.content import FormErrors
from app.services.segments import ATTENDANCE, DATE_OF, Rules, int_or_none, rules_from

NAME_MAX = 200
FIELD_VALUE_MAX = 200
CHOICE_KINDS = ("poll", "quiz")
FORM_FIELDS = (
    "name",
    "webinar",
    "attendance",
    "watch",
    "answer",
    "clicked_offer",
    "field_key",
    "field_value",
    "account",
    "date_of",
    "start",
    "end",
)


async def form_of(segment: Segment | None) -> dict[str, str]:
    """The editor's fields for a stored segment (or a new one)."""
    if segment is None:
        return {"date_of": "session"}
    rules = rules_from(segment.rules)
    account = ""
    if rules.account:
        ref = await accounts.resolve(rules.account)
        account = ref.name if ref is not None and ref.row is not None else rules.account
    return {
        "name": segment.name,
        "webinar": str(rules.webinar_id or ""),
        "attendance": rules.attendance,
        "watch": str(rules.min_watch_percent or ""),
        "answer": f"{rules.interaction_id}:{rules.option}" if rules.interaction_id else "",
        "clicked_offer": "on" if rules.clicked_offer else "",
        "field_key": rules.field_key,
        "field_value": rules.field_value,
        "account": account,
        "date_of": rules.date_of,
        "start": rules.start.isoformat() if rules.start else "",
        "end": rules.end.isoformat() if rules.end else "",
    }


def _parse_date(form: Mapping[str, str], key: str, errors: FormErrors) -> date | None:
    raw = form.get(key, "").strip()
    if not raw:
        return None
    try:
        return date.fromisoformat(raw)
    except ValueError:
        errors.add(key, "Enter a date like 2025-03-31.")
        return None


async def check_rules(form: Mapping[str, str]) -> Rules | FormErrors:
    """Rules from the editor's form, or the errors to show beside its fields."""
    errors = FormErrors()
    webinar_id: int | None = None
    raw_webinar = form.get("webinar", "").strip()
    if raw_webinar:
        webinar_id = int_or_none(raw_webinar)
        if webinar_id is None or not await Webinar.exists(id=webinar_id):
            errors.add("webinar", "That webinar does not exist (any more): choose another.")
    attendance = form.get("attendance", "").strip()
    if attendance not in ATTENDANCE:
        errors.add("attendance", "Choose attended, missed, or either.")
        attendance = ""
    watch: int | None = None
    raw_watch = form.get("watch", "").strip().rstrip("%").strip()
    if raw_watch:
        watch = int_or_none(raw_watch)
        if watch is None or not 1 <= watch <= 100:
            errors.add("watch", "Enter a whole percentage from 1 to 100.")
            watch = None
        elif attendance == "missed":
            errors.add("watch", "Someone who missed the session watched nothing: clear one.")
    interaction_id, option = await _check_answer(form.get("answer", ""), webinar_id, errors)
    clicked = form.get("clicked_offer", "") in {"on", "1", "true", "yes"}
    if clicked and attendance == "missed":
        errors.add("clicked_offer", "Someone who missed the session clicked nothing.")
    field_key = form.get("field_key", "").strip()
    field_value = " ".join(form.get("field_value", "").split())
    if len(field_value) > FIELD_VALUE_MAX:
        errors.add("field_value", f"Keep the value under {FIELD_VALUE_MAX} characters.")
    if field_value and not field_key:
        errors.add("field_key", "Choose the registration field this value is for.")
    if field_key and field_key not in await field_choices():
        errors.add("field_key", "No webinar asks this field (any more): choose another.")
    account = await _check_account(form.get("account", ""), errors)
    date_of = form.get("date_of", "session") or "session"
    if date_of not in DATE_OF:
        errors.add("date_of", "Choose the session date or the registration date.")
        date_of = "session"
    start = _parse_date(form, "start", errors)
    end = _parse_date(form, "end", errors)
    if start and end and end < start:
        errors.add("end", "The end date comes before the start date.")
    if errors:
        return errors
    return Rules(
        webinar_id=webinar_id,
        attendance=attendance,
        min_watch_percent=watch,
        interaction_id=interaction_id,
        option=option,
        clicked_offer=clicked,
        field_key=field_key,
        field_value=field_value,
        account=account,
        date_of=date_of,
        start=start,
        end=end,
    )


async def _check_answer(
    raw: str, webinar_id: int | None, errors: FormErrors
) -> tuple[int | None, int | None]:
    raw = raw.strip()
    if not raw:
        return None, None
    match = re.fullmatch(r"([0-9]{1,9}):([0-9]{1,3})", raw)
    interaction = (
        await Interaction.get_or_none(id=int(match[1]), kind__in=CHOICE_KINDS) if match else None
    )
    if match is None or interaction is None:
        errors.add("answer", "That poll or quiz does not exist (any more): choose another.")
        return None, None
    option = int(match[2])
    if not 0 <= option < len((interaction.config or {}).get("options", [])):
        errors.add("answer", "That option is no longer in the poll: choose another.")
        return None, None
    if webinar_id is not None and interaction.webinar_id != webinar_id:  # type: ignore[attr-defined]
        errors.add("answer", "This poll belongs to another webinar than the one chosen above.")
        return None, None
    return interaction.id, option


async def _check_account(raw: str, errors: FormErrors) -> str:
    if not raw.strip():
        return ""
    found = await accounts.find(raw)
    if isinstance(found, str):
        errors.add("account", found)
        return ""
    return found.key


@dataclass(frozen=True)
class Choices:
    """What the editor's selects offer."""

    webinars: list[tuple[int, str]]
    answers: list[tuple[str, list[tuple[str, str]]]]  # (poll label, [(value, option text)])
    fields: dict[str, str]  # key -> label
    accounts: list[str]  # suggestions: the stored accounts' names


async def field_choices() -> dict[str, str]:
    """Every custom registration field of any webinar: key and label."""
    found: dict[str, str] = {}
    for stored in await Webinar.all().order_by("id").values_list("registration_fields", flat=True):
        for item in content.fields_from(stored):
            found.setdefault(item.key, item.label)
    return found


async def choices() -> Choices:
    """The webinars, polls and quizzes, registration fields and accounts to choose from."""
    webinars: list[Any] = await Webinar.all().order_by("title", "id").values_list("id", "title")
    titles = {int(wid): str(title) for wid, title in webinars}
    answers: list[tuple[str, list[tuple[str, str]]]] = []
    for interaction in await Interaction.filter(kind__in=CHOICE_KINDS).order_by(
        "webinar_id", "opens_at_seconds", "id"
    ):
        options = list((interaction.config or {}).get("options", []))
        owner = titles.get(interaction.webinar_id, "")  # type: ignore[attr-defined]
        label = f"{owner} · {interaction.kind.capitalize()}: {interaction.title}"
        answers.append(
            (
                label,
                [(f"{interaction.id}:{index}", str(text)) for index, text in enumerate(options)],
            )
        )
    return Choices(
        webinars=[(int(wid), str(title)) for wid, title in webinars],
        answers=answers,
        fields=await field_choices(),
        accounts=await accounts.names(),
    )


# --- In words ---------------------------------------------------------------------------------


async def describe(rules: Rules) -> list[str]:
    """The rules in words, one condition per line."""
    lines: list[str] = []
    if rules.webinar_id is not None:
        webinar = await Webinar.get_or_none(id=rules.webinar_id)
        lines.append(f"Webinar: {webinar.title}" if webinar else "Webinar: (deleted)")
    if rules.start or rules.end:
        what = DATE_OF[rules.date_of]
        since = rules.start.isoformat() if rules.start else "…"
        until = rules.end.isoformat() if rules.end else "…"
        lines.append(f"{what}: {since} to {until}")
    if rules.attendance:
        lines.append(ATTENDANCE[rules.attendance])
    if rules.min_watch_percent:
        lines.append(f"Watched at least {rules.min_watch_percent}%")
    if rules.interaction_id is not None and rules.option is not None:
        interaction = await Interaction.get_or_none(id=rules.interaction_id)
        if interaction is None:
            lines.append("Answered a poll that was deleted")
        else:
            text = people.option_texts(interaction, rules.option)
            lines.append(f"Answered “{text}” in “{interaction.title}”")
    if rules.clicked_offer:
        lines.append("Clicked the offer")
    if rules.field_key:
        label = (await field_choices()).get(rules.field_key, rules.field_key)
        value = f"“{rules.field_value}”" if rules.field_value else "anything"
        lines.append(f"{label}: {value}")
    if rules.account:
        ref = await accounts.resolve(rules.account)
        lines.append(f"Account: {ref.name}" if ref else "Account: (deleted)")
    return lines or ["Everyone who registered"]


async def check_name(name: str, segment: Segment | None, errors: FormErrors) -> str:
    """The segment's name, or an error when it is missing, too long or taken."""
    name = " ".join(name.split())
    if not name:
        errors.add("name", "Name the segment.")
    elif len(name) > NAME_MAX:
        errors.add("name", f"Keep the name under {NAME_MAX} characters.")
    else:
        same = Segment.annotate(lower=Lower("name")).filter(lower=name.lower())
        if segment is not None:
            same = same.exclude(id=segment.id)
        if await same.exists():
            errors.add("name", "Another segment has this name: choose another.")
    return name


async def segment_list() -> list[tuple[Segment, list[str], int]]:
    """Every segment with its rules in words and how many follow-ups use it."""
    found = []
    steps: dict[int, int] = {}
    used: list[Any] = await EmailStep.filter(segment_id__isnull=False).values_list(
        "segment_id", flat=True
    )
    for segment_id in used:
        steps[int(segment_id)] = steps.get(int(segment_id), 0) + 1
    for segment in await Segment.all().order_by("name", "id").prefetch_related("created_by"):
        found.append((segment, await describe(rules_from(segment.rules)), steps.get(segment.id, 0)))
    return found
