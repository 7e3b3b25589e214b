"""Contacts and accounts in the admin, through real HTTP: lists, profiles, editing, roles."""

from __future__ import annotations

import html
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from app.models import Account, AuditEvent, Role
from app.services import people
from app.settings import Settings
from tests.conftest import csrf_token, login, make_user
from tests.services.test_people import attend, make_contact, make_webinar, register

NOW = datetime.now(UTC)


async def sign_in(client: httpx.AsyncClient, role: Role) -> str:
    """Sign in with a role; the CSRF token of the admin pages."""
    if role != Role.OWNER:
        await make_user(Role.OWNER)
    user = await make_user(role, email=f"{role.value}-user@example.com", name="Grace Hopper")
    assert (await login(client, user.email)).status_code == 303
    return await csrf_token(client, "/admin")


def text_of(response: httpx.Response) -> str:
    return html.unescape(response.text)


async def test_the_list_shows_each_persons_figures_and_finds_them(
    client: httpx.AsyncClient, database: Settings
) -> None:
    webinar = await make_webinar("Onboarding", video_seconds=1000)
    ann = await make_contact("ann@acme.example", "Ann Acme")
    await attend(await register(ann, webinar, NOW - timedelta(days=1)), watched=1000)
    await make_contact("fay@gmail.com", "Fay Free")
    await sign_in(client, Role.ANALYST)
    page = await client.get("/admin/contacts")
    assert page.status_code == 200
    text = text_of(page)
    # 30 + 30·1 = 60
    row = text[text.index("Ann Acme") :]
    assert '<a href="/admin/accounts/acme.example">acme.example</a>' in row
    assert ">60</span>" in row[: row.index("</tr>")]
    assert "Fay Free" in text
    found = text_of(await client.get("/admin/contacts?q=acme"))
    assert "Ann Acme" in found
    assert "Fay Free" not in found
    assert "No contact matches “nobody”" in text_of(await client.get("/admin/contacts?q=nobody"))
    assert 'href="/admin/accounts"' in text  # the navigation has Accounts and Segments
    assert 'href="/admin/segments"' in text


async def test_a_profile_shows_registrations_answers_and_the_score_formula(
    client: httpx.AsyncClient, database: Settings
) -> None:
    fields = [{"key": "role", "label": "Your role", "type": "text"}]
    webinar = await make_webinar("Onboarding", video_seconds=1000, fields=fields)
    ann = await make_contact("ann@acme.example", "Ann Acme")
    held = await register(
        ann,
        webinar,
        NOW - timedelta(days=1),
        answers={"role": "<b>CTO</b>"},
        utm={"utm_source": "newsletter"},
        referrer="https://partner.example/",
    )
    await attend(held, watched=500, clicked_offer=True)
    await sign_in(client, Role.MODERATOR)
    page = await client.get(f"/admin/contacts/{ann.id}")
    assert page.status_code == 200
    assert "&lt;b&gt;CTO&lt;/b&gt;" in page.text  # escaped
    text = text_of(page)
    for words in (
        "Your role",
        "utm_source",
        "newsletter",
        "https://partner.example/",
        "Onboarding",
        "50%",
        "clicked",
        *people.SCORE_FORMULA,
    ):
        assert words in text, words
    # 30 + 30·0.5 + 15·1/2 = 52.5 -> 53
    assert "Engagement score: 53 of 100" in text
    missing = await client.get(f"/admin/contacts/{ann.id + 100}")
    assert missing.status_code == 404
    assert "Contact not found" in missing.text


async def test_the_accounts_page_shows_who_attended_onboarding(
    client: httpx.AsyncClient, database: Settings
) -> None:
    onboarding = await make_webinar("Onboarding")
    ann = await make_contact("ann@acme.example")
    await attend(await register(ann, onboarding, NOW - timedelta(days=2)), watched=10)
    await register(await make_contact("bo@beta.example"), onboarding, NOW - timedelta(days=2))
    await make_contact("cy@gamma.example")
    await make_contact("fay@gmail.com")
    await sign_in(client, Role.ANALYST)
    plain = text_of(await client.get("/admin/accounts"))
    assert "/admin/accounts/gmail.com" not in plain
    assert "/admin/accounts/gamma.example" in plain
    assert "Onboarding webinar" in plain
    page = await client.get(f"/admin/accounts?onboarding={onboarding.id}")
    text = text_of(page)
    rows = {
        domain: text[text.index(f">{domain}</a>") :].split("</tr>")[0]
        for domain in ("acme.example", "beta.example", "gamma.example")
    }
    assert ">attended<" in rows["acme.example"]
    assert ">missed<" in rows["beta.example"]
    assert ">none<" in rows["gamma.example"]
    missed = text_of(await client.get(f"/admin/accounts?onboarding={onboarding.id}&state=missed"))
    assert "beta.example" in missed
    assert ">acme.example</a>" not in missed


async def test_an_editor_renames_merges_and_undoes_an_account(
    client: httpx.AsyncClient, database: Settings
) -> None:
    webinar = await make_webinar("Kick-off")
    await register(await make_contact("ann@acme.example", "Ann"), webinar, NOW)
    await make_contact("bob@acme.de", "Bob")
    token = await sign_in(client, Role.EDITOR)
    page = await client.get("/admin/accounts/acme.example")
    assert page.status_code == 200
    assert "Ann" in page.text

    saved = await client.post(
        "/admin/accounts/acme.example",
        data={
            "name": "Acme GmbH",
            "domains": "acme.example",
            "notes": "Key account",
            "csrf_token": token,
        },
    )
    assert saved.status_code == 303
    account = await Account.get(name="Acme GmbH")
    assert saved.headers["location"] == f"/admin/accounts/{account.id}?done=saved"
    assert (account.domains, account.notes) == (["acme.example"], "Key account")
    # The domain now leads to the account.
    moved = await client.get("/admin/accounts/acme.example")
    assert moved.status_code == 303
    assert moved.headers["location"] == f"/admin/accounts/{account.id}"

    merged = await client.post(
        "/admin/accounts/acme.de/merge", data={"into": "acme gmbh", "csrf_token": token}
    )
    assert merged.status_code == 303
    await account.refresh_from_db()
    assert account.domains == ["acme.example", "acme.de"]
    shown = text_of(await client.get(merged.headers["location"]))
    assert "Accounts merged" in shown
    assert "Bob" in shown
    assert "Ann" in shown

    undone = await client.post(f"/admin/accounts/{account.id}/delete", data={"csrf_token": token})
    assert undone.status_code == 303
    assert await Account.all().count() == 0
    actions = set(await AuditEvent.all().values_list("action", flat=True))
    assert {"account.saved", "account.merged", "account.deleted"} <= actions


async def test_bad_account_input_is_shown_beside_its_field_and_kept(
    client: httpx.AsyncClient, database: Settings
) -> None:
    await make_contact("ann@acme.example")
    await Account.create(name="Beta Corp", domains=["beta.example"])
    token = await sign_in(client, Role.ADMIN)
    typed = {"name": "Acme", "domains": "acme.example\ngmail.com", "notes": "typed notes"}
    answer = await client.post("/admin/accounts/acme.example", data={**typed, "csrf_token": token})
    assert answer.status_code == 400
    text = text_of(answer)
    assert "gmail.com is a free-mail provider: its people are not one company." in text
    assert 'id="err-domains"' in text
    assert "typed notes" in text
    assert "acme.example\ngmail.com" in text
    taken = await client.post(
        "/admin/accounts/acme.example",
        data={"name": "Acme", "domains": "acme.example beta.example", "csrf_token": token},
    )
    assert taken.status_code == 400
    assert "beta.example belongs to the account “Beta Corp”" in text_of(taken)
    nowhere = await client.post(
        "/admin/accounts/acme.example/merge", data={"into": "nowhere", "csrf_token": token}
    )
    assert nowhere.status_code == 400
    assert 'value="nowhere"' in nowhere.text
    assert await Account.all().count() == 1


@pytest.mark.parametrize("role", [Role.ANALYST, Role.MODERATOR], ids=str)
async def test_analysts_and_moderators_see_accounts_and_change_nothing(
    client: httpx.AsyncClient, database: Settings, role: Role
) -> None:
    await make_contact("ann@acme.example", "Ann")
    account = await Account.create(name="Beta Corp", domains=["beta.example"], notes="n")
    token = await sign_in(client, role)
    page = await client.get("/admin/accounts/acme.example")
    assert page.status_code == 200
    assert "your role does not allow changing it" in page.text
    assert "<fieldset disabled" in page.text
    for url, data in (
        ("/admin/accounts/acme.example", {"name": "Mine", "domains": "acme.example"}),
        (f"/admin/accounts/{account.id}/merge", {"into": "acme.example"}),
        (f"/admin/accounts/{account.id}/delete", {}),
    ):
        refused = await client.post(url, data={**data, "csrf_token": token})
        assert refused.status_code == 403, url
    assert await Account.all().values_list("name", "domains", "notes") == [
        ("Beta Corp", ["beta.example"], "n")
    ]


@pytest.mark.parametrize("role", list(Role), ids=str)
async def test_every_role_sees_contacts_and_only_some_change_accounts(
    client: httpx.AsyncClient, database: Settings, role: Role
) -> None:
    ann = await make_contact("ann@acme.example", "Ann")
    token = await sign_in(client, role)
    for url in ("/admin/contacts", f"/admin/contacts/{ann.id}", "/admin/accounts"):
        assert (await client.get(url)).status_code == 200, url
    answer = await client.post(
        "/admin/accounts/acme.example",
        data={"name": "Acme", "domains": "acme.example", "csrf_token": token},
    )
    may_change = role in {Role.OWNER, Role.ADMIN, Role.EDITOR}
    assert answer.status_code == (303 if may_change else 403)
    assert await Account.all().count() == (1 if may_change else 0)


async def test_ids_beyond_the_database_range_are_simply_not_found(
    client: httpx.AsyncClient, database: Settings
) -> None:
    await sign_in(client, Role.OWNER)
    huge = "9" * 12
    for url in (
        f"/admin/contacts/{huge}",
        f"/admin/accounts/{huge}",
        f"/admin/segments/{huge}",
        f"/admin/segments/{huge}/export.csv",
    ):
        assert (await client.get(url)).status_code == 404, url
    assert (await client.get(f"/admin/accounts?onboarding={huge}")).status_code == 200
    checked = await client.get(f"/admin/segments/new?webinar={huge}")
    assert "That webinar does not exist (any more): choose another." in text_of(checked)
