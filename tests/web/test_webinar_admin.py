"""The webinar editor over HTTP through the real app: pages, saving, errors, preview, publishing."""

from __future__ import annotations

import html
import io
import json
import re
from html.parser import HTMLParser

import httpx
from PIL import Image

from app.models import AuditEvent, Role, Schedule, Webinar, WebinarStatus
from app.services import content
from app.settings import Settings
from tests.conftest import csrf_token, login, make_user

RULES = {"repeat": "daily", "times": ["10:00"]}
SVG = b"<svg xmlns='http://www.w3.org/2000/svg'/>"


class FormReader(HTMLParser):
    """The fields of one form as a browser would submit them (files and buttons left out)."""

    def __init__(self, form_id: str) -> None:
        super().__init__()
        self.form_id = form_id
        self.inside = False
        self.in_template = 0
        self.values: list[tuple[str, str]] = []
        self._select: str | None = None
        self._select_value: str | None = None
        self._first_option: str | None = None
        self._textarea: str | None = None
        self._text = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = {key: value or "" for key, value in attrs}
        if tag == "form" and self.form_id in found.get("action", ""):
            self.inside = "data-editor" in found
        if not self.inside:
            return
        if tag == "template":
            self.in_template += 1
        if self.in_template:
            return
        name = found.get("name")
        if tag == "input" and name and "disabled" not in found:
            kind = found.get("type", "text")
            if kind in {"checkbox", "radio"}:
                if "checked" in found:
                    self.values.append((name, found.get("value", "on")))
            elif kind not in {"file", "submit", "button"}:
                self.values.append((name, found.get("value", "")))
        elif tag == "select" and name:
            self._select, self._select_value, self._first_option = name, None, None
        elif tag == "option" and self._select is not None:
            value = found.get("value", "")
            if self._first_option is None:
                self._first_option = value
            if "selected" in found:
                self._select_value = value
        elif tag == "textarea" and name:
            self._textarea, self._text = name, ""

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self.inside = False
        if not self.inside:
            return
        if tag == "template":
            self.in_template -= 1
        elif tag == "select" and self._select is not None:
            chosen = self._select_value if self._select_value is not None else self._first_option
            self.values.append((self._select, chosen or ""))
            self._select = None
        elif tag == "textarea" and self._textarea is not None:
            # A browser drops the one newline that follows <textarea>.
            self.values.append((self._textarea, self._text.removeprefix("\n")))
            self._textarea = None

    def handle_data(self, data: str) -> None:
        if self._textarea is not None and not self.in_template:
            self._text += data


def editor_form(page: str, webinar_id: int) -> dict[str, str]:
    reader = FormReader(f"/admin/webinars/{webinar_id}")
    reader.feed(page)
    return dict(reader.values)


async def sign_in(client: httpx.AsyncClient, role: Role = Role.EDITOR) -> str:
    if role != Role.OWNER:
        await make_user(Role.OWNER, email="owner@example.com")
    user = await make_user(role, email=f"{role.value}-person@example.com")
    assert (await login(client, user.email)).status_code == 303
    return await csrf_token(client, "/admin")


async def create(client: httpx.AsyncClient, token: str, title: str = "Product tour") -> Webinar:
    response = await client.post("/admin/webinars/new", data={"title": title, "csrf_token": token})
    assert response.status_code == 303
    match = re.fullmatch(r"/admin/webinars/(\d+)\?notice=created", response.headers["location"])
    assert match, response.headers["location"]
    return await Webinar.get(id=int(match.group(1)))


def jpeg_with_gps() -> bytes:
    exif = Image.Exif()
    exif[0x010F] = "PhoneMaker"
    exif.get_ifd(0x8825).update({1: "N", 2: (52.0, 31.0, 12.0)})
    buffer = io.BytesIO()
    Image.new("RGB", (900, 600), "orange").save(buffer, format="JPEG", exif=exif)
    return buffer.getvalue()


async def test_create_edit_and_save_with_an_image(
    database: Settings, client: httpx.AsyncClient
) -> None:
    token = await sign_in(client)
    empty = await client.get("/admin/webinars")
    assert empty.status_code == 200
    assert "No webinars yet" in empty.text
    assert "/admin/webinars/new" in empty.text

    refused = await client.post("/admin/webinars/new", data={"title": "  ", "csrf_token": token})
    assert refused.status_code == 400
    assert "Enter a title." in refused.text
    assert await Webinar.all().count() == 0

    webinar = await create(client, token, "Product Tour: Spring")
    assert webinar.slug == "product-tour-spring"
    page = await client.get(f"/admin/webinars/{webinar.id}?notice=created")
    assert page.status_code == 200
    assert "Webinar created." in page.text
    assert "Before publishing: Set up a schedule first" in page.text
    assert f'href="/admin/webinars/{webinar.id}/schedule"' in page.text
    assert f'data-preview-url="/admin/webinars/{webinar.id}/preview"' in page.text

    form = editor_form(page.text, webinar.id)
    assert form["title"] == "Product Tour: Spring"
    assert form["template"] == "classic"
    assert form["primary"] == "#4338ca"
    assert form["show_presenters"] == "1"
    form.update(
        {
            "headline": "See it in action",
            "primary": "#0f766e",
            "agenda": "Setup\nFirst session",
            "presenters-0-name": "Alex Moreau",
            "fields-0-label": "Company",
            "faq-1-question": "Is it live?",
            "faq-1-answer": "The chat is.",
        }
    )
    saved = await client.post(
        f"/admin/webinars/{webinar.id}",
        data=form,
        files={"logo": ("logo.jpg", jpeg_with_gps(), "image/jpeg")},
    )
    assert saved.status_code == 303, saved.text
    assert saved.headers["location"] == f"/admin/webinars/{webinar.id}?notice=saved"
    webinar = await Webinar.get(id=webinar.id)
    theme = content.theme_from(webinar.theme)
    assert theme.primary == "#0f766e"
    assert content.landing_from(webinar.landing).headline == "See it in action"
    assert [f.key for f in content.fields_from(webinar.registration_fields)] == ["company"]

    # The logo is public, cleaned, and cached for long; uploads stay private.
    logo = await client.get(f"/media/{theme.logo_key}")
    assert logo.status_code == 200
    assert logo.headers["content-type"] == "image/jpeg"
    assert "immutable" in logo.headers["cache-control"]
    assert b"PhoneMaker" not in logo.content
    with Image.open(io.BytesIO(logo.content)) as image:
        assert image.size == (400, 267)
    assert (await client.get("/media/images/../uploads/x/source")).status_code == 404
    assert (await client.get("/media/images/nested/x.png")).status_code == 404
    assert (await client.get("/media/uploads/x/source.jpg")).status_code == 404

    page = await client.get(f"/admin/webinars/{webinar.id}?notice=saved")
    assert f'src="/media/{theme.logo_key}"' in page.text
    again = editor_form(page.text, webinar.id)
    assert again["fields-0-key"] == "company"
    assert again["presenters-0-name"] == "Alex Moreau"
    assert again["faq-0-question"] == "Is it live?"
    assert again["agenda"] == "Setup\nFirst session"


async def test_errors_are_shown_beside_fields_and_nothing_is_saved(
    database: Settings, client: httpx.AsyncClient
) -> None:
    token = await sign_in(client)
    webinar = await create(client, token)
    before = await Webinar.filter(id=webinar.id).values()
    form = editor_form((await client.get(f"/admin/webinars/{webinar.id}")).text, webinar.id)
    form.update(
        {
            "title": "A new title",
            "primary": "blue-ish",
            "slug": "Not A Slug",
            "fields-0-label": "Pick one",
            "fields-0-type": "select",
            "allowed_domains": "example.com\nnope",
        }
    )
    response = await client.post(f"/admin/webinars/{webinar.id}", data=form)
    assert response.status_code == 400
    text = response.text
    assert "Nothing was saved: 4 fields need a change" in text
    assert 'id="err-primary"' in text
    assert "enter # and six hexadecimal digits" in text
    assert 'aria-describedby="err-primary"' in text
    assert 'id="err-slug"' in text
    assert 'id="err-fields-0-options"' in text
    assert html.escape("“nope” is not a domain name like example.com.") in text
    # What was typed is still there.
    kept = editor_form(text, webinar.id)
    assert kept["title"] == "A new title"
    assert kept["primary"] == "blue-ish"
    assert kept["slug"] == "Not A Slug"
    assert kept["fields-0-label"] == "Pick one"
    assert kept["fields-0-type"] == "select"
    assert kept["allowed_domains"] == "example.com\nnope"
    assert await Webinar.filter(id=webinar.id).values() == before


async def test_a_bad_image_is_refused(database: Settings, client: httpx.AsyncClient) -> None:
    token = await sign_in(client)
    webinar = await create(client, token)
    form = editor_form((await client.get(f"/admin/webinars/{webinar.id}")).text, webinar.id)
    response = await client.post(
        f"/admin/webinars/{webinar.id}",
        data=form,
        files={
            "cover": ("cover.svg", b"<svg xmlns='http://www.w3.org/2000/svg'/>", "image/svg+xml")
        },
    )
    assert response.status_code == 400
    assert "SVG is not accepted" in response.text
    assert 'id="err-cover"' in response.text
    assert content.theme_from((await Webinar.get(id=webinar.id)).theme).cover_key == ""


async def test_preview_renders_unsaved_values(
    database: Settings, client: httpx.AsyncClient
) -> None:
    token = await sign_in(client)
    webinar = await create(client, token)
    form = editor_form((await client.get(f"/admin/webinars/{webinar.id}")).text, webinar.id)
    form.update({"headline": "Unsaved headline", "primary": "#ffff00", "text": "#eeeeee"})
    response = await client.post(
        f"/admin/webinars/{webinar.id}/preview", data=form, headers={"X-CSRF-Token": token}
    )
    assert response.status_code == 200
    assert "Unsaved headline" in response.text
    assert "p=ffff00" in response.text  # the theme stylesheet of the unsaved colours
    assert response.headers["cache-control"] == "no-store"
    warnings = json.loads(response.headers["x-contrast-warnings"])
    assert "The text colour is hard to read on the background colour." in warnings
    assert content.landing_from((await Webinar.get(id=webinar.id)).landing).headline == ""

    # Without the token (header or field) the preview is refused like any other POST.
    del form["csrf_token"]
    refused = await client.post(f"/admin/webinars/{webinar.id}/preview", data=form)
    assert refused.status_code == 403


async def test_csrf_is_required(database: Settings, client: httpx.AsyncClient) -> None:
    token = await sign_in(client)
    webinar = await create(client, token)
    form = editor_form((await client.get(f"/admin/webinars/{webinar.id}")).text, webinar.id)
    form["title"] = "Forged"
    del form["csrf_token"]
    for url, data in [
        (f"/admin/webinars/{webinar.id}", form),
        ("/admin/webinars/new", {"title": "Forged"}),
        (f"/admin/webinars/{webinar.id}/duplicate", {}),
        (f"/admin/webinars/{webinar.id}/archive", {}),
    ]:
        response = await client.post(url, data=data)
        assert response.status_code == 403, url
        assert "security token" in response.text
    forged = await client.post(
        f"/admin/webinars/{webinar.id}", data={**form, "csrf_token": "x" * 40}
    )
    assert forged.status_code == 403
    assert await Webinar.all().count() == 1
    stored = await Webinar.get(id=webinar.id)
    assert stored.title == "Product tour"
    assert stored.status == WebinarStatus.DRAFT


async def test_publish_unpublish_duplicate_archive(
    database: Settings, client: httpx.AsyncClient
) -> None:
    token = await sign_in(client)
    webinar = await create(client, token, "Launch")
    url = f"/admin/webinars/{webinar.id}"
    refused = await client.post(f"{url}/publish", data={"csrf_token": token})
    assert refused.status_code == 409
    assert "Set up a schedule first" in refused.text
    assert (await Webinar.get(id=webinar.id)).status == WebinarStatus.DRAFT

    await Schedule.create(webinar=webinar, timezone="Europe/Berlin", rules=RULES)
    published = await client.post(f"{url}/publish", data={"csrf_token": token})
    assert published.status_code == 303
    page = await client.get(published.headers["location"])
    assert "Published: the landing page is live." in page.text
    assert "No recording is chosen yet" in page.text
    assert "Fixed since the webinar was first published" in page.text
    assert 'name="slug"' not in page.text
    assert f"/admin/webinars/{webinar.id}/unpublish" in page.text
    assert (await client.get("/w/launch")).status_code == 200

    unpublished = await client.post(f"{url}/unpublish", data={"csrf_token": token})
    assert unpublished.status_code == 303
    assert (await Webinar.get(id=webinar.id)).status == WebinarStatus.DRAFT

    duplicated = await client.post(f"{url}/duplicate", data={"csrf_token": token})
    assert duplicated.status_code == 303
    copy = await Webinar.get(slug="copy-of-launch")
    assert duplicated.headers["location"] == f"/admin/webinars/{copy.id}?notice=duplicated"
    assert await Schedule.filter(webinar_id=copy.id).exists()

    archived = await client.post(f"{url}/archive", data={"csrf_token": token})
    assert archived.status_code == 303
    assert (await Webinar.get(id=webinar.id)).status == WebinarStatus.ARCHIVED
    listing = await client.get("/admin/webinars")
    assert "Copy of Launch" in listing.text
    assert "badge-archived" in listing.text
    actions = {str(action) for action in await AuditEvent.all().values_list("action", flat=True)}
    assert {"webinar.published", "webinar.unpublished", "webinar.duplicated"} <= actions
    assert "webinar.archived" in actions

    missing = await client.post("/admin/webinars/9999/publish", data={"csrf_token": token})
    assert missing.status_code == 404


async def test_share_page(database: Settings, client: httpx.AsyncClient) -> None:
    token = await sign_in(client)
    webinar = await create(client, token, 'Tips & "tricks"')
    page = await client.get(f"/admin/webinars/{webinar.id}/share")
    assert page.status_code == 200
    snippet = (
        f'<iframe src="http://testserver/w/{webinar.slug}/embed" '
        'title="Register: Tips &amp; &quot;tricks&quot;" width="100%" height="640" '
        'loading="lazy"></iframe>'
    )
    box = re.search(r'<textarea id="share-embed"[^>]*readonly[^>]*>([^<]*)</textarea>', page.text)
    assert box is not None
    assert html.unescape(box.group(1)) == snippet
    assert "not published" in page.text

    built = await client.get(
        f"/admin/webinars/{webinar.id}/share",
        params={"utm_source": "newsletter", "utm_medium": "email", "utm_campaign": "spring sale"},
    )
    link = f"http://testserver/w/{webinar.slug}?utm_source=newsletter&utm_medium=email&utm_campaign=spring+sale"
    shown = re.search(r'id="share-utm-link" readonly value="([^"]*)"', built.text)
    assert shown is not None
    assert html.unescape(shown.group(1)) == link
    refused = await client.get(
        f"/admin/webinars/{webinar.id}/share", params={"utm_medium": "email"}
    )
    assert refused.status_code == 400
    assert "Enter the source" in refused.text
    assert 'value="email"' in refused.text


async def test_an_analyst_can_look_but_not_edit(
    database: Settings, client: httpx.AsyncClient
) -> None:
    owner = await make_user(Role.OWNER, email="owner@example.com")
    webinar = Webinar(slug="look", title="Look only")
    await webinar.save()
    analyst = await make_user(Role.ANALYST, email="analyst@example.com")
    assert (await login(client, analyst.email)).status_code == 303
    token = await csrf_token(client, "/admin")
    listing = await client.get("/admin/webinars")
    assert listing.status_code == 200
    assert "Look only" in listing.text
    assert "New webinar" not in listing.text
    assert f"/admin/webinars/{webinar.id}/duplicate" not in listing.text
    share = await client.get(f"/admin/webinars/{webinar.id}/share")
    assert share.status_code == 200
    assert "/publish" not in share.text
    assert (await client.get(f"/admin/webinars/{webinar.id}")).status_code == 403
    for url in (
        f"/admin/webinars/{webinar.id}",
        f"/admin/webinars/{webinar.id}/publish",
        f"/admin/webinars/{webinar.id}/preview",
        "/admin/webinars/new",
    ):
        response = await client.post(url, data={"title": "Changed", "csrf_token": token})
        assert response.status_code == 403, url
        assert "Your role (analyst) does not allow this." in response.text
    assert (await Webinar.get(id=webinar.id)).title == "Look only"
    assert owner.id
