"""The "Email sender" card of the settings page: save, DKIM key, DNS check, by role."""

from __future__ import annotations

import html
import json

import httpx
import pytest

from app.models import AuditEvent, Role, WorkspaceSetting
from app.services import crypto, workspace
from app.services import sender as senders
from app.settings import Settings
from tests.conftest import csrf_token, login, make_user
from tests.services.test_sender import DOMAIN, good_records, point_dns_at, serve_dns

SENDER = "/admin/settings/sender"
KEY = "/admin/settings/sender/dkim-key"
CHECK = "/admin/settings/sender/check"


async def sign_in(client: httpx.AsyncClient, role: Role) -> str:
    """Sign in with a role; the CSRF token of the admin pages."""
    if role != Role.OWNER:
        await make_user(Role.OWNER)
    user = await make_user(role, email=f"{role.value}-user@example.com", name="Grace Hopper")
    assert (await login(client, user.email)).status_code == 303
    return await csrf_token(client, "/admin")


def sender_form(token: str, **changes: str) -> dict[str, str]:
    form = {
        "sender_name": "Acme Events",
        "sender_address": f"news@{DOMAIN}",
        "reply_to": f"help@{DOMAIN}",
        "dkim_selector": "encore",
        "csrf_token": token,
    }
    form.update(changes)
    return form


async def test_an_admin_sets_up_the_sender_key_and_check(
    client: httpx.AsyncClient, database: Settings
) -> None:
    token = await sign_in(client, Role.ADMIN)
    page = await client.get("/admin/settings")
    assert page.status_code == 200
    assert "Email sender" in page.text
    assert "Encore &lt;encore@localhost&gt;" in page.text  # the configured default
    assert "Generate a DKIM key" in page.text

    response = await client.post(SENDER, data=sender_form(token))
    assert response.status_code == 200
    assert "Email sender saved." in response.text
    assert f"Acme Events &lt;news@{DOMAIN}&gt;" in response.text
    assert f"replies go to <strong>help@{DOMAIN}</strong>" in response.text
    event = await AuditEvent.get(action="settings.sender")
    assert event.details == {
        "sender_name": "Acme Events",
        "sender_address": f"news@{DOMAIN}",
        "reply_to": f"help@{DOMAIN}",
        "dkim_selector": "encore",
    }

    response = await client.post(KEY, data={"csrf_token": token})
    assert response.status_code == 200
    assert "A new DKIM key was generated" in response.text
    stored = await workspace.load()
    record = senders.stored_record(stored)
    assert record.startswith("v=DKIM1; k=rsa; p=")
    assert f'data-copy="{html.escape(record)}"' in response.text
    assert f'value="encore._domainkey.{DOMAIN}"' in response.text
    assert "Generate a new key" in response.text
    # The key is kept sealed and never written to the audit log or the page.
    pem = crypto.unseal(stored.dkim_key_sealed)
    assert pem is not None
    assert "PRIVATE KEY" not in response.text
    audit = json.dumps([e.details for e in await AuditEvent.all()])
    assert "PRIVATE" not in audit
    assert stored.dkim_key_sealed not in audit

    # Signing is turned on once the key exists.
    response = await client.post(SENDER, data=sender_form(token, dkim_enabled="on"))
    assert response.status_code == 200
    assert "DKIM signing is <strong>on</strong>" in response.text
    current = await senders.current()
    assert current.dkim is not None
    assert current.dkim.domain == DOMAIN

    # The check asks the loopback DNS server; DMARC is missing there.
    records = good_records(record)
    del records[f"_dmarc.{DOMAIN}"]
    server = await serve_dns(records)
    try:
        point_dns_at(server)
        response = await client.post(CHECK, data={"csrf_token": token})
    finally:
        server.close()
    assert response.status_code == 200
    text = html.unescape(response.text)
    assert text.count('class="badge badge-ok"') == 2
    assert text.count('class="badge badge-failed"') == 1
    assert "v=spf1 include:_spf.mailhost.net ~all" in text
    assert f"Add a TXT record at _dmarc.{DOMAIN}" in text
    assert set(server.questions) == {DOMAIN, f"_dmarc.{DOMAIN}", f"encore._domainkey.{DOMAIN}"}
    check = await AuditEvent.get(action="settings.sender_check")
    assert check.target == DOMAIN
    assert check.details == {"SPF": True, "DKIM": True, "DMARC": False}


async def test_bad_input_is_refused_with_the_typed_values_kept(
    client: httpx.AsyncClient, database: Settings
) -> None:
    token = await sign_in(client, Role.OWNER)
    response = await client.post(
        SENDER,
        data=sender_form(
            token, sender_address="not an address", reply_to="help@", dkim_selector="Bad_One"
        ),
    )
    assert response.status_code == 400
    assert "Check the highlighted sender fields." in response.text
    assert 'value="not an address"' in response.text
    assert 'value="help@"' in response.text
    assert 'value="Bad_One"' in response.text
    assert 'value="Acme Events"' in response.text
    assert response.text.count('aria-invalid="true"') == 3
    assert "lower-case letters, digits and hyphens" in response.text

    response = await client.post(
        SENDER, data=sender_form(token, sender_name="Acme\r\nBcc: victim@example.com")
    )
    assert response.status_code == 400
    assert "A sender name must be a single line." in response.text

    response = await client.post(SENDER, data=sender_form(token, dkim_enabled="on"))
    assert response.status_code == 400
    assert "Generate a DKIM key first" in response.text
    assert 'id="dkim_enabled" name="dkim_enabled" type="checkbox" checked' in response.text

    assert await WorkspaceSetting.all().count() == 0
    assert await AuditEvent.filter(action__startswith="settings.sender").count() == 0


@pytest.mark.parametrize("role", [Role.ANALYST, Role.EDITOR], ids=str)
async def test_roles_without_settings_are_refused(
    client: httpx.AsyncClient, database: Settings, role: Role
) -> None:
    token = await sign_in(client, role)
    for url, data in (
        (SENDER, sender_form(token)),
        (KEY, {"csrf_token": token}),
        (CHECK, {"csrf_token": token}),
    ):
        response = await client.post(url, data=data)
        assert response.status_code == 403, url
        assert "Not allowed" in response.text
    assert (await client.get("/admin/settings")).status_code == 403
    assert await WorkspaceSetting.all().count() == 0
    assert await AuditEvent.filter(action__startswith="settings.sender").count() == 0
