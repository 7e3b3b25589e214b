"""The unsubscribe link of attendees' emails: `/u/{token}` and its undo.

`GET /u/{token}` only shows which address the link is for and a button; it changes nothing, since
mail scanners open links on their own. `POST /u/{token}` unsubscribes: either the button, which
answers with a page offering to subscribe again, or a mail provider's one-click request
(RFC 8058, body `List-Unsubscribe=One-Click`), which gets a short plain text. Both POSTs are
exempt from CSRF checks (see `middleware.CSRF_EXEMPT_PATHS`): the provider sends no cookies, and
the signed token in the path is the only key. Pages speak the language of the contact's latest
registration.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from app import i18n
from app.models import Contact, Registrant
from app.services import auth, unsubscribe
from app.web.forms import bounded_body
from app.web.landing import mask_email
from app.web.public_templating import TOKEN_PAGE_HEADERS, not_found, render_public

# A one-click request body is 26 bytes; nothing longer needs reading to recognise it.
MAX_BODY_BYTES = 1024
ONE_CLICK = ("List-Unsubscribe", "One-Click")


async def _contact(request: Request) -> Contact | None:
    contact_id = unsubscribe.contact_id_of(request.path_params["token"])
    if contact_id is None:
        return None
    return await Contact.get_or_none(id=contact_id)


async def _language(contact: Contact) -> str:
    latest = await Registrant.filter(contact_id=contact.id).order_by("-created_at", "-id").first()
    return i18n.language_or_default(latest.language if latest else None)


async def _is_one_click(request: Request) -> bool:
    """Whether the POST is a mail provider's RFC 8058 one-click request."""
    if not request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
        return False
    raw = await bounded_body(request, MAX_BODY_BYTES)
    if raw is None:
        return False
    body = raw.decode("utf-8", errors="replace")
    try:
        pairs = parse_qsl(body, keep_blank_values=True, max_num_fields=10)
    except ValueError:
        return False
    return ONE_CLICK in pairs


async def _render(request: Request, contact: Contact, state: str) -> Response:
    token = request.path_params["token"]
    context: dict[str, Any] = {
        "state": state,
        "masked_email": mask_email(contact.email),
        "action": f"/u/{token}",
    }
    return render_public(
        request,
        "public/unsubscribe.html",
        context,
        language=await _language(contact),
        headers=TOKEN_PAGE_HEADERS,
    )


async def page(request: Request) -> Response:
    """`GET /u/{token}`: the address the link is for and an unsubscribe button (no change)."""
    contact = await _contact(request)
    if contact is None:
        return not_found(request, headers=TOKEN_PAGE_HEADERS)
    state = "confirm" if contact.unsubscribed_at is None else "unsubscribed"
    return await _render(request, contact, state)


async def submit(request: Request) -> Response:
    """`POST /u/{token}`: unsubscribe (the page's button, or a mail provider's one-click)."""
    contact = await _contact(request)
    if contact is None:
        return not_found(request, headers=TOKEN_PAGE_HEADERS)
    await unsubscribe.unsubscribe(contact.id, auth.utcnow())
    if await _is_one_click(request):
        message = i18n.gettext(await _language(contact), "You are unsubscribed.")
        return PlainTextResponse(message, headers=TOKEN_PAGE_HEADERS)
    return await _render(request, contact, "unsubscribed")


async def resubscribe(request: Request) -> Response:
    """`POST /u/{token}/resubscribe`: undo an unsubscribe; emails about webinars resume."""
    contact = await _contact(request)
    if contact is None:
        return not_found(request, headers=TOKEN_PAGE_HEADERS)
    await unsubscribe.resubscribe(contact.id)
    return await _render(request, contact, "resubscribed")
