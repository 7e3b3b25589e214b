"""Segments in the admin, through real HTTP: the editor, counting, CSV export, the Emails tab's
segment audience, and who may do what."""

from __future__ import annotations

import csv
import html
import io
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from app.models import Audience, AuditEvent, EmailStep, Role, Segment, StepKind, Webinar
from app.services import mail, segments, sequences
from app.settings import Settings
from tests.conftest import csrf_token, login, make_user
from tests.services.test_people import attend, make_contact, make_webinar, register

NOW = datetime.now(UTC)


@pytest.fixture(autouse=True)
def configured_mailer() -> None:
    """The outbox mailer the settings choose."""
    mail.use_mailer(None)


async def sign_in(client: httpx.AsyncClient, role: Role) -> str:
    """Sign in with a role; the CSRF token of the admin pages."""
    if role != Role.OWNER:
        await make_user(Role.OWNER)
    user = await make_user(role, email=f"{role.value}-user@example.com", name="Grace Hopper")
    assert (await login(client, user.email)).status_code == 303
    return await csrf_token(client, "/admin")


def text_of(response: httpx.Response) -> str:
    return html.unescape(response.text)


async def two_people() -> Webinar:
    """Ann attended Onboarding (80% watched), Bob missed it; Sly's name is a formula."""
    webinar = await make_webinar("Onboarding", video_seconds=1000)
    ann = await make_contact("ann@acme.example", "Ann Acme")
    await attend(await register(ann, webinar, NOW - timedelta(days=1)), watched=800)
    await register(await make_contact("bob@acme.example", "Bob Acme"), webinar, NOW - timedelta(1))
    await register(
        await make_contact("sly@evil.example", "=cmd|' /C calc'!A0"), webinar, NOW - timedelta(1)
    )
    return webinar


async def test_an_editor_makes_a_segment_and_sees_its_members(
    client: httpx.AsyncClient, database: Settings
) -> None:
    webinar = await two_people()
    token = await sign_in(client, Role.EDITOR)
    blank = await client.get("/admin/segments/new")
    assert blank.status_code == 200
    assert "Members" in blank.text
    assert "Onboarding" in blank.text
    form = {"name": "Watched most", "webinar": str(webinar.id), "watch": "75"}
    saved = await client.post("/admin/segments/new", data={**form, "csrf_token": token})
    assert saved.status_code == 303
    segment = await Segment.get(name="Watched most")
    assert saved.headers["location"] == f"/admin/segments/{segment.id}?done=saved"
    assert segments.rules_from(segment.rules) == segments.Rules(
        webinar_id=webinar.id, min_watch_percent=75
    )
    page = text_of(await client.get(saved.headers["location"]))
    assert "Segment saved." in page
    preview = page[page.index('id="preview-title"') :]
    assert "data-segment-count>1<" in preview
    assert "Ann Acme" in preview
    assert "Bob Acme" not in preview
    listed = text_of(await client.get("/admin/segments"))
    assert "Watched most" in listed
    assert "Watched at least 75%" in listed
    assert (await AuditEvent.get(action="segment.saved")).target.startswith("segment ")


async def test_bad_rules_are_shown_beside_their_fields_and_kept(
    client: httpx.AsyncClient, database: Settings
) -> None:
    await two_people()
    await Segment.create(name="Taken", rules={})
    token = await sign_in(client, Role.EDITOR)
    typed = {"name": "taken", "watch": "150", "start": "2030-05-02", "end": "2030-05-01"}
    answer = await client.post("/admin/segments/new", data={**typed, "csrf_token": token})
    assert answer.status_code == 400
    text = text_of(answer)
    for field, message in (
        ("name", "Another segment has this name: choose another."),
        ("watch", "Enter a whole percentage from 1 to 100."),
        ("end", "The end date comes before the start date."),
    ):
        assert f'<p class="field-error" id="err-{field}">{message}</p>' in text
    assert 'value="150" placeholder="e.g. 50" aria-invalid="true"' in text
    assert 'value="taken"' in text
    assert 'value="2030-05-02"' in text
    assert "Correct the highlighted fields to count the members:" in text
    assert await Segment.all().count() == 1


async def test_counting_typed_rules_changes_nothing_and_can_be_partial(
    client: httpx.AsyncClient, database: Settings
) -> None:
    await two_people()
    token = await sign_in(client, Role.ANALYST)
    full = await client.post(
        "/admin/segments/check", data={"attendance": "missed", "csrf_token": token}
    )
    assert full.status_code == 200
    assert "data-segment-count>2<" in full.text
    assert "<form" in full.text  # the whole editor, what was typed kept
    assert '<option value="missed" selected>' in full.text
    part = await client.post(
        "/admin/segments/check",
        data={"attendance": "attended", "partial": "1", "csrf_token": token},
    )
    assert part.status_code == 200
    assert part.text.lstrip().startswith('<section class="card segment-preview"')
    assert "data-segment-count>1<" in part.text
    wrong = await client.post(
        "/admin/segments/check", data={"watch": "x", "partial": "1", "csrf_token": token}
    )
    # The live count's section lists what to correct (the fields themselves are not redrawn).
    assert wrong.status_code == 200
    assert (
        '<li><a href="#watch">Watched at least</a>: Enter a whole percentage from 1 to 100.</li>'
        in wrong.text
    )
    whole = await client.post("/admin/segments/check", data={"watch": "x", "csrf_token": token})
    assert whole.status_code == 400
    assert '<p class="field-error" id="err-watch">' in whole.text
    assert await Segment.all().count() == 0


def rows_of(response: httpx.Response) -> list[list[str]]:
    assert response.content.startswith("\ufeff".encode())
    return list(csv.reader(io.StringIO(response.content.decode("utf-8-sig"))))


@pytest.mark.parametrize("role", [Role.ANALYST, Role.EDITOR], ids=str)
async def test_members_export_as_csv_without_formulas(
    client: httpx.AsyncClient, database: Settings, role: Role
) -> None:
    webinar = await two_people()
    segment = await Segment.create(
        name="Onboarding people",
        rules=segments.rules_to_json(segments.Rules(webinar_id=webinar.id)),
    )
    token = await sign_in(client, role)
    saved = await client.get(f"/admin/segments/{segment.id}/export.csv")
    assert saved.status_code == 200
    assert saved.headers["content-type"] == "text/csv; charset=utf-8"
    assert saved.headers["content-disposition"].startswith(
        'attachment; filename="onboarding-people-'
    )
    rows = rows_of(saved)
    assert rows[0] == segments.EXPORT_HEADER
    # Ann: 30 + 30·0.8 = 54
    assert rows[1:] == [
        ["ann@acme.example", "Ann Acme", "acme.example", "1", "1", "80", "54"],
        ["bob@acme.example", "Bob Acme", "acme.example", "1", "0", "", "0"],
        ["sly@evil.example", "'=cmd|' /C calc'!A0", "evil.example", "1", "0", "", "0"],
    ]
    typed = await client.post(
        "/admin/segments/export.csv",
        data={"name": "Missed it", "attendance": "missed", "csrf_token": token},
    )
    assert typed.status_code == 200
    assert 'filename="missed-it-' in typed.headers["content-disposition"]
    assert [row[0] for row in rows_of(typed)[1:]] == ["bob@acme.example", "sly@evil.example"]
    exported = await AuditEvent.filter(action="segment.exported").order_by("id")
    assert [event.details["members"] for event in exported] == [3, 2]
    refused = await client.post(
        "/admin/segments/export.csv", data={"watch": "200", "csrf_token": token}
    )
    assert refused.status_code == 400
    assert "Enter a whole percentage from 1 to 100." in refused.text


async def test_analysts_explore_but_cannot_save_or_delete(
    client: httpx.AsyncClient, database: Settings
) -> None:
    await two_people()
    segment = await Segment.create(name="Kept", rules={"attendance": "attended"})
    token = await sign_in(client, Role.ANALYST)
    page = await client.get(f"/admin/segments/{segment.id}")
    assert page.status_code == 200
    assert "Your role may try rules, count and export their members" in page.text
    assert ">Save</button>" not in page.text
    assert "Delete segment" not in page.text
    assert "Export these members as CSV" in page.text
    for url, data in (
        ("/admin/segments/new", {"name": "Mine"}),
        (f"/admin/segments/{segment.id}", {"name": "Renamed"}),
        (f"/admin/segments/{segment.id}/delete", {}),
    ):
        refused = await client.post(url, data={**data, "csrf_token": token})
        assert refused.status_code == 403, url
    assert await Segment.all().values_list("name", "rules") == [
        ("Kept", {"attendance": "attended"})
    ]


@pytest.mark.parametrize("role", list(Role), ids=str)
async def test_who_may_see_export_and_change_segments(
    client: httpx.AsyncClient, database: Settings, role: Role
) -> None:
    segment = await Segment.create(name="Everyone", rules={})
    token = await sign_in(client, role)
    sees = role != Role.MODERATOR
    changes = role in {Role.OWNER, Role.ADMIN, Role.EDITOR}
    for url in ("/admin/segments", f"/admin/segments/{segment.id}", "/admin/segments/new"):
        assert (await client.get(url)).status_code == (200 if sees else 403), url
    export = await client.get(f"/admin/segments/{segment.id}/export.csv")
    assert export.status_code == (200 if sees else 403)
    renamed = await client.post(
        f"/admin/segments/{segment.id}", data={"name": "Renamed", "csrf_token": token}
    )
    assert renamed.status_code == (303 if changes else 403)
    assert (await Segment.get(id=segment.id)).name == ("Renamed" if changes else "Everyone")
    menu = await client.get("/admin/contacts")
    assert ('href="/admin/segments"' in menu.text) == sees


async def test_a_follow_up_to_a_segment_is_chosen_in_the_emails_tab(
    client: httpx.AsyncClient, database: Settings
) -> None:
    webinar = await make_webinar("Onboarding")
    segment = await Segment.create(name="Trial users", rules={"attendance": "attended"})
    token = await sign_in(client, Role.EDITOR)
    url = f"/admin/webinars/{webinar.id}/emails"
    blank = await client.get(f"{url}/new?kind=follow_up")
    assert '<option value="segment">People in a segment</option>' in blank.text
    assert f'<option value="{segment.id}">Trial users</option>' in blank.text
    form = {
        "kind": "follow_up",
        "subject": "For trial users",
        "body": "Hello {first_name}",
        "amount": "2",
        "unit": "hours",
        "audience": "segment",
        "enabled": "on",
        "csrf_token": token,
    }
    unchosen = await client.post(f"{url}/new", data=form)
    assert unchosen.status_code == 400
    assert "Choose the segment that gets this follow-up." in unchosen.text
    assert 'value="For trial users"' in unchosen.text
    gone = await client.post(f"{url}/new", data={**form, "segment": str(segment.id + 50)})
    assert gone.status_code == 400
    assert "That segment was deleted: choose another." in gone.text
    saved = await client.post(f"{url}/new", data={**form, "segment": str(segment.id)})
    assert saved.status_code == 303
    step = await EmailStep.get(subject="For trial users")
    assert (step.kind, step.audience, sequences.segment_of(step)) == (
        StepKind.FOLLOW_UP,
        Audience.SEGMENT,
        segment.id,
    )
    listed = text_of(await client.get(url))
    assert "2 hours after the end, to the segment “Trial users”" in listed
    editor = text_of(await client.get(f"{url}/{step.id}"))
    assert f'<option value="{segment.id}" selected>Trial users</option>' in editor
    shown = text_of(await client.get(f"/admin/segments/{segment.id}"))
    assert "Onboarding: For trial users" in shown

    # Deleting the segment leaves the follow-up sending nothing, and says so.
    assert (
        await client.post(f"/admin/segments/{segment.id}/delete", data={"csrf_token": token})
    ).status_code == 303
    listed = text_of(await client.get(url))
    assert "2 hours after the end, to a deleted segment (sends nothing)" in listed
    editor = text_of(await client.get(f"{url}/{step.id}"))
    assert "This email's segment was deleted: it sends nothing until you choose another." in editor


async def test_an_account_page_starts_a_segment_of_its_people(
    client: httpx.AsyncClient, database: Settings
) -> None:
    await two_people()
    await sign_in(client, Role.ANALYST)
    account = text_of(await client.get("/admin/accounts/acme.example"))
    assert 'href="/admin/segments/new?account=acme.example"' in account
    page = text_of(await client.get("/admin/segments/new?account=acme.example"))
    assert 'value="acme.example"' in page
    assert "data-segment-count>2<" in page
    assert "Account: acme.example" in page
    wrong = text_of(await client.get("/admin/segments/new?account=gmail.com"))
    assert "gmail.com is a free-mail provider, not a company's domain." in wrong
