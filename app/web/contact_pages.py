"""Contacts and accounts in the admin: who each person is across webinars, and their companies.

Anyone who may see contacts sees these pages; changing an account (renaming, merging domains,
notes) needs EDIT_PEOPLE, which analysts and moderators do not have.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from app.models import Webinar
from app.services import accounts, audit, auth, demo_history, people, profiles
from app.services.content import FormErrors
from app.services.permissions import Permission, can
from app.web.access import client_ip, staff_route, staff_user
from app.web.templating import render, render_error

ACCOUNT_FIELDS = ("name", "domains", "notes")
FIELD_MAX = accounts.NOTES_MAX + 1  # one more than allowed, so that too long is reported
_NOTICES = {
    "saved": "Account saved.",
    "merged": "Accounts merged: this account now holds the domains of both.",
}


def _page_number(request: Request) -> int:
    raw = request.query_params.get("page", "1")
    return max(1, int(raw)) if raw.isdigit() and len(raw) < 7 else 1


def _can_edit(request: Request) -> bool:
    return can(staff_user(request).role, Permission.EDIT_PEOPLE)


@staff_route(Permission.VIEW_CONTACTS)
async def contacts(request: Request) -> Response:
    """Everyone who registered, newest first, searchable by email or name."""
    query = request.query_params.get("q", "").strip()[: people.SEARCH_MAX]
    found = await people.contact_page(query=query, page=_page_number(request), now=auth.utcnow())
    domains = {contact.company_domain for contact in found.contacts}
    return render(
        request,
        "admin/contacts.html",
        {
            "found": found,
            "companies": await accounts.company_names(domains),
            "account_keys": await accounts.account_keys(domains),
            "q": query,
            "active": "/admin/contacts",
        },
    )


@staff_route(Permission.VIEW_CONTACTS)
async def contact_page(request: Request) -> Response:
    """One person's profile across every webinar, with their engagement score."""
    contact_id: int = request.path_params["contact_id"]
    found = await profiles.profile(contact_id, auth.utcnow()) if contact_id < 2**31 else None
    if found is None:
        return render_error(
            request, status=404, title="Contact not found", message="This contact does not exist."
        )
    domain = found.contact.company_domain
    return render(
        request,
        "admin/contact.html",
        {
            "profile": found,
            "company": (await accounts.company_names([domain])).get(domain, ""),
            "account_key": (await accounts.account_keys([domain])).get(domain, ""),
            "formula": people.SCORE_FORMULA,
            "sample": await demo_history.is_sample_contact(found.contact.id),
            "active": "/admin/contacts",
        },
    )


# --- Accounts ---------------------------------------------------------------------------------


async def _onboarding_webinar(request: Request) -> Webinar | None:
    raw = request.query_params.get("onboarding", "")
    return await Webinar.get_or_none(id=int(raw)) if raw.isdigit() and len(raw) <= 9 else None


@staff_route(Permission.VIEW_CONTACTS)
async def accounts_page(request: Request) -> Response:
    """Companies with their people, and which of them attended the onboarding webinar."""
    webinar = await _onboarding_webinar(request)
    query = request.query_params.get("q", "").strip()[:200]
    state = request.query_params.get("state", "")
    if webinar is None or state not in accounts.ONBOARDING_STATES:
        state = ""
    rows = await accounts.account_rows(
        now=auth.utcnow(), onboarding_webinar_id=webinar.id if webinar else None
    )
    totals = {key: 0 for key in accounts.ONBOARDING_STATES}
    for row in rows:
        if row.onboarding:
            totals[row.onboarding] += 1
    if query:
        wanted = query.lower()
        rows = [
            row
            for row in rows
            if wanted in row.name.lower() or any(wanted in domain for domain in row.domains)
        ]
    if state:
        rows = [row for row in rows if row.onboarding == state]
    total = len(rows)
    pages = max(1, (total + accounts.PAGE_SIZE - 1) // accounts.PAGE_SIZE)
    page = min(_page_number(request), pages)
    return render(
        request,
        "admin/accounts.html",
        {
            "rows": rows[(page - 1) * accounts.PAGE_SIZE : page * accounts.PAGE_SIZE],
            "total": total,
            "page": page,
            "pages": pages,
            "q": query,
            "state": state,
            "states": accounts.ONBOARDING_STATES,
            "totals": totals,
            "onboarding": webinar,
            "webinars": await Webinar.all().order_by("title", "id").values_list("id", "title"),
            "active": "/admin/accounts",
        },
    )


def _account_missing(request: Request) -> Response:
    return render_error(
        request,
        status=404,
        title="Account not found",
        message="No account has this name or domain (any more). Go back to the list of accounts.",
    )


async def _account_view(
    request: Request,
    ref: accounts.AccountRef,
    *,
    form: dict[str, str] | None = None,
    errors: FormErrors | None = None,
    merge_error: str = "",
    merge_into: str = "",
    status: int = 200,
) -> Response:
    listed = await accounts.account_people(ref, page=_page_number(request), now=auth.utcnow())
    return render(
        request,
        "admin/account.html",
        {
            "ref": ref,
            "listed": listed,
            "form": form
            or {"name": ref.name, "domains": "\n".join(ref.domains), "notes": ref.notes},
            "errors": errors.errors if errors else {},
            "merge_error": merge_error,
            "error": "Check the highlighted fields." if errors else "",
            "merge_into": merge_into,
            "account_names": await accounts.names(),
            "can_edit": _can_edit(request),
            "notice": _NOTICES.get(request.query_params.get("done", ""), ""),
            "active": "/admin/accounts",
        },
        status=status,
    )


@staff_route(Permission.VIEW_CONTACTS)
async def account_page(request: Request) -> Response:
    """One account: its people with their attendance, and (for editors) its name and domains."""
    key = request.path_params["account_key"]
    ref = await accounts.resolve(key)
    if ref is None:
        return _account_missing(request)
    if ref.key != key:  # a domain that an account holds: show that account
        return RedirectResponse(f"/admin/accounts/{ref.key}", status_code=303)
    return await _account_view(request, ref)


async def _form(request: Request, *names: str) -> dict[str, str]:
    raw = await request.form()
    values = {name: str(raw.get(name) or "")[:FIELD_MAX] for name in names}
    await raw.close()
    return values


async def _audit(request: Request, action: str, target: str, details: dict[str, Any]) -> None:
    await audit.record(
        action=action,
        actor=staff_user(request),
        target=target[:255],
        ip=client_ip(request),
        details=details,
    )


@staff_route(Permission.EDIT_PEOPLE)
async def account_save(request: Request) -> Response:
    """Rename an account, change its domains or notes (an account by domain becomes a row)."""
    ref = await accounts.resolve(request.path_params["account_key"])
    if ref is None:
        return _account_missing(request)
    form = await _form(request, *ACCOUNT_FIELDS)
    checked = accounts.check_account(form)
    if isinstance(checked, FormErrors):
        return await _account_view(request, ref, form=form, errors=checked, status=400)
    saved = await accounts.save_account(checked, ref.row)
    if isinstance(saved, FormErrors):
        return await _account_view(request, ref, form=form, errors=saved, status=400)
    await _audit(
        request,
        "account.saved",
        f"account {saved.id} ({saved.name})",
        {"name": saved.name, "domains": saved.domains, "was": ref.key},
    )
    return RedirectResponse(f"/admin/accounts/{saved.id}?done=saved", status_code=303)


@staff_route(Permission.EDIT_PEOPLE)
async def account_merge(request: Request) -> Response:
    """Merge this account into another: one company with the domains of both."""
    source = await accounts.resolve(request.path_params["account_key"])
    if source is None:
        return _account_missing(request)
    typed = (await _form(request, "into"))["into"][:300]
    target = await accounts.find(typed)
    merged = target if isinstance(target, str) else await accounts.merge_accounts(source, target)
    if isinstance(merged, str):
        return await _account_view(
            request, source, merge_error=merged, merge_into=typed, status=400
        )
    await _audit(
        request,
        "account.merged",
        f"account {merged.id} ({merged.name})",
        {"from": source.key, "domains": merged.domains},
    )
    return RedirectResponse(f"/admin/accounts/{merged.id}?done=merged", status_code=303)


@staff_route(Permission.EDIT_PEOPLE)
async def account_delete(request: Request) -> Response:
    """Remove an account's row: its domains are accounts of their own again."""
    ref = await accounts.resolve(request.path_params["account_key"])
    if ref is None or ref.row is None:
        return _account_missing(request)
    await accounts.delete_account(ref.row)
    await _audit(
        request, "account.deleted", f"account {ref.key} ({ref.name})", {"domains": ref.domains}
    )
    return RedirectResponse("/admin/accounts", status_code=303)
