"""The interactions tab through HTTP: timeline, each kind added, errors, edits, roles, downloads."""

from __future__ import annotations

import html
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from PIL import Image

from app.models import (
    AnalyticsEvent,
    AuditEvent,
    Contact,
    Interaction,
    InteractionResponse,
    Registrant,
    Role,
    RoomRestriction,
    Video,
    VideoState,
    Webinar,
    WebinarSession,
)
from app.services import crypto, downloads, interactions
from app.settings import Settings, load_settings, use_settings
from media.storage import LocalStorage
from media.thumbnails import plan_sprites, thumbnails_vtt
from tests import s3 as moto
from tests.web.staff import sign_in

if TYPE_CHECKING:
    from mypy_boto3_s3.client import S3Client

PDF = b"%PDF-1.4\n" + b"slides " * 200


def url(webinar: Webinar, tail: str = "") -> str:
    return f"/admin/webinars/{webinar.id}/interactions{tail}"


def media(settings: Settings) -> LocalStorage:
    return LocalStorage(root=settings.resolved_media_dir)


async def video_with_thumbnails(settings: Settings) -> Video:
    """A ready 10-minute video with its thumbnail map and sprite sheets in local storage."""
    video = await Video.create(
        title="Talk",
        source_key="uploads/x/source",
        state=VideoState.READY,
        duration_seconds=600.0,
        width=320,
        height=180,
    )
    # One thumbnail every 2 s: 300 of 160x90, ten by ten on three sheets.
    plan = plan_sprites(600.0, 320, 180)
    assert (plan.interval, plan.count, plan.sheets) == (2, 300, 3)
    folder = settings.var_dir / "sprites"
    folder.mkdir(parents=True)
    (folder / "thumbnails.vtt").write_text(thumbnails_vtt(plan, 600.0))
    for number in range(1, plan.sheets + 1):
        Image.new("RGB", (1600, 900), (number * 60, 20, 20)).save(folder / f"sprite-00{number}.jpg")
    media(settings).put_tree(f"videos/{video.id}/v1", folder)
    video.thumbnails_key = f"videos/{video.id}/v1/thumbnails.vtt"
    await video.save()
    return video


async def add(webinar: Webinar, kind: str, **form: Any) -> Interaction:
    checked = interactions.check(kind, form, duration=None)
    return await interactions.save(
        webinar=webinar, checked=checked, interaction_id=None, actor=None
    )


POLL = {"title": "Which colour?", "opens_at": "1:30", "option_1": "Red", "option_2": "Green"}


async def registrant_of(webinar: Webinar, email: str = "ann@example.com") -> tuple[Registrant, str]:
    session = await WebinarSession.create(
        webinar=webinar, starts_at=datetime.now(UTC) + timedelta(days=1)
    )
    token = crypto.new_token()
    registrant = await Registrant.create(
        contact=await Contact.create(email=email),
        webinar=webinar,
        session=session,
        join_token_hash=crypto.hash_token(token),
        join_token_sealed=crypto.seal(token),
    )
    return registrant, token


# --- the list and its timeline ----------------------------------------------------------------


async def test_the_tab_shows_the_timeline_with_thumbnails_and_markers(
    client: httpx.AsyncClient, database: Settings
) -> None:
    video = await video_with_thumbnails(database)
    webinar = await Webinar.create(slug="growth", title="Growth Basics", video=video)
    late = await add(
        webinar,
        "offer",
        title="Half price",
        opens_at="5:00",
        button="Buy",
        url="https://shop.example.com",
    )
    early = await add(webinar, "poll", **POLL)
    await sign_in(client)
    page = await client.get(url(webinar))
    assert page.status_code == 200
    text = html.unescape(page.text)
    assert 'aria-current="page">Interactions</a>' in page.text
    assert text.index("Which colour?") < text.index("Half price")
    assert "The video runs 10:00." in text
    # Markers at 90 s and 300 s of 600 s across 1000 units, each a link to its editor.
    assert f'<a href="{url(webinar, f"/{early.id}")}" class="ix-marker ix-marker-poll"' in text
    assert re.search(r'<circle cx="150\.0"', text)
    assert re.search(r'<circle cx="500\.0"', text)
    # What is on screen at 1:30: thumbnail 45 (row 4, column 5 of the first sheet); at 5:00
    # thumbnail 150 (row 5, column 0 of the second).
    sheet = f"/media/videos/{video.id}/v1/sprite-00"
    row_thumbs = re.findall(r'class="ix-thumb-img" data-ix-thumb viewBox="([\d ]+)"', text)
    assert row_thumbs == ["800 360 160 90", "0 450 160 90"]
    assert f'href="{sheet}1.jpg"' in text
    assert f'href="{sheet}2.jpg"' in text
    assert "2 options · one answer" in text
    assert "Buy → https://shop.example.com" in text
    sprite = await client.get(f"{sheet}2.jpg")
    assert sprite.status_code == 200
    assert sprite.headers["content-type"] == "image/jpeg"
    assert f'<a href="{url(webinar, f"/{late.id}")}" class="ix-marker ix-marker-offer"' in text


async def test_without_a_video_the_tab_still_works(
    client: httpx.AsyncClient, database: Settings
) -> None:
    webinar = await Webinar.create(slug="growth", title="Growth Basics")
    await sign_in(client)
    page = await client.get(url(webinar))
    assert page.status_code == 200
    assert "No video is chosen for this webinar yet" in page.text
    assert "No interactions yet." in page.text
    assert f'href="{url(webinar, "/new?kind=quiz")}"' in page.text
    chooser = await client.get(url(webinar, "/new"))
    assert chooser.status_code == 200
    assert "Add an interaction" in chooser.text
    missing = await client.get("/admin/webinars/999/interactions")
    assert missing.status_code == 404


# --- adding each kind --------------------------------------------------------------------------

KIND_CASES: list[tuple[str, dict[str, str], dict[str, Any]]] = [
    (
        "poll",
        {**POLL, "option_3": "Blue", "multiple": "on", "required": "on"},
        {"options": ["Red", "Green", "Blue"], "multiple": True},
    ),
    (
        "quiz",
        {**POLL, "correct_2": "on", "explanation": "Green is calm."},
        {
            "options": ["Red", "Green"],
            "correct": [1],
            "multiple": False,
            "explanation": "Green is calm.",
        },
    ),
    ("nps", {"title": "Recommend us?", "opens_at": "9:00"}, {}),
    ("rating", {"title": "Rate it", "opens_at": "9:30", "scale": "10"}, {"scale": 10}),
    (
        "question",
        {"title": "Ask us", "opens_at": "2:00", "prompt": "Anything", "placeholder": "Type"},
        {"prompt": "Anything", "placeholder": "Type"},
    ),
    (
        "offer",
        {
            "title": "Deal",
            "opens_at": "8:00",
            "closes_at": "9:59",
            "button": "Buy",
            "url": "https://shop.example.com",
            "countdown_seconds": "10:00",
        },
        {"text": "", "button": "Buy", "url": "https://shop.example.com", "countdown_seconds": 600},
    ),
    (
        "link",
        {
            "title": "Blog",
            "opens_at": "75",
            "button": "Read",
            "url": "https://example.com/b",
            "text": "More",
        },
        {"text": "More", "button": "Read", "url": "https://example.com/b"},
    ),
]


@pytest.mark.parametrize(("kind", "form", "config"), KIND_CASES, ids=[c[0] for c in KIND_CASES])
async def test_an_editor_adds_each_kind(
    client: httpx.AsyncClient,
    database: Settings,
    kind: str,
    form: dict[str, str],
    config: dict[str, Any],
) -> None:
    video = await video_with_thumbnails(database)
    webinar = await Webinar.create(slug="growth", title="Growth Basics", video=video)
    csrf = await sign_in(client)
    blank = await client.get(url(webinar, f"/new?kind={kind}"))
    assert blank.status_code == 200
    assert 'name="opens_at"' in blank.text
    done = await client.post(url(webinar, "/new"), data={**form, "kind": kind, "csrf_token": csrf})
    assert done.status_code == 303, done.text
    stored = await Interaction.get(webinar_id=webinar.id)
    assert done.headers["location"] == url(webinar, f"?done=saved#ix-{stored.id}")
    assert (stored.kind, stored.title, stored.config) == (kind, form["title"], config)
    assert stored.opens_at_seconds == interactions.parse_time(form["opens_at"])
    assert stored.required is (form.get("required") == "on")
    event = await AuditEvent.get(action="interaction.created")
    assert event.details == {"interaction": stored.id, "kind": kind, "title": form["title"]}
    listed = await client.get(done.headers["location"])
    assert "Saved. Sessions starting from now show it." in listed.text
    assert f'id="ix-{stored.id}"' in listed.text


async def test_a_download_is_uploaded_and_stored_under_a_fresh_key(
    client: httpx.AsyncClient, database: Settings
) -> None:
    webinar = await Webinar.create(slug="growth", title="Growth Basics")
    csrf = await sign_in(client)
    form = {
        "kind": "download",
        "title": "Slides",
        "opens_at": "3:00",
        "text": "For later",
        "csrf_token": csrf,
    }
    done = await client.post(
        url(webinar, "/new"),
        data=form,
        files={"file": ("Präsentation März.pdf", PDF, "application/pdf")},
    )
    assert done.status_code == 303, done.text
    stored = await Interaction.get(webinar_id=webinar.id)
    config = stored.config
    assert re.fullmatch(r"downloads/[\w-]{16}/Prasentation-Marz\.pdf", config["file_key"])
    assert config["file_name"] == "Präsentation März.pdf"
    assert (config["size"], config["content_type"]) == (len(PDF), "application/pdf")
    assert config["text"] == "For later"
    assert media(database).path(config["file_key"]).read_bytes() == PDF
    listed = await client.get(url(webinar))
    assert "Präsentation März.pdf (1.4 KB)" in html.unescape(listed.text)
    # The editor page shows the stored file; saving without choosing another keeps it.
    page = await client.get(url(webinar, f"/{stored.id}"))
    assert "Präsentation März.pdf" in html.unescape(page.text)
    kept = await client.post(
        url(webinar, f"/{stored.id}"),
        data={**form, "title": "The slides"},
        files={"file": ("", b"", "application/octet-stream")},
    )
    assert kept.status_code == 303
    await stored.refresh_from_db()
    assert (stored.title, stored.config["file_key"]) == ("The slides", config["file_key"])
    # A new file replaces the old one in storage.
    replaced = await client.post(
        url(webinar, f"/{stored.id}"), data=form, files={"file": ("v2.pdf", PDF + b"2", "x/y")}
    )
    assert replaced.status_code == 303
    await stored.refresh_from_db()
    assert stored.config["file_name"] == "v2.pdf"
    assert media(database).path(stored.config["file_key"]).read_bytes() == PDF + b"2"
    assert not media(database).exists(config["file_key"])


def stored_downloads(settings: Settings) -> list[str]:
    return media(settings).list_keys("downloads")


async def test_a_file_that_is_too_large_or_empty_is_refused(
    client: httpx.AsyncClient, database: Settings
) -> None:
    webinar = await Webinar.create(slug="growth", title="Growth Basics")
    csrf = await sign_in(client)
    form = {"kind": "download", "title": "Big", "opens_at": "3:00", "csrf_token": csrf}
    large = await client.post(
        url(webinar, "/new"),
        data=form,
        files={"file": ("big.bin", b"\0" * (downloads.MAX_DOWNLOAD_BYTES + 1), "x/y")},
    )
    assert large.status_code == 400
    assert "This file is larger than 25.0 MB, the most a download may be." in large.text
    assert 'value="Big"' in large.text
    empty = await client.post(url(webinar, "/new"), data=form, files={"file": ("e.txt", b"", "")})
    assert empty.status_code == 400
    assert "This file is empty." in empty.text
    none = await client.post(url(webinar, "/new"), data=form)
    assert none.status_code == 400
    assert "Choose the file attendees can download." in none.text
    # A file posted with a bad field elsewhere is not stored either.
    other = await client.post(
        url(webinar, "/new"), data={**form, "opens_at": "soon"}, files={"file": ("a.pdf", PDF)}
    )
    assert other.status_code == 400
    assert "Choose the file again" in other.text
    assert await Interaction.all().count() == 0
    assert stored_downloads(database) == []
    assert not list((database.var_dir / "tmp").iterdir())


async def test_a_forged_file_key_is_ignored(client: httpx.AsyncClient, database: Settings) -> None:
    webinar = await Webinar.create(slug="growth", title="Growth Basics")
    csrf = await sign_in(client)
    forged = {
        "kind": "download",
        "title": "Source",
        "opens_at": "1:00",
        "csrf_token": csrf,
        "file_key": "uploads/abc/source",
        "size": "10",
        "file_name": "a",
    }
    answer = await client.post(url(webinar, "/new"), data=forged)
    assert answer.status_code == 400
    assert await Interaction.all().count() == 0


# --- errors, previews, edits -------------------------------------------------------------------


async def test_bad_input_is_answered_beside_each_field_and_nothing_is_stored(
    client: httpx.AsyncClient, database: Settings
) -> None:
    video = await video_with_thumbnails(database)
    webinar = await Webinar.create(slug="growth", title="Growth Basics", video=video)
    csrf = await sign_in(client)
    typed = {
        "kind": "quiz",
        "title": "Capital <of> France",
        "opens_at": "12:30",
        "closes_at": "1:00",
        "option_1": "Paris",
        "option_2": "paris",
        "explanation": "Because",
        "csrf_token": csrf,
    }
    answer = await client.post(url(webinar, "/new"), data=typed)
    assert answer.status_code == 400
    text = html.unescape(answer.text)
    assert "Nothing was saved: 3 fields need a change (marked below)." in text
    assert '<p class="field-error" id="err-opens_at">The video is 10:00 long' in text
    assert "Each option must differ: “paris” is there twice." in text
    assert "Mark at least one option as correct." in text
    assert 'id="opens_at" name="opens_at"' in answer.text
    assert 'value="12:30"' in answer.text
    assert 'value="Capital &lt;of&gt; France"' in answer.text
    assert 'value="paris"' in answer.text
    assert ">Because</textarea>" in answer.text
    assert 'aria-invalid="true" aria-describedby="err-opens_at opens-help"' in answer.text
    assert await Interaction.all().count() == 0
    assert await AuditEvent.filter(action__startswith="interaction").count() == 0
    unknown = await client.post(url(webinar, "/new"), data={"kind": "hologram", "csrf_token": csrf})
    assert unknown.status_code == 400
    assert "Add an interaction" in unknown.text


async def test_a_preview_shows_the_card_and_stores_nothing(
    client: httpx.AsyncClient, database: Settings
) -> None:
    video = await video_with_thumbnails(database)
    webinar = await Webinar.create(slug="growth", title="Growth Basics", video=video)
    csrf = await sign_in(client)
    form = {
        **POLL,
        "kind": "quiz",
        "option_3": "<b>Blue</b>",
        "correct_3": "on",
        "explanation": "It is the sky.",
        "action": "preview",
        "csrf_token": csrf,
    }
    answer = await client.post(url(webinar, "/new"), data=form)
    assert answer.status_code == 200
    assert "This is a preview: nothing is saved yet." in answer.text
    card = answer.text[answer.text.index('class="ix-card ix-card-quiz"') :]
    assert "&lt;b&gt;Blue&lt;/b&gt;" in card
    assert "<b>Blue</b>" not in card
    assert "Correct: “&lt;b&gt;Blue&lt;/b&gt;”" in card
    assert "It is the sky." in card
    # The thumbnail at 1:30 is shown beside the time.
    assert 'data-ix-thumb viewBox="800 360 160 90"' in answer.text
    assert "On screen at 1:30" in answer.text
    assert await Interaction.all().count() == 0


async def test_an_interaction_is_edited_copied_and_deleted(
    client: httpx.AsyncClient, database: Settings
) -> None:
    webinar = await Webinar.create(slug="growth", title="Growth Basics")
    poll = await add(webinar, "poll", **POLL)
    registrant, _ = await registrant_of(webinar)
    assert registrant.session_id is not None
    await InteractionResponse.create(
        interaction=poll, session_id=registrant.session_id, registrant=registrant, answer=1
    )
    csrf = await sign_in(client)
    page = await client.get(url(webinar, f"/{poll.id}"))
    assert page.status_code == 200
    assert 'value="1:30"' in page.text
    assert 'value="Green"' in page.text
    assert "1 answer so far." in page.text
    # The kind posted is ignored: a poll stays a poll.
    changed = {
        **POLL,
        "kind": "nps",
        "title": "Which colour now?",
        "opens_at": "2:00",
        "option_3": "Blue",
        "csrf_token": csrf,
    }
    done = await client.post(url(webinar, f"/{poll.id}"), data=changed)
    assert done.status_code == 303
    await poll.refresh_from_db()
    assert (poll.kind, poll.title, poll.opens_at_seconds) == ("poll", "Which colour now?", 120.0)
    assert poll.config["options"] == ["Red", "Green", "Blue"]

    copied = await client.post(url(webinar, f"/{poll.id}/duplicate"), data={"csrf_token": csrf})
    assert copied.status_code == 303
    copy = await Interaction.filter(webinar_id=webinar.id).exclude(id=poll.id).get()
    assert copy.title == "Which colour now? (copy)"
    assert copied.headers["location"] == url(webinar, f"?done=duplicated#ix-{copy.id}")

    listed = await client.get(url(webinar))
    assert "Its 1 answer is deleted too." in html.unescape(listed.text)
    gone = await client.post(url(webinar, f"/{poll.id}/delete"), data={"csrf_token": csrf})
    assert gone.status_code == 303
    assert gone.headers["location"] == url(webinar, "?done=deleted")
    assert await Interaction.filter(id=poll.id).count() == 0
    assert await InteractionResponse.all().count() == 0
    again = await client.post(url(webinar, f"/{poll.id}/delete"), data={"csrf_token": csrf})
    assert again.status_code == 404
    assert (await client.get(url(webinar, f"/{poll.id}"))).status_code == 404
    actions = [event.action for event in await AuditEvent.filter(action__startswith="interaction")]
    assert sorted(actions) == [
        "interaction.created",
        "interaction.deleted",
        "interaction.duplicated",
        "interaction.updated",
    ]


async def test_another_webinars_interaction_is_not_reachable(
    client: httpx.AsyncClient, database: Settings
) -> None:
    webinar = await Webinar.create(slug="growth", title="Growth Basics")
    other = await Webinar.create(slug="other", title="Other")
    theirs = await add(other, "poll", **POLL)
    csrf = await sign_in(client)
    assert (await client.get(url(webinar, f"/{theirs.id}"))).status_code == 404
    posted = await client.post(url(webinar, f"/{theirs.id}"), data={**POLL, "csrf_token": csrf})
    assert posted.status_code == 404
    deleted = await client.post(url(webinar, f"/{theirs.id}/delete"), data={"csrf_token": csrf})
    assert deleted.status_code == 404
    assert await Interaction.filter(id=theirs.id).count() == 1


# --- roles -------------------------------------------------------------------------------------


@pytest.mark.parametrize("role", [Role.MODERATOR, Role.ANALYST])
async def test_roles_that_may_not_edit_webinars_can_look_only(
    client: httpx.AsyncClient, database: Settings, role: Role
) -> None:
    webinar = await Webinar.create(slug="growth", title="Growth Basics")
    poll = await add(webinar, "poll", **POLL)
    csrf = await sign_in(client, role)
    listed = await client.get(url(webinar))
    assert listed.status_code == 200
    assert "Which colour?" in listed.text
    assert ">View<" in listed.text
    assert "/delete" not in listed.text
    assert "Add an interaction" not in listed.text
    page = await client.get(url(webinar, f"/{poll.id}"))
    assert page.status_code == 200
    assert '<fieldset class="ix-all" disabled>' in page.text
    assert 'value="save"' not in page.text
    for target in (
        url(webinar, "/new"),
        url(webinar, f"/{poll.id}"),
        url(webinar, f"/{poll.id}/delete"),
        url(webinar, f"/{poll.id}/duplicate"),
    ):
        refused = await client.post(target, data={**POLL, "kind": "poll", "csrf_token": csrf})
        assert refused.status_code == 403, target
    assert (await client.get(url(webinar, "/new?kind=poll"))).status_code == 403
    await poll.refresh_from_db()
    assert poll.title == "Which colour?"
    assert await Interaction.all().count() == 1


# --- downloads for attendees -------------------------------------------------------------------


async def stored_download(settings: Settings, webinar: Webinar, data: bytes = PDF) -> Interaction:
    fields = downloads.file_fields("Slides März.pdf", len(data))
    source = settings.var_dir / "upload.pdf"
    source.parent.mkdir(parents=True, exist_ok=True)
    source.write_bytes(data)
    await downloads.store_file(
        media(settings), fields["file_key"], source, content_type=fields["content_type"]
    )
    return await add(webinar, "download", title="Slides", opens_at="1:00", **fields)


async def test_a_registrant_downloads_the_file_and_it_is_counted(
    client: httpx.AsyncClient, database: Settings
) -> None:
    webinar = await Webinar.create(slug="growth", title="Growth Basics")
    download = await stored_download(database, webinar)
    registrant, token = await registrant_of(webinar)
    path = interactions.download_path(token, download.id)
    answer = await client.get(path)
    assert answer.status_code == 200
    assert answer.content == PDF
    assert answer.headers["content-type"] == "application/pdf"
    assert answer.headers["content-disposition"] == (
        "attachment; filename*=utf-8''Slides%20M%C3%A4rz.pdf"
    )
    assert answer.headers["cache-control"] == "no-store"
    assert answer.headers["referrer-policy"] == "no-referrer"
    assert answer.headers["x-robots-tag"] == "noindex"
    (event,) = await AnalyticsEvent.filter(kind="download")
    assert (event.webinar_id, event.session_id, event.registrant_id, event.contact_id) == (
        webinar.id,
        registrant.session_id,
        registrant.id,
        registrant.contact_id,
    )
    assert event.data == {"interaction_id": download.id}
    assert event.at is not None
    # A HEAD request sends no file and counts nothing.
    assert (await client.head(path)).status_code == 200
    assert await AnalyticsEvent.filter(kind="download").count() == 1


async def test_downloads_the_token_does_not_reach_are_not_found(
    client: httpx.AsyncClient, database: Settings
) -> None:
    webinar = await Webinar.create(slug="growth", title="Growth Basics", language="de")
    other = await Webinar.create(slug="other", title="Other")
    mine = await stored_download(database, webinar)
    theirs = await stored_download(database, other)
    poll = await add(webinar, "poll", **POLL)
    registrant, token = await registrant_of(webinar)
    # Pushed into another session of the same webinar (not this registrant's).
    elsewhere = await WebinarSession.create(
        webinar=webinar, starts_at=datetime.now(UTC) + timedelta(days=9)
    )
    pushed = await Interaction.create(
        webinar=webinar,
        session=elsewhere,
        kind="download",
        title="x",
        opens_at_seconds=1.0,
        config=dict(mine.config),
    )
    for path in (
        interactions.download_path("not-a-token", mine.id),
        interactions.download_path("x" * 300, mine.id),
        interactions.download_path(token, theirs.id),
        interactions.download_path(token, poll.id),
        interactions.download_path(token, pushed.id),
        interactions.download_path(token, 99_999),
    ):
        answer = await client.get(path)
        assert answer.status_code == 404, path
        assert answer.headers["cache-control"] == "no-store"
    assert "Seite" in (await client.get(interactions.download_path(token, theirs.id))).text
    # The file gone from storage: not found either, and nothing counted.
    media(database).delete(mine.config["file_key"])
    assert (await client.get(interactions.download_path(token, mine.id))).status_code == 404
    assert await AnalyticsEvent.filter(kind="download").count() == 0
    assert await AnalyticsEvent.filter(registrant_id=registrant.id).count() == 0


async def test_a_banned_attendee_gets_no_files(
    client: httpx.AsyncClient, database: Settings
) -> None:
    webinar = await Webinar.create(slug="growth", title="Growth Basics")
    download = await stored_download(database, webinar)
    registrant, token = await registrant_of(webinar)
    path = interactions.download_path(token, download.id)
    assert (await client.get(path)).status_code == 200
    await RoomRestriction.create(
        session_id=registrant.session_id, registrant_id=registrant.id, kind="ban"
    )
    assert (await client.get(path)).status_code == 404
    assert await AnalyticsEvent.filter(kind="download").count() == 1


# --- S3 ----------------------------------------------------------------------------------------


@pytest.fixture
async def s3_client(
    database: Settings, s3_endpoint: str, s3: S3Client
) -> AsyncIterator[tuple[httpx.AsyncClient, str, S3Client]]:
    """The app with MEDIA_BACKEND=s3 on a fresh bucket, and an HTTP client to it."""
    from app.main import create_app

    bucket = moto.new_bucket(s3)
    env = moto.settings_env(s3_endpoint, bucket)
    value = load_settings(**{**database.model_dump(), **{k.lower(): v for k, v in env.items()}})
    use_settings(value)
    app = create_app(value, manage_db=False)
    async with (
        LifespanManager(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app),
            base_url="http://testserver",
            headers={"accept": "text/html"},
        ) as http,
    ):
        yield http, bucket, s3


async def test_on_s3_the_file_is_stored_in_the_bucket_and_fetched_presigned(
    s3_client: tuple[httpx.AsyncClient, str, S3Client],
) -> None:
    client, bucket, s3 = s3_client
    webinar = await Webinar.create(slug="growth", title="Growth Basics")
    csrf = await sign_in(client)
    form = {"kind": "download", "title": "Slides", "opens_at": "1:00", "csrf_token": csrf}
    done = await client.post(
        url(webinar, "/new"), data=form, files={"file": ("deck.pdf", PDF, "application/pdf")}
    )
    assert done.status_code == 303, done.text
    stored = await Interaction.get(webinar_id=webinar.id)
    key = stored.config["file_key"]
    head = s3.head_object(Bucket=bucket, Key=key)
    assert (head["ContentLength"], head["ContentType"]) == (len(PDF), "application/pdf")

    _, token = await registrant_of(webinar)
    answer = await client.get(interactions.download_path(token, stored.id))
    assert answer.status_code == 302
    assert answer.headers["cache-control"] == "no-store"
    target = answer.headers["location"]
    assert "X-Amz-Expires=120" in target
    assert key in target
    async with httpx.AsyncClient(timeout=30) as direct:
        fetched = await direct.get(target)
    assert fetched.status_code == 200
    assert fetched.content == PDF
    assert await AnalyticsEvent.filter(kind="download").count() == 1

    gone = await client.post(url(webinar, f"/{stored.id}/delete"), data={"csrf_token": csrf})
    assert gone.status_code == 303
    assert s3.list_objects_v2(Bucket=bucket).get("Contents", []) == []
