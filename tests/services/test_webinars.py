"""The webinar editor's service: slugs, validation of the whole form, images, publishing, copies."""

from __future__ import annotations

import io
from datetime import UTC, datetime
from pathlib import Path

import pytest
from PIL import Image

from app.models import (
    AuditEvent,
    Contact,
    Interaction,
    Presenter,
    Registrant,
    Role,
    Schedule,
    StaffUser,
    Video,
    VideoState,
    Webinar,
    WebinarSession,
    WebinarStatus,
)
from app.services import content, webinars
from app.services.images import ImageUpload
from app.settings import Settings
from media.storage import LocalStorage
from tests.conftest import make_user

SCHEDULE_RULES = {"repeat": "daily", "times": ["10:00"], "upcoming_count": 3}


@pytest.fixture
def storage(tmp_path: Path) -> LocalStorage:
    return LocalStorage(root=tmp_path / "media")


async def editor() -> StaffUser:
    return await make_user(Role.EDITOR, email="editor@example.com")


def submitted(draft: webinars.Draft, **changes: str) -> dict[str, str | list[str]]:
    """The form a browser submits for a draft (checkboxes only when ticked), with changes."""
    form: dict[str, str | list[str]] = {
        name: value
        for name, value in draft.values.items()
        if name not in webinars.CHECKBOXES and not name.endswith("_key")
    }
    for name in webinars.CHECKBOXES:
        if draft.values.get(name) == "1":
            form[name] = "1"
    for group, rows in draft.rows.items():
        for row in rows:
            for name in webinars.ROW_NAMES[group]:
                if row.get(name):
                    form[f"{group}-{row['i']}-{name}"] = row[name]
    form.update(changes)
    return form


def photo(width: int = 600, height: int = 400, *, gps: bool = True) -> ImageUpload:
    image = Image.new("RGB", (width, height), "teal")
    exif = Image.Exif()
    exif[0x010F] = "PhoneMaker"
    if gps:
        exif.get_ifd(0x8825).update({1: "N", 2: (52.0, 31.0, 12.0)})
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", exif=exif)
    data = buffer.getvalue()
    return ImageUpload("photo.jpg", data, len(data))


async def fresh(webinar: Webinar) -> Webinar:
    return await Webinar.get(id=webinar.id)


def stored_images(storage: LocalStorage) -> list[str]:
    folder = storage.root / "images"
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


# --- slugs ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("title", "slug"),
    [
        ("Onboarding 101: Get Started!", "onboarding-101-get-started"),
        ("Straße über Köln — Æsir", "strasse-uber-koln-aesir"),
        ("  --Hello   World--  ", "hello-world"),
        ("日本語のウェビナー", ""),
        ("a" * 120, "a" * 80),
        ("word " * 30, "-".join(["word"] * 16)),
    ],
)
def test_slugify(title: str, slug: str) -> None:
    assert webinars.slugify(title) == slug
    assert len(webinars.slugify(title)) <= webinars.MAX_SLUG


@pytest.mark.parametrize(
    ("slug", "problem"),
    [
        ("good-slug-2", None),
        ("", "Enter the address"),
        ("Upper", "lowercase"),
        ("two--hyphens", "single hyphens"),
        ("-edge", "single hyphens"),
        ("theme.css", "lowercase"),
        ("embed", "reserved"),
        ("new", "reserved"),
        ("x" * 81, "at most 80"),
    ],
)
def test_slug_rules(slug: str, problem: str | None) -> None:
    found = webinars.slug_problem(slug)
    if problem is None:
        assert found is None
    else:
        assert found is not None
        assert problem in found


async def test_create_makes_unique_ascii_slugs(database: Settings) -> None:
    user = await editor()
    first = await webinars.create_webinar(title="Product Tour", actor=user)
    second = await webinars.create_webinar(title="Product tour!", actor=user)
    third = await webinars.create_webinar(title="PRODUCT TOUR", actor=user)
    assert [first.slug, second.slug, third.slug] == [
        "product-tour",
        "product-tour-2",
        "product-tour-3",
    ]
    assert first.status == WebinarStatus.DRAFT
    untitled = await webinars.create_webinar(title="Ünïcode only ☃", actor=user)
    assert untitled.slug == "unicode-only"
    symbols = await webinars.create_webinar(title="☃☃☃", actor=user)
    assert symbols.slug == "webinar"
    reserved = await webinars.create_webinar(title="Embed", actor=user)
    assert reserved.slug == "embed-2"
    long = await webinars.create_webinar(title="y" * 200, actor=user)
    again = await webinars.create_webinar(title="y" * 200, actor=user)
    assert long.slug == "y" * 80
    assert again.slug == "y" * 78 + "-2"


@pytest.mark.parametrize(
    ("title", "message"), [("   ", "Enter a title"), ("t" * 201, "at most 200")]
)
async def test_create_refuses_bad_titles(database: Settings, title: str, message: str) -> None:
    with pytest.raises(webinars.WebinarInputError) as caught:
        await webinars.create_webinar(title=title, actor=await editor())
    assert message in caught.value.errors.errors["title"]
    assert await Webinar.all().count() == 0


# --- the whole form --------------------------------------------------------------------------


async def test_a_full_form_is_saved_and_read_back(
    database: Settings, storage: LocalStorage
) -> None:
    user = await editor()
    video = await Video.create(title="Talk", source_key="uploads/a/x.mp4", state=VideoState.READY)
    webinar = await webinars.create_webinar(title="Start", actor=user)
    form = submitted(
        await webinars.editor_draft(webinar),
        title="Customer onboarding",
        slug="onboarding",
        description="First paragraph.\n\nSecond.",
        language="de",
        video=str(video.id),
        template="split",
        primary="#0F766E",
        background="fff",
        text="#111827",
        font="serif",
        headline="Get going",
        subheadline="In 30 minutes",
        agenda="One\n\n  Two  \nThree",
        show_presenters="1",
        button_label="Save my seat",
        thank_you_headline="See you there",
        thank_you_message="Check your inbox.",
        allowed_domains="Example.com\n@sub.example.org\nbücher.de",
        blocked_domains="",
        block_disposable="1",
        **{
            "faq-0-question": "Is it live?",
            "faq-0-answer": "The chat is.",
            "faq-1-question": "Recorded?",
            "faq-1-answer": "Yes.",
            "faq-1-order": "1",
            "faq-0-order": "2",
            "testimonials-0-quote": "Great!",
            "testimonials-0-author": "Ann",
            "fields-0-label": "Company name",
            "fields-0-type": "text",
            "fields-0-required": "1",
            "fields-1-label": "Team size",
            "fields-1-type": "select",
            "fields-1-options": "1-10\n11-50\n1-10\n",
            "fields-2-label": "Mobile",
            "fields-2-type": "phone",
            "fields-2-region": "de",
            "fields-3-label": "I agree to the terms",
            "fields-3-type": "consent",
            "fields-4-label": "",  # an unused empty row
            "presenters-0-name": "Alex",
            "presenters-0-title": "CEO",
            "presenters-0-bio": "Hi.",
        },
    )
    errors = await webinars.update_webinar(
        webinar, form, {"presenters-0-photo": photo()}, actor=user, storage=storage
    )
    assert errors.errors == {}
    saved = await fresh(webinar)
    assert saved.title == "Customer onboarding"
    assert saved.slug == "onboarding"
    assert saved.language == "de"
    assert saved.video_id == video.id
    theme = content.theme_from(saved.theme)
    assert (theme.template, theme.primary, theme.background, theme.font) == (
        "split",
        "#0f766e",
        "#ffffff",
        "serif",
    )
    landing = content.landing_from(saved.landing)
    assert landing.agenda == ("One", "Two", "Three")
    assert [item.question for item in landing.faq] == ["Recorded?", "Is it live?"]
    assert landing.testimonials == (content.Testimonial("Great!", "Ann"),)
    assert landing.button_label == "Save my seat"
    fields = content.fields_from(saved.registration_fields)
    assert [(f.key, f.type.value, f.required) for f in fields] == [
        ("company_name", "text", True),
        ("team_size", "select", False),
        ("mobile", "phone", False),
        ("i_agree_to_the_terms", "consent", True),
    ]
    assert fields[1].options == ("1-10", "11-50")
    assert fields[2].default_region == "DE"
    rules = content.rules_from(saved.registration_rules)
    assert rules.allowed_domains == ("example.com", "sub.example.org", "xn--bcher-kva.de")
    assert rules.block_disposable
    presenters = await webinars.presenters_of(saved)
    assert [(p.name, p.title, p.position) for p in presenters] == [("Alex", "CEO", 0)]
    assert presenters[0].photo_key
    assert presenters[0].photo_key.startswith("images/")
    stored = storage.path(presenters[0].photo_key).read_bytes()
    assert b"PhoneMaker" not in stored
    with Image.open(io.BytesIO(stored)) as image:
        assert image.size == (400, 267)
        assert len(image.getexif()) == 0

    # Read back into the editor and saved again unchanged: keys stay, nothing moves.
    again = submitted(await webinars.editor_draft(saved), **{"fields-0-label": "Company"})
    assert (await webinars.update_webinar(saved, again, {}, actor=user, storage=storage)) == (
        content.FormErrors()
    )
    fields = content.fields_from((await fresh(saved)).registration_fields)
    assert [f.key for f in fields] == [
        "company_name",
        "team_size",
        "mobile",
        "i_agree_to_the_terms",
    ]
    assert fields[0].label == "Company"


CASES: list[tuple[dict[str, str], str, str]] = [
    ({"title": ""}, "title", "Enter a title"),
    ({"title": "x" * 201}, "title", "at most 200"),
    ({"slug": "Bad Slug"}, "slug", "lowercase"),
    ({"slug": "admin"}, "slug", "reserved"),
    ({"description": "d" * 5001}, "description", "at most 5000"),
    ({"language": "fr"}, "language", "Choose a language"),
    ({"video": "999"}, "video", "ready"),
    ({"template": "fancy"}, "template", "templates"),
    ({"primary": "red"}, "primary", "six hexadecimal digits"),
    ({"background": "#12345"}, "background", "six hexadecimal digits"),
    ({"font": "comic"}, "font", "font"),
    ({"headline": "h" * 201}, "headline", "at most 200"),
    ({"agenda": "\n".join(str(n) for n in range(21))}, "agenda", "at most 20 agenda"),
    ({"agenda": "a" * 201}, "agenda", "under 200"),
    ({"button_label": "b" * 61}, "button_label", "at most 60"),
    ({"thank_you_message": "m" * 2001}, "thank_you_message", "at most 2000"),
    ({"faq-0-answer": "An answer without a question"}, "faq-0-question", "Enter the question"),
    ({"faq-0-question": "A question?"}, "faq-0-answer", "Enter the answer"),
    ({"testimonials-3-author": "Nobody"}, "testimonials-3-quote", "Enter the quote"),
    ({"fields-0-help": "Help without a label"}, "fields-0-label", "Enter a label"),
    ({"fields-0-label": "Pick", "fields-0-type": "select"}, "fields-0-options", "one option"),
    ({"fields-0-label": "Pick", "fields-0-type": "radio"}, "fields-0-type", "field type"),
    ({"fields-0-label": "Email"}, "fields-0-label", "always asks"),
    (
        {"fields-0-label": "Tel", "fields-0-type": "phone", "fields-0-region": "XX"},
        "fields-0-region",
        "two-letter",
    ),
    ({"presenters-0-bio": "A bio without a name"}, "presenters-0-name", "name"),
    ({"allowed_domains": "example.com\nnot a domain"}, "allowed_domains", "“not a domain”"),
    ({"blocked_domains": "localhost"}, "blocked_domains", "not a domain name"),
    ({"allowed_domains": "a.com", "blocked_domains": "A.com"}, "blocked_domains", "both allowed"),
]


@pytest.mark.parametrize(("changes", "field", "message"), CASES, ids=[c[1] for c in CASES])
async def test_bad_input_names_its_field_and_saves_nothing(
    database: Settings,
    storage: LocalStorage,
    changes: dict[str, str],
    field: str,
    message: str,
) -> None:
    user = await editor()
    webinar = await webinars.create_webinar(title="Stays as it is", actor=user)
    before = await Webinar.filter(id=webinar.id).values()
    # A valid change and an image come along: neither may be kept.
    form = submitted(await webinars.editor_draft(webinar), subheadline="Changed", **changes)
    errors = await webinars.update_webinar(
        webinar, form, {"logo": photo()}, actor=user, storage=storage
    )
    assert field in errors.errors, errors.errors
    assert message in errors.errors[field]
    assert await Webinar.filter(id=webinar.id).values() == before
    assert await Presenter.all().count() == 0
    assert stored_images(storage) == []


async def test_too_many_fields(database: Settings, storage: LocalStorage) -> None:
    user = await editor()
    webinar = await webinars.create_webinar(title="Many", actor=user)
    rows = {f"fields-{n}-label": f"Question {n}" for n in range(content.MAX_FIELDS + 1)}
    form = submitted(await webinars.editor_draft(webinar), **rows)
    errors = await webinars.update_webinar(webinar, form, {}, actor=user, storage=storage)
    assert "at most 20 fields" in errors.errors["fields"]
    assert (await fresh(webinar)).registration_fields == []


async def test_a_bad_image_names_its_input(database: Settings, storage: LocalStorage) -> None:
    user = await editor()
    webinar = await webinars.create_webinar(title="Images", actor=user)
    form = submitted(await webinars.editor_draft(webinar), **{"presenters-0-name": "Bo"})
    svg = b"<svg xmlns='http://www.w3.org/2000/svg'/>"
    errors = await webinars.update_webinar(
        webinar,
        form,
        {"cover": ImageUpload("c.svg", svg, len(svg)), "presenters-0-photo": photo()},
        actor=user,
        storage=storage,
    )
    assert list(errors.errors) == ["cover"]
    assert "SVG is not accepted" in errors.errors["cover"]
    assert stored_images(storage) == []
    assert await Presenter.all().count() == 0


async def test_field_keys_are_stable_and_unique(database: Settings, storage: LocalStorage) -> None:
    user = await editor()
    webinar = await webinars.create_webinar(title="Keys", actor=user)
    draft = await webinars.editor_draft(webinar)
    form = submitted(
        draft,
        **{
            "fields-0-label": "Company",
            "fields-1-label": "Company",
            "fields-2-label": "Session",  # reserved key
            "fields-3-label": "2024 goals",  # must start with a letter
        },
    )
    assert not await webinars.update_webinar(webinar, form, {}, actor=user, storage=storage)
    keys = [f.key for f in content.fields_from((await fresh(webinar)).registration_fields)]
    assert keys == ["company", "company_2", "session_2", "field_2024_goals"]

    # Relabelled, reordered and one removed: keys stay with their fields; a new field never
    # takes a key that was in use, and a forged key is not trusted.
    draft = await webinars.editor_draft(await fresh(webinar))
    form = submitted(
        draft,
        **{
            "fields-0-label": "Your company",
            "fields-0-order": "5",
            "fields-1-delete": "1",
            "fields-4-label": "Company",
            "fields-4-key": "evil_key",
        },
    )
    assert not await webinars.update_webinar(
        await fresh(webinar), form, {}, actor=user, storage=storage
    )
    fields = content.fields_from((await fresh(webinar)).registration_fields)
    assert [(f.key, f.label) for f in fields] == [
        ("session_2", "Session"),
        ("field_2024_goals", "2024 goals"),
        ("company", "Your company"),
        ("company_3", "Company"),
    ]


async def test_slug_is_fixed_once_published(database: Settings, storage: LocalStorage) -> None:
    user = await editor()
    taken = await webinars.create_webinar(title="Taken", actor=user)
    webinar = await webinars.create_webinar(title="Mine", actor=user)
    form = submitted(await webinars.editor_draft(webinar), slug=taken.slug)
    errors = await webinars.update_webinar(webinar, form, {}, actor=user, storage=storage)
    assert "Another webinar uses this address" in errors.errors["slug"]

    form = submitted(await webinars.editor_draft(webinar), slug="my-webinar")
    assert not await webinars.update_webinar(webinar, form, {}, actor=user, storage=storage)
    assert (await fresh(webinar)).slug == "my-webinar"
    assert await AuditEvent.filter(action="webinar.address_changed").count() == 1

    await Schedule.create(webinar=webinar, timezone="Europe/Berlin", rules=SCHEDULE_RULES)
    await webinars.publish(await fresh(webinar), actor=user)
    await webinars.unpublish(await fresh(webinar), actor=user)
    draft = await webinars.editor_draft(await fresh(webinar))
    form = submitted(draft, slug="another-address", title="Renamed")
    assert not await webinars.update_webinar(
        await fresh(webinar), form, {}, actor=user, storage=storage
    )
    saved = await fresh(webinar)
    assert saved.title == "Renamed"
    assert saved.slug == "my-webinar"


async def test_images_are_replaced_removed_and_deleted(
    database: Settings, storage: LocalStorage
) -> None:
    user = await editor()
    webinar = await webinars.create_webinar(title="Pictures", actor=user)
    form = submitted(await webinars.editor_draft(webinar), **{"presenters-0-name": "Pat"})
    files = {"logo": photo(), "cover": photo(2000, 1000), "presenters-0-photo": photo()}
    assert not await webinars.update_webinar(webinar, form, files, actor=user, storage=storage)
    theme = content.theme_from((await fresh(webinar)).theme)
    (presenter,) = await webinars.presenters_of(webinar)
    assert presenter.photo_key
    first = {theme.logo_key, theme.cover_key, presenter.photo_key}
    assert len(stored_images(storage)) == 3
    with Image.open(storage.path(theme.cover_key)) as cover:
        assert cover.size == (1600, 800)

    # A new logo replaces the old file; the cover is removed; the photo is removed.
    draft = await webinars.editor_draft(await fresh(webinar))
    form = submitted(
        draft,
        remove_cover="1",
        **{f"presenters-{draft.rows['presenters'][0]['i']}-remove_photo": "1"},
    )
    assert not await webinars.update_webinar(
        await fresh(webinar), form, {"logo": photo()}, actor=user, storage=storage
    )
    theme = content.theme_from((await fresh(webinar)).theme)
    assert theme.cover_key == ""
    assert theme.logo_key not in first
    assert (await Presenter.get(id=presenter.id)).photo_key is None
    assert [storage.exists(key) for key in first] == [False, False, False]
    assert stored_images(storage) == [theme.logo_key.removeprefix("images/")]


async def test_presenters_are_added_reordered_and_removed(
    database: Settings, storage: LocalStorage
) -> None:
    user = await editor()
    webinar = await webinars.create_webinar(title="People", actor=user)
    ada = await webinars.add_presenter(
        webinar, name="Ada", title="", bio="", photo_key="", position=0
    )
    bob = await webinars.add_presenter(
        webinar, name="Bob", title="", bio="", photo_key="", position=1
    )
    cy = await webinars.add_presenter(
        webinar, name="Cy", title="", bio="", photo_key="", position=2
    )
    await webinars.reorder_presenters(webinar, [cy.id, ada.id])
    assert [p.name for p in await webinars.presenters_of(webinar)] == ["Cy", "Ada", "Bob"]

    draft = await webinars.editor_draft(webinar)
    rows = {row["name"]: row["i"] for row in draft.rows["presenters"]}
    form = submitted(
        draft,
        **{
            f"presenters-{rows['Cy']}-delete": "1",
            f"presenters-{rows['Bob']}-order": "1",
            f"presenters-{rows['Bob']}-title": "CTO",
            "presenters-7-name": "Dee",
        },
    )
    assert not await webinars.update_webinar(webinar, form, {}, actor=user, storage=storage)
    shown = await webinars.presenters_of(webinar)
    assert [(p.name, p.title, p.position) for p in shown] == [
        ("Bob", "CTO", 0),
        ("Ada", "", 1),
        ("Dee", "", 2),
    ]
    assert bob.id == shown[0].id
    # Another webinar's presenter id in the form is never touched: it becomes a new row.
    other = await webinars.create_webinar(title="Other", actor=user)
    stranger = await webinars.add_presenter(
        other, name="Eve", title="", bio="", photo_key="", position=0
    )
    draft = await webinars.editor_draft(webinar)
    form = submitted(draft, **{"presenters-9-id": str(stranger.id), "presenters-9-name": "Mallory"})
    assert not await webinars.update_webinar(webinar, form, {}, actor=user, storage=storage)
    assert (await Presenter.get(id=stranger.id)).name == "Eve"
    assert [p.name for p in await webinars.presenters_of(webinar)][-1] == "Mallory"


# --- publishing --------------------------------------------------------------------------------


async def test_publishing_needs_a_schedule_and_warns_about_the_video(database: Settings) -> None:
    user = await editor()
    webinar = await webinars.create_webinar(title="Launch", actor=user)
    with pytest.raises(webinars.WebinarError, match="Set up a schedule first"):
        await webinars.publish(webinar, actor=user)
    # An invalid schedule counts as none.
    schedule = await Schedule.create(webinar=webinar, timezone="Mars/Olympus", rules=SCHEDULE_RULES)
    with pytest.raises(webinars.WebinarError, match="Set up a schedule first"):
        await webinars.publish(webinar, actor=user)
    assert (await fresh(webinar)).status == WebinarStatus.DRAFT

    schedule.timezone = "Europe/Berlin"
    await schedule.save()
    warning = await webinars.publish(webinar, actor=user, ip="192.0.2.1")
    assert warning is not None
    assert "No recording" in warning
    saved = await fresh(webinar)
    assert saved.status == WebinarStatus.PUBLISHED
    assert saved.published_at is not None
    first_published = saved.published_at

    video = await Video.create(
        title="Rec", source_key="uploads/r/x.mp4", state=VideoState.TRANSCODING
    )
    saved.video_id = video.id
    await saved.save()
    warning = await webinars.publish(saved, actor=user)
    assert warning is not None
    assert "not ready yet" in warning
    video.playable = True
    await video.save()
    assert await webinars.publish(saved, actor=user) is None
    assert (await fresh(saved)).published_at == first_published

    await webinars.unpublish(saved, actor=user)
    assert (await fresh(saved)).status == WebinarStatus.DRAFT
    await webinars.archive(saved, actor=user)
    assert (await fresh(saved)).status == WebinarStatus.ARCHIVED
    actions = await AuditEvent.filter(target=f"webinar:{webinar.id}").order_by("id")
    assert [a.action for a in actions] == [
        "webinar.created",
        "webinar.published",
        "webinar.published",
        "webinar.published",
        "webinar.unpublished",
        "webinar.archived",
    ]
    assert actions[1].ip == "192.0.2.1"
    assert actions[1].actor_email == user.email


async def test_a_blank_title_cannot_be_published(database: Settings) -> None:
    user = await editor()
    webinar = await webinars.create_webinar(title="Soon blank", actor=user)
    await Schedule.create(webinar=webinar, timezone="UTC", rules=SCHEDULE_RULES)
    await Webinar.filter(id=webinar.id).update(title=" ")
    with pytest.raises(webinars.WebinarError, match="title"):
        await webinars.publish(await fresh(webinar), actor=user)


# --- duplicating ---------------------------------------------------------------------------------


async def test_duplicate_copies_everything_but_people_and_sessions(
    database: Settings, storage: LocalStorage
) -> None:
    user = await editor()
    video = await Video.create(title="Rec", source_key="uploads/r/x.mp4", state=VideoState.READY)
    webinar = await webinars.create_webinar(title="Original", actor=user)
    form = submitted(
        await webinars.editor_draft(webinar),
        video=str(video.id),
        primary="#123456",
        headline="Hello",
        allowed_domains="example.com",
        **{
            "fields-0-label": "Company",
            "faq-0-question": "Q?",
            "faq-0-answer": "A.",
            "presenters-0-name": "Ada",
        },
    )
    assert not await webinars.update_webinar(
        webinar, form, {"presenters-0-photo": photo(), "logo": photo()}, actor=user, storage=storage
    )
    webinar = await fresh(webinar)
    await Schedule.create(
        webinar=webinar,
        kind="recurring",
        timezone="Europe/Berlin",
        attendee_local=True,
        rules=SCHEDULE_RULES,
        blackout_dates=["2030-12-25"],
        orphan_policy="notify",
    )
    await Interaction.create(
        webinar=webinar,
        kind="poll",
        title="How?",
        config={"options": ["a", "b"]},
        opens_at_seconds=30,
        closes_at_seconds=90,
        required=True,
    )
    await webinars.publish(webinar, actor=user)
    session = await WebinarSession.create(
        webinar=webinar, starts_at=datetime(2030, 1, 1, tzinfo=UTC)
    )
    contact = await Contact.create(email="someone@example.com", name="Someone")
    await Registrant.create(
        contact=contact, webinar=webinar, session=session, join_token_hash="t" * 64
    )

    copy = await webinars.duplicate(await fresh(webinar), actor=user, ip="192.0.2.9")
    original = await fresh(webinar)
    assert copy.title == "Copy of Original"
    assert copy.slug == "copy-of-original"
    assert copy.status == WebinarStatus.DRAFT
    assert copy.published_at is None
    for name in (
        "description",
        "language",
        "theme",
        "landing",
        "registration_fields",
        "registration_rules",
        "chat_mode",
        "video_id",
    ):
        assert getattr(copy, name) == getattr(original, name), name
    old = [(p.name, p.photo_key, p.position) for p in await webinars.presenters_of(original)]
    new = [(p.name, p.photo_key, p.position) for p in await webinars.presenters_of(copy)]
    assert new == old
    old_schedule = await Schedule.get(webinar_id=original.id)
    new_schedule = await Schedule.get(webinar_id=copy.id)
    for name in ("kind", "timezone", "attendee_local", "rules", "blackout_dates", "orphan_policy"):
        assert getattr(new_schedule, name) == getattr(old_schedule, name), name
    (interaction,) = await Interaction.filter(webinar_id=copy.id)
    assert (interaction.kind, interaction.title, interaction.config) == (
        "poll",
        "How?",
        {"options": ["a", "b"]},
    )
    assert (interaction.opens_at_seconds, interaction.closes_at_seconds, interaction.required) == (
        30,
        90,
        True,
    )
    assert await WebinarSession.filter(webinar_id=copy.id).count() == 0
    assert await Registrant.filter(webinar_id=copy.id).count() == 0
    assert await Registrant.filter(webinar_id=original.id).count() == 1
    event = await AuditEvent.get(action="webinar.duplicated")
    assert event.details == {"from": original.id, "slug": copy.slug}
    again = await webinars.duplicate(original, actor=user)
    assert again.slug == "copy-of-original-2"

    # Shared images stay while either webinar shows them.
    draft = await webinars.editor_draft(copy)
    row = draft.rows["presenters"][0]["i"]
    form = submitted(draft, remove_logo="1", **{f"presenters-{row}-remove_photo": "1"})
    assert not await webinars.update_webinar(copy, form, {}, actor=user, storage=storage)
    theme = content.theme_from(original.theme)
    (ada,) = await webinars.presenters_of(original)
    assert storage.exists(theme.logo_key)
    assert ada.photo_key
    assert storage.exists(ada.photo_key)


# --- preview and list ----------------------------------------------------------------------------


async def test_preview_is_unsaved_and_keeps_stored_values_for_bad_ones(database: Settings) -> None:
    user = await editor()
    webinar = await webinars.create_webinar(title="Preview me", actor=user)
    form = submitted(
        await webinars.editor_draft(webinar),
        title="Changed title",
        primary="#ff0000",
        background="not a colour",
        **{"presenters-0-name": "Unsaved person", "faq-0-question": "Q?", "faq-0-answer": "A."},
    )
    copy, presenters = await webinars.preview(webinar, form)
    assert copy.id == webinar.id
    assert copy.title == "Changed title"
    theme = content.theme_from(copy.theme)
    assert theme.primary == "#ff0000"
    assert theme.background == content.Theme().background
    assert [p.name for p in presenters] == ["Unsaved person"]
    assert content.landing_from(copy.landing).faq == (content.FaqItem("Q?", "A."),)
    assert (await fresh(webinar)).title == "Preview me"
    assert await Presenter.all().count() == 0


async def test_overview_counts(database: Settings) -> None:
    user = await editor()
    now = datetime(2030, 1, 1, 12, tzinfo=UTC)
    first = await webinars.create_webinar(title="First", actor=user)
    second = await webinars.create_webinar(title="Second", actor=user)
    await Schedule.create(webinar=first, timezone="UTC", rules=SCHEDULE_RULES)
    past = await WebinarSession.create(webinar=first, starts_at=datetime(2029, 1, 1, tzinfo=UTC))
    soon = await WebinarSession.create(webinar=first, starts_at=datetime(2030, 1, 2, tzinfo=UTC))
    for n, session in enumerate((past, soon, soon)):
        contact = await Contact.create(email=f"p{n}@example.com", name=f"P{n}")
        await Registrant.create(
            contact=contact, webinar=first, session=session, join_token_hash=f"{n}" * 64
        )
    rows = {row.webinar.id: row for row in await webinars.overview(now=now)}
    assert (rows[first.id].registrations, rows[first.id].upcoming_sessions) == (3, 1)
    assert rows[first.id].next_start == datetime(2030, 1, 2, 10, tzinfo=UTC)
    assert (rows[second.id].registrations, rows[second.id].upcoming_sessions) == (0, 0)
    assert rows[second.id].next_start is None
