"""The interactions tab of a webinar: polls, quizzes, offers and the rest, placed on the video.

Handlers read the form and answer; what an interaction may hold is decided in
app.services.interactions, how its file is kept in app.services.downloads.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from tortoise.functions import Count

from app.models import Interaction, InteractionResponse, Video, Webinar
from app.services import downloads, interactions
from app.services.interactions import CheckedInteraction, InteractionError, clock
from app.services.permissions import Permission, can
from app.services.uploads import human_size
from app.settings import get_settings
from app.web.access import client_ip, staff_route, staff_user
from app.web.interaction_timeline import build_bar, load_tiles, tile_at
from app.web.media_files import current_storage
from app.web.templating import render, render_error
from app.web.webinar_admin import webinar_missing, webinar_of
from media.storage import StorageError

log = logging.getLogger("encore.web")

ACTIVE = "/admin/webinars"
TEMPLATE = "admin/webinar_interactions.html"
FIELD_MAX = interactions.TEXT_MAX + 1  # one more than allowed, so that too long is reported
MIN_OPTION_ROWS = 4
SPARE_OPTION_ROWS = 2  # empty rows offered, so that options can be added without JavaScript
CHUNK = 1024 * 1024
FIELDS = (
    "kind",
    "title",
    "opens_at",
    "closes_at",
    "required",
    "multiple",
    "explanation",
    "question",
    "scale",
    "prompt",
    "placeholder",
    "text",
    "button",
    "url",
    "countdown_seconds",
    *(f"option_{n}" for n in range(1, interactions.MAX_OPTIONS + 1)),
    *(f"correct_{n}" for n in range(1, interactions.MAX_OPTIONS + 1)),
)
KINDS: list[tuple[str, str, str]] = [
    ("poll", "Poll", "A question with answers to choose from; attendees then see the results."),
    ("quiz", "Quiz", "Like a poll, with right answers and an explanation shown after answering."),
    ("nps", "NPS survey", "How likely attendees are to recommend you, from 0 to 10."),
    ("rating", "Rating", "A rating from 1 to 5 or 1 to 10."),
    ("question", "Question for the team", "Attendees write a question only the team reads."),
    ("offer", "Offer", "A call to action with a button and an optional countdown."),
    ("download", "Download", "A file attendees can save, such as the slides."),
    ("link", "Link", "A button that opens a web page."),
]
LABELS = {kind: label for kind, label, _ in KINDS}
HELP = {kind: text for kind, _, text in KINDS}
_NEW_FORMS: dict[str, dict[str, str]] = {
    "nps": {"title": "How likely are you to recommend us to a friend or colleague?"},
    "rating": {"title": "How would you rate this webinar?", "scale": "5"},
    "question": {"title": "Ask the team a question", "placeholder": "Type your question"},
    "offer": {"button": "Get the offer"},
    "download": {"title": "The slides to take home"},
    "link": {"button": "Open the page"},
}
_NOTICES = {
    "saved": "Saved. Sessions starting from now show it.",
    "deleted": "Deleted, with its answers.",
    "duplicated": "Copied: the copy appears at the same moment. Edit it to move it.",
}


@dataclass
class PendingFile:
    """A chosen file held in a temporary file until the form is saved."""

    path: Path
    name: str
    size: int


@dataclass
class Posted:
    """What the editor's form sent."""

    values: dict[str, str]
    action: str
    upload: PendingFile | None
    file_problem: str


def _can_edit(request: Request) -> bool:
    return can(staff_user(request).role, Permission.EDIT_WEBINARS)


def _base(webinar: Webinar) -> str:
    return f"/admin/webinars/{webinar.id}/interactions"


async def _video(webinar: Webinar) -> Video | None:
    video_id = getattr(webinar, "video_id", None)
    return await Video.get_or_none(id=video_id) if video_id is not None else None


def _duration(video: Video | None) -> float | None:
    if video is None or not video.duration_seconds:
        return None
    return float(video.duration_seconds)


def _duration_label(video: Video | None) -> str:
    duration = _duration(video)
    return clock(duration) if duration is not None else ""


async def _answer_counts(ids: list[int]) -> dict[int, int]:
    if not ids:
        return {}
    rows = (
        await InteractionResponse.filter(interaction_id__in=ids)
        .annotate(count=Count("id"))
        .group_by("interaction_id")
        .values_list("interaction_id", "count")
    )
    return {int(item): int(count) for item, count in rows}


def summary(item: Interaction) -> str:
    """One line about what an interaction holds, for the list."""
    config = item.config or {}
    kind = item.kind
    if kind in {"poll", "quiz"}:
        options = [str(option) for option in config.get("options", [])]
        answers = "several answers" if config.get("multiple") else "one answer"
        text = f"{len(options)} options · {answers}"
        if kind == "quiz":
            right = [options[i] for i in config.get("correct", []) if 0 <= i < len(options)]
            text += " · correct: " + ", ".join(f"“{option}”" for option in right)
        return text
    if kind == "nps":
        return str(config.get("question") or "Score from 0 to 10")
    if kind == "rating":
        return f"Rating from 1 to {config.get('scale', 5)}"
    if kind == "question":
        return str(config.get("prompt") or "Free text, read by the team only")
    if kind == "download":
        return f"{config.get('file_name', '')} ({human_size(int(config.get('size', 0)))})"
    text = f"{config.get('button', '')} → {config.get('url', '')}"
    if config.get("countdown_seconds"):
        text += f" · countdown {clock(float(config['countdown_seconds']))}"
    return text


# --- the list ----------------------------------------------------------------------------------


@staff_route(Permission.VIEW_WEBINARS)
async def interactions_page(request: Request) -> Response:
    """The webinar's interactions in time order on a timeline of the video."""
    webinar = await webinar_of(request)
    if webinar is None:
        return webinar_missing(request)
    video = await _video(webinar)
    items = await interactions.timeline(webinar.id, None)
    tiles = await load_tiles(video)
    counts = await _answer_counts([item.id for item in items])
    rows = [
        {
            "item": item,
            "label": LABELS.get(item.kind, item.kind),
            "opens": clock(item.opens_at_seconds),
            "closes": None if item.closes_at_seconds is None else clock(item.closes_at_seconds),
            "summary": summary(item),
            "tile": tile_at(tiles, item.opens_at_seconds),
            "answers": counts.get(item.id, 0),
        }
        for item in items
    ]
    return render(
        request,
        TEMPLATE,
        {
            "mode": "list",
            "webinar": webinar,
            "tab": "interactions",
            "video": video,
            "duration_label": _duration_label(video),
            "bar": build_bar(_duration(video), tiles, items, labels=LABELS, link=_base(webinar)),
            "rows": rows,
            "kinds": KINDS,
            "can_edit": _can_edit(request),
            "notice": _NOTICES.get(request.query_params.get("done", ""), ""),
            "base": _base(webinar),
            "active": ACTIVE,
        },
    )


# --- the editor --------------------------------------------------------------------------------


def _option_rows(form: dict[str, str]) -> list[tuple[int, str, bool]]:
    last = max(
        (n for n in range(1, interactions.MAX_OPTIONS + 1) if form.get(f"option_{n}", "").strip()),
        default=0,
    )
    count = min(interactions.MAX_OPTIONS, max(MIN_OPTION_ROWS, last + SPARE_OPTION_ROWS))
    return [
        (n, form.get(f"option_{n}", ""), bool(form.get(f"correct_{n}")))
        for n in range(1, count + 1)
    ]


def _preview(checked: CheckedInteraction, interaction: Interaction | None) -> dict[str, Any]:
    """The card as attendees would get it, plus what a quiz shows after answering."""
    draft = Interaction(
        id=interaction.id if interaction is not None else 0,
        kind=checked.kind,
        title=checked.title,
        config=checked.config,
        opens_at_seconds=checked.opens_at_seconds,
        closes_at_seconds=checked.closes_at_seconds,
        required=checked.required,
    )
    item = interactions.public_item(draft, download_url="#")
    item["after"] = {
        "correct": checked.config.get("correct", []),
        "explanation": checked.config.get("explanation", ""),
    }
    item["size_label"] = human_size(int(checked.config.get("size", 0) or 0))
    item["countdown"] = clock(float(checked.config.get("countdown_seconds", 0) or 0))
    return item


def _checked_of(item: Interaction) -> CheckedInteraction:
    return CheckedInteraction(
        kind=item.kind,
        title=item.title,
        config=dict(item.config or {}),
        opens_at_seconds=item.opens_at_seconds,
        closes_at_seconds=item.closes_at_seconds,
        required=item.required,
    )


async def _editor(
    request: Request,
    webinar: Webinar,
    kind: str,
    form: dict[str, str],
    *,
    interaction: Interaction | None,
    checked: CheckedInteraction | None = None,
    errors: dict[str, str] | None = None,
    error: str = "",
    notice: str = "",
    status: int = 200,
) -> Response:
    video = await _video(webinar)
    duration = _duration(video)
    tiles = await load_tiles(video)
    items = await interactions.timeline(webinar.id, None)
    at: float | None
    try:
        at = interactions.parse_time(form.get("opens_at"))
    except ValueError:
        at = None
    current = interaction.id if interaction is not None else None
    answers = (await _answer_counts([current])).get(current, 0) if current is not None else 0
    file_info = None
    if interaction is not None and kind == "download":
        config = interaction.config or {}
        file_info = {
            "name": config.get("file_name", ""),
            "size": human_size(int(config.get("size", 0) or 0)),
        }
    return render(
        request,
        TEMPLATE,
        {
            "mode": "edit" if kind in LABELS else "choose",
            "webinar": webinar,
            "tab": "interactions",
            "kind": kind,
            "kind_label": LABELS.get(kind, ""),
            "kind_help": HELP.get(kind, ""),
            "kinds": KINDS,
            "interaction": interaction,
            "form": form,
            "errors": errors or {},
            "option_rows": _option_rows(form),
            "preview": _preview(checked, interaction) if checked is not None else None,
            "file_info": file_info,
            "answers": answers,
            "video": video,
            "duration_label": _duration_label(video),
            "bar": build_bar(
                duration, tiles, items, labels=LABELS, link=_base(webinar), current_id=current
            ),
            "at_tile": (
                tile_at(tiles, at)
                if at is not None and (duration is None or at < duration)
                else None
            ),
            "at_label": clock(at) if at is not None else "",
            "answer_kind": interactions.takes_answer(kind),
            "max_file_label": human_size(downloads.MAX_DOWNLOAD_BYTES),
            "max_file_bytes": downloads.MAX_DOWNLOAD_BYTES,
            "can_edit": _can_edit(request),
            "error": error,
            "notice": notice,
            "base": _base(webinar),
            "active": ACTIVE,
        },
        status=status,
    )


async def _interaction_of(request: Request, webinar: Webinar) -> Interaction | None:
    return await interactions.editable(webinar, request.path_params["interaction_id"])


def _interaction_missing(request: Request) -> Response:
    return render_error(
        request,
        status=404,
        title="Interaction not found",
        message="This interaction does not exist (any more). Go back to the list of interactions.",
    )


@staff_route(Permission.EDIT_WEBINARS)
async def interaction_new(request: Request) -> Response:
    """The form of a new interaction of the chosen kind (or the choice of kinds)."""
    webinar = await webinar_of(request)
    if webinar is None:
        return webinar_missing(request)
    kind = request.query_params.get("kind", "")
    form = dict(_NEW_FORMS.get(kind, {}))
    return await _editor(request, webinar, kind, form, interaction=None)


@staff_route(Permission.VIEW_WEBINARS)
async def interaction_page(request: Request) -> Response:
    """One interaction's form with its preview (read only for roles that may not edit)."""
    webinar = await webinar_of(request)
    if webinar is None:
        return webinar_missing(request)
    interaction = await _interaction_of(request, webinar)
    if interaction is None:
        return _interaction_missing(request)
    return await _editor(
        request,
        webinar,
        interaction.kind,
        interactions.form_of(interaction),
        interaction=interaction,
        checked=_checked_of(interaction),
    )


def _copy_limited(source: BinaryIO, folder: Path, limit: int) -> tuple[Path | None, int]:
    """Copy a file into `folder`, giving up (and removing the copy) once it passes `limit`."""
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=folder, prefix="download-", delete=False) as handle:
        path = Path(handle.name)
        size = 0
        try:
            while chunk := source.read(CHUNK):
                size += len(chunk)
                if size > limit:
                    break
                handle.write(chunk)
        except OSError:
            path.unlink(missing_ok=True)
            raise
    if size > limit or size == 0:
        path.unlink(missing_ok=True)
        return None, size
    return path, size


async def _spool(upload: UploadFile) -> tuple[PendingFile | None, str]:
    """Hold a chosen file in a temporary file, refusing it as soon as it is too large."""
    limit = downloads.MAX_DOWNLOAD_BYTES
    folder = get_settings().var_dir / "tmp"
    await upload.seek(0)
    path, size = await asyncio.to_thread(_copy_limited, upload.file, folder, limit)
    if size > limit:
        return None, (
            f"This file is larger than {human_size(limit)}, the most a download may be. "
            "Make it smaller (such as a PDF of the slides) or link to it instead."
        )
    if path is None:
        return None, "This file is empty. Choose the file to offer."
    return PendingFile(path, upload.filename or "file", size), ""


async def _read(request: Request) -> Posted:
    form = await request.form(max_files=1, max_fields=len(FIELDS) + 10)
    try:
        values = {}
        for name in FIELDS:
            raw = form.get(name)
            values[name] = raw[:FIELD_MAX] if isinstance(raw, str) else ""
        action = form.get("action")
        upload = form.get("file")
        pending, problem = None, ""
        if isinstance(upload, UploadFile) and (upload.filename or upload.size):
            pending, problem = await _spool(upload)
    finally:
        await form.close()
    return Posted(values, action if isinstance(action, str) else "save", pending, problem)


def _summary(errors: dict[str, str]) -> str:
    if "form" in errors:
        return errors["form"]
    count = len(errors)
    if count == 1:
        return "Nothing was saved: one field needs a change (marked below)."
    return f"Nothing was saved: {count} fields need a change (marked below)."


@staff_route(Permission.EDIT_WEBINARS)
async def interaction_save(request: Request) -> Response:
    """Preview or save a new or changed interaction; nothing is stored while a field is wrong."""
    webinar = await webinar_of(request)
    if webinar is None:
        return webinar_missing(request)
    interaction: Interaction | None = None
    if "interaction_id" in request.path_params:
        interaction = await _interaction_of(request, webinar)
        if interaction is None:
            return _interaction_missing(request)
    posted = await _read(request)
    try:
        return await _save(request, webinar, interaction, posted)
    finally:
        if posted.upload is not None:
            await asyncio.to_thread(posted.upload.path.unlink, missing_ok=True)


async def _save(
    request: Request, webinar: Webinar, interaction: Interaction | None, posted: Posted
) -> Response:
    values = posted.values
    # A stored interaction keeps its kind; the form cannot change it.
    kind = interaction.kind if interaction is not None else values["kind"]
    if kind not in LABELS:
        return await _editor(request, webinar, "", values, interaction=None, status=400)
    fields: dict[str, Any] = {}
    if kind == "download":
        if posted.upload is not None:
            fields = downloads.file_fields(posted.upload.name, posted.upload.size)
        elif interaction is not None:
            config = interaction.config or {}
            fields = {key: config.get(key) for key in ("file_key", "file_name", "size")}
            fields["content_type"] = config.get("content_type", "")
    video = await _video(webinar)
    errors: dict[str, str] = {}
    checked: CheckedInteraction | None = None
    try:
        # The file's fields come from the server only, whatever the form sent.
        checked = interactions.check(kind, {**values, **fields}, duration=_duration(video))
    except InteractionError as problem:
        errors = dict(problem.errors)
    if posted.file_problem:
        errors["file"] = posted.file_problem
    if errors:
        summary = _summary(errors)
        if posted.upload is not None and "file" not in errors:
            errors["file"] = "Choose the file again: it is stored only once the form is saved."
        return await _editor(
            request,
            webinar,
            kind,
            values,
            interaction=interaction,
            errors=errors,
            error=summary,
            status=400,
        )
    assert checked is not None
    if posted.action == "preview":
        notice = "This is a preview: nothing is saved yet."
        if posted.upload is not None:
            notice += " Choose the file again when you save."
        return await _editor(
            request, webinar, kind, values, interaction=interaction, checked=checked, notice=notice
        )
    return await _store(request, webinar, interaction, checked, posted)


async def _store(
    request: Request,
    webinar: Webinar,
    interaction: Interaction | None,
    checked: CheckedInteraction,
    posted: Posted,
) -> Response:
    storage = current_storage()
    stored_key: str | None = None
    if posted.upload is not None:
        stored_key = str(checked.config["file_key"])
        try:
            await downloads.store_file(
                storage,
                stored_key,
                posted.upload.path,
                content_type=str(checked.config["content_type"]),
            )
        except StorageError:
            log.exception("storing a download failed", extra={"webinar_id": webinar.id})
            errors = {"file": "The file could not be stored. Try again in a moment."}
            return await _editor(
                request,
                webinar,
                checked.kind,
                posted.values,
                interaction=interaction,
                errors=errors,
                error=_summary(errors),
                status=503,
            )
    try:
        saved = await interactions.save(
            webinar=webinar,
            checked=checked,
            interaction_id=interaction.id if interaction is not None else None,
            actor=staff_user(request),
            ip=client_ip(request),
            storage=storage,
        )
    except InteractionError as problem:
        if stored_key is not None:
            with contextlib.suppress(StorageError):
                await asyncio.to_thread(storage.delete, stored_key)
        return await _editor(
            request,
            webinar,
            checked.kind,
            posted.values,
            interaction=interaction,
            errors=problem.errors,
            error=_summary(problem.errors),
            status=409,
        )
    return RedirectResponse(f"{_base(webinar)}?done=saved#ix-{saved.id}", status_code=303)


@staff_route(Permission.EDIT_WEBINARS)
async def interaction_duplicate(request: Request) -> Response:
    """Copy an interaction (at the same moment) and show the list."""
    webinar = await webinar_of(request)
    if webinar is None:
        return webinar_missing(request)
    copy = await interactions.duplicate(
        webinar=webinar,
        interaction_id=request.path_params["interaction_id"],
        actor=staff_user(request),
        ip=client_ip(request),
    )
    if copy is None:
        return _interaction_missing(request)
    return RedirectResponse(f"{_base(webinar)}?done=duplicated#ix-{copy.id}", status_code=303)


@staff_route(Permission.EDIT_WEBINARS)
async def interaction_delete(request: Request) -> Response:
    """Delete an interaction with its answers (and its file, unless a copy still offers it)."""
    webinar = await webinar_of(request)
    if webinar is None:
        return webinar_missing(request)
    gone = await interactions.delete(
        webinar=webinar,
        interaction_id=request.path_params["interaction_id"],
        actor=staff_user(request),
        ip=client_ip(request),
        storage=current_storage(),
    )
    if gone is None:
        return _interaction_missing(request)
    return RedirectResponse(f"{_base(webinar)}?done=deleted", status_code=303)
