"""A webinar's public landing page, its embeddable form, the theme stylesheet and registration.

Pages are rendered on the server in the webinar's language; session times are shown in the
visitor's zone (`?tz=`, which `static/js/landing.js` sets once from the browser's own zone).
"""

from __future__ import annotations

import asyncio
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit
from zoneinfo import ZoneInfo, available_timezones

from markupsafe import Markup
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response

from app import __version__, i18n
from app.models import Presenter, Webinar, WebinarStatus
from app.schedule import ScheduleRuleError, ScheduleRules, SlotKind, parse_zone
from app.services import auth, content, registration, sessions
from app.settings import get_settings
from app.web import access, visits
from app.web.forms import bounded_body
from app.web.middleware import framable_csp
from app.web.page_cache import landing_pages, registration_targets
from app.web.public_templating import not_found, render_public

UTM_KEYS = ("utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content")
UTM_MAX = 200
REFERRER_MAX = 500
WATCH_NOW = "now"
# A registration form is a few kilobytes; anything far beyond is not a person filling it in.
MAX_REGISTRATION_BYTES = 64 * 1024
MAX_FORM_FIELDS = 100
THEME_CACHE = "public, max-age=31536000, immutable"
_HEX = re.compile(r"[0-9a-fA-F]{6}")
_THEME_PARAMS = {"p": "primary", "b": "background", "t": "text"}


@dataclass(frozen=True)
class SessionChoice:
    """One radio of the session picker."""

    value: str  # what the form sends: the slot's UTC start in ISO 8601, or "now"
    label: str
    note: str = ""


@dataclass(frozen=True)
class Picker:
    """The session picker: the choices in the visitor's zone."""

    choices: list[SessionChoice]
    zone: ZoneInfo
    zone_label: str
    explicit_zone: bool  # the zone came from the visitor (no automatic switch any more)
    has_schedule: bool


# --- theme stylesheet --------------------------------------------------------------------------


def theme_query(theme: content.Theme) -> str:
    """The query string of the theme stylesheet for a theme."""
    return urlencode(
        {
            "p": theme.primary.lstrip("#"),
            "b": theme.background.lstrip("#"),
            "t": theme.text.lstrip("#"),
            "f": theme.font,
            "v": __version__,
        }
    )


def theme_stylesheet(theme: content.Theme) -> str:
    """CSS custom properties carrying a theme (the pages' stylesheet reads only these)."""
    return (
        ":root{"
        f"--primary:{theme.primary};--on-primary:{theme.on_primary};"
        f"--bg:{theme.background};--text:{theme.text};--font:{theme.font_stack}"
        "}\n"
    )


async def theme_css(request: Request) -> Response:
    """`/w/theme.css?p=&b=&t=&f=`: a theme as CSS variables, from its values alone (cacheable)."""
    # Stateless on purpose: the page names its colours in the URL, so the CSP needs no inline
    # style, a URL's answer never changes, and the editor can preview a theme it has not saved.
    params = request.query_params
    problems: list[str] = []
    for key in sorted(set(params.keys()) - {*_THEME_PARAMS, "f", "v"}):
        problems.append(f"{key}: unknown parameter")
    for key in sorted({*_THEME_PARAMS, "f", "v"} & set(params.keys())):
        if len(params.getlist(key)) > 1:
            problems.append(f"{key}: given more than once")
    values: dict[str, str] = {}
    for key, name in _THEME_PARAMS.items():
        value = params.get(key, "")
        if not _HEX.fullmatch(value):
            problems.append(f"{key}: {name} must be a colour of six hex digits, such as 4338ca")
        values[name] = f"#{value.lower()}"
    font = params.get("f", "")
    if font not in content.FONTS:
        problems.append(f"f: font must be one of {', '.join(content.FONTS)}")
    if problems:
        return PlainTextResponse("\n".join(problems) + "\n", status_code=400)
    theme = content.Theme(font=font, **values)
    return Response(
        theme_stylesheet(theme), media_type="text/css", headers={"Cache-Control": THEME_CACHE}
    )


# --- time zones ----------------------------------------------------------------------------------


@lru_cache(maxsize=1)
def zone_names() -> tuple[str, ...]:
    """Every IANA zone a visitor may pick, sorted."""
    return tuple(
        sorted(
            name
            for name in available_timezones()
            if name not in {"localtime", "Factory"} and not name.startswith(("posix/", "right/"))
        )
    )


@lru_cache(maxsize=128)
def zone_options(selected: str) -> Markup:
    """The <option>s of the zone select (about 600 of them, so rendered once per zone)."""
    return Markup("").join(
        Markup('<option value="{0}"{1}>{0}</option>').format(
            name, Markup(" selected") if name == selected else ""
        )
        for name in zone_names()
    )


def _zone_from(value: object) -> ZoneInfo | None:
    if value is None or value == "":
        return None
    try:
        return parse_zone(value)
    except ScheduleRuleError:
        return None


# --- the page ------------------------------------------------------------------------------------


async def published_webinar(slug: str) -> Webinar | None:
    """The published webinar behind a slug, or None."""
    if len(slug) > 80:
        return None
    return await Webinar.get_or_none(slug=slug, status=WebinarStatus.PUBLISHED)


async def presenters_of(webinar: Webinar) -> list[Presenter]:
    """A webinar's presenters in their page order."""
    return await Presenter.filter(webinar_id=webinar.id).order_by("position", "id")


async def _rules_of(webinar: Webinar) -> ScheduleRules | None:
    if webinar.id is None:  # an unsaved webinar in the editor's preview has no schedule yet
        return None
    return await sessions.load_rules(webinar)


def _starts_in(language: str, starts_at: datetime, now: datetime) -> str:
    minutes = max(1, math.ceil((starts_at - now).total_seconds() / 60))
    if minutes < 90:
        return i18n.ngettext(
            language, "Starts in %(num)d minute", "Starts in %(num)d minutes", minutes
        ) % {"num": minutes}
    hours = round(minutes / 60)
    return i18n.ngettext(language, "Starts in %(num)d hour", "Starts in %(num)d hours", hours) % {
        "num": hours
    }


async def picker_for(
    webinar: Webinar, language: str, now: datetime, wanted_zone: ZoneInfo | None, explicit: bool
) -> Picker:
    """The sessions a visitor may pick, with times in their zone (else the schedule's)."""
    rules = await _rules_of(webinar)
    if rules is None:
        zone = wanted_zone or ZoneInfo("UTC")
        return Picker([], zone, i18n.zone_label(zone, now), explicit, has_schedule=False)
    zone = wanted_zone or rules.zone
    offer = await sessions.offer(webinar, rules, now, viewer_zone=zone)
    choices = [
        SessionChoice(
            value=slot.starts_at.isoformat(),
            label=i18n.format_when(slot.starts_at, zone, language),
            note=_starts_in(language, slot.starts_at, now) if slot.kind is SlotKind.JIT else "",
        )
        for slot in offer.slots
    ]
    if offer.watch_now:
        choices.append(
            SessionChoice(
                WATCH_NOW,
                i18n.gettext(language, "Watch now"),
                i18n.gettext(language, "Start the recording right away"),
            )
        )
    return Picker(choices, zone, i18n.zone_label(zone, now), explicit, has_schedule=True)


def _paragraphs(text: str) -> list[str]:
    return [part.strip() for part in re.split(r"\n\s*\n", text or "") if part.strip()]


def _summary(landing: content.Landing, webinar: Webinar) -> str:
    text = landing.subheadline or " ".join((webinar.description or "").split())
    return text if len(text) <= 160 else text[:157].rsplit(" ", 1)[0] + "…"


def media_url(key: str) -> str:
    """The public URL of a stored image (logo, cover, presenter photo)."""
    return f"/media/{key}"


@dataclass(frozen=True)
class FormState:
    """What the registration form shows: the visitor's values, errors, and tracking fields."""

    values: Mapping[str, str]
    errors: Mapping[str, str]
    utm: Mapping[str, str]
    referrer: str


async def page_context(
    request: Request,
    webinar: Webinar,
    presenters: Sequence[Presenter],
    *,
    form: FormState,
    wanted_zone: ZoneInfo | None,
    explicit_zone: bool,
    embed: bool,
    preview: bool = False,
) -> dict[str, Any]:
    """Everything the landing and embed templates need."""
    language = i18n.language_or_default(webinar.language)
    now = auth.utcnow()
    theme = content.theme_from(webinar.theme)
    landing = content.landing_from(webinar.landing)
    base = get_settings().public_base_url.rstrip("/")
    path = f"/w/{webinar.slug}"
    picker = await picker_for(webinar, language, now, wanted_zone, explicit_zone)
    chosen = form.values.get("session", "")
    if chosen not in {choice.value for choice in picker.choices} and picker.choices:
        chosen = picker.choices[0].value
    # A summary entry links to its field; the session radios are reached through the first one.
    error_links = [
        (f"#reg-{key}" if key not in {"form", "session"} else "#reg-session-0", message)
        for key, message in form.errors.items()
        if key != "form" and (key != "session" or picker.choices)
    ]
    return {
        "webinar": webinar,
        "theme": theme,
        "landing": landing,
        "headline": landing.headline or webinar.title,
        "description": _paragraphs(webinar.description),
        "summary": _summary(landing, webinar),
        "presenters": list(presenters) if landing.show_presenters else [],
        "fields": content.fields_from(webinar.registration_fields),
        "theme_css": f"/w/theme.css?{theme_query(theme)}",
        "page_url": base + path,
        "og_image": base + media_url(theme.cover_key) if theme.cover_key else "",
        "logo_url": media_url(theme.logo_key) if theme.logo_key else "",
        "cover_url": media_url(theme.cover_key) if theme.cover_key else "",
        "media_url": media_url,
        "picker": picker,
        "zone_options": zone_options(picker.zone.key),
        "zone_action": f"{path}/embed" if embed else path,
        "chosen": chosen,
        "values": form.values,
        "errors": form.errors,
        "error_links": error_links,
        "utm": form.utm,
        "referrer": form.referrer,
        "embed": embed,
        "preview": preview,
        "action": f"{path}/register",
        "button_label": landing.button_label,
    }


def _utm_from(source: Mapping[str, str]) -> dict[str, str]:
    return {key: source[key][:UTM_MAX] for key in UTM_KEYS if source.get(key)}


def _outside_referrer(request: Request) -> str:
    """The Referer of a landing request, unless it is one of our own pages (a zone switch)."""
    referrer = request.headers.get("referer", "")[:REFERRER_MAX]
    parts = urlsplit(referrer)
    if parts.scheme not in {"http", "https"} or not parts.netloc:
        return ""
    own = {urlsplit(get_settings().public_base_url).netloc, request.url.netloc}
    return "" if parts.netloc in own else referrer


async def _render_page(
    request: Request,
    webinar: Webinar,
    *,
    form: FormState,
    wanted_zone: ZoneInfo | None,
    explicit_zone: bool,
    embed: bool,
    status: int = 200,
) -> HTMLResponse:
    presenters = [] if embed else await presenters_of(webinar)
    context = await page_context(
        request,
        webinar,
        presenters,
        form=form,
        wanted_zone=wanted_zone,
        explicit_zone=explicit_zone,
        embed=embed,
    )
    template = "public/embed.html" if embed else f"public/landing_{context['theme'].template}.html"
    return _respond(request, template, context, webinar=webinar, embed=embed, status=status)


def _respond(
    request: Request,
    template: str,
    context: Mapping[str, Any],
    *,
    webinar: Webinar,
    embed: bool,
    status: int = 200,
) -> HTMLResponse:
    headers = {}
    if embed:
        # The embed is made to sit in an iframe on any site that wants it: only these pages
        # may be framed; everything else (token pages above all) keeps frame-ancestors 'none'.
        headers["Content-Security-Policy"] = framable_csp(get_settings())
    if status != 200:
        headers["Cache-Control"] = "no-store"  # it holds what the visitor typed
    return render_public(
        request, template, context, language=webinar.language, status=status, headers=headers
    )


async def _get_page(request: Request, *, embed: bool) -> Response:
    slug = request.path_params["slug"]
    referrer = _outside_referrer(request)
    # Everything the page depends on besides the stored webinar and the time: see page_cache.
    key = (slug, embed, str(request.query_params), referrer)
    cached = landing_pages.get(key)
    if cached is not None:
        return cached
    webinar = await published_webinar(slug)
    if webinar is None:
        return not_found(request)
    query = request.query_params
    zone = _zone_from(query.get("tz"))
    form = FormState(values={}, errors={}, utm=_utm_from(query), referrer=referrer)
    response = await _render_page(
        request,
        webinar,
        form=form,
        wanted_zone=zone,
        explicit_zone="tz" in query,
        embed=embed,
    )
    landing_pages.put(key, response)
    _page_webinars[slug] = webinar.id
    return response


# The webinar of each slug rendered here, so that a page served from the cache counts too.
_page_webinars: dict[str, int] = {}


async def landing_page(request: Request) -> Response:
    """`GET /w/{slug}`: the landing page of a published webinar."""
    response = await _get_page(request, embed=False)
    webinar_id = _page_webinars.get(request.path_params["slug"])
    if webinar_id is not None:
        visits.count_landing_view(
            request,
            response,
            webinar_id=webinar_id,
            utm=_utm_from(request.query_params),
            referrer=_outside_referrer(request),
        )
    return response


async def embed_page(request: Request) -> Response:
    """`GET /w/{slug}/embed`: only the registration form, made for an iframe on another site."""
    return await _get_page(request, embed=True)


async def landing_response(
    request: Request,
    webinar: Webinar,
    presenters: Sequence[Presenter],
    *,
    preview: bool = False,
) -> HTMLResponse:
    """The landing page of a webinar as given (possibly unsaved); `preview` disables the form."""
    context = await page_context(
        request,
        webinar,
        presenters,
        form=FormState(values={}, errors={}, utm={}, referrer=""),
        wanted_zone=None,
        explicit_zone=preview,  # a preview shows the schedule's own zone, never switches
        embed=False,
        preview=preview,
    )
    template = f"public/landing_{context['theme'].template}.html"
    headers = {"Cache-Control": "no-store"} if preview else {}
    return render_public(request, template, context, language=webinar.language, headers=headers)


# --- registration --------------------------------------------------------------------------------


async def _read_form(request: Request) -> dict[str, str] | None:
    """The posted form's text fields (first value of each), or None when the body is too large."""
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > MAX_REGISTRATION_BYTES:
        return None
    raw = await bounded_body(request, MAX_REGISTRATION_BYTES)
    if raw is None:
        return None
    body = raw.decode("utf-8", errors="replace")
    values: dict[str, str] = {}
    if request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
        try:
            pairs = parse_qsl(body, keep_blank_values=True, max_num_fields=MAX_FORM_FIELDS)
        except ValueError:
            return None
        for key, value in pairs:
            values.setdefault(key, value)
    return values


def mask_email(email: str) -> str:
    """An address shown without revealing it whole: a•••@example.com."""
    local, _, domain = email.partition("@")
    return f"{local[:1]}•••@{domain}" if domain else "•••"


_Target = tuple[Webinar, ScheduleRules | None, registration.FormSpec]
# The read of each slug's target under way, with its event loop: requests that find no
# snapshot while it runs wait for it instead of each reading the same rows again (a crowd
# arriving as the snapshot expires would otherwise send one read per request).
_target_reads: dict[str, tuple[asyncio.AbstractEventLoop, asyncio.Task[_Target | None]]] = {}


async def _registration_target(slug: str) -> _Target | None:
    """The published webinar, its rules and parsed form, read at most every few seconds."""
    known = registration_targets.get(slug)
    if known is not None:
        return known
    loop = asyncio.get_running_loop()
    reading = _target_reads.get(slug)
    if reading is None or reading[0] is not loop or reading[1].done():
        task = loop.create_task(_read_target(slug))
        reading = _target_reads[slug] = (loop, task)
        task.add_done_callback(lambda done: _forget_read(slug, done))
    # Shielded: one waiter giving up does not cancel the read for the others.
    return await asyncio.shield(reading[1])


def _forget_read(slug: str, task: asyncio.Task[_Target | None]) -> None:
    reading = _target_reads.get(slug)
    if reading is not None and reading[1] is task:
        del _target_reads[slug]


async def _read_target(slug: str) -> _Target | None:
    webinar = await published_webinar(slug)
    if webinar is None:
        return None  # not kept: it may be published any moment
    target = (webinar, await sessions.load_rules(webinar), registration.form_spec(webinar))
    registration_targets.put(slug, target)
    return target


async def register(request: Request) -> Response:
    """`POST /w/{slug}/register`: register, then the thank-you page (or the form with errors)."""
    target = await _registration_target(request.path_params["slug"])
    if target is None:
        return not_found(request)
    webinar, rules, spec = target
    form = await _read_form(request)
    if form is None:
        message = i18n.gettext(webinar.language, "This form submission is too large.")
        return PlainTextResponse(message, status_code=413)
    embed = form.get("embed") == "1"
    utm = _utm_from(form)
    referrer = form.get("referrer", "")[:REFERRER_MAX]
    try:
        result = await registration.register(
            webinar=webinar,
            form=form,
            client=access.client_ip(request),
            now=auth.utcnow(),
            utm=utm,
            referrer=referrer,
            rules=rules,
            spec=spec,
        )
    except registration.RegistrationError as error:
        if error.status == 404:
            return not_found(request, language=webinar.language)
        # The visitor's input comes back, except the honeypot (a person never fills it in).
        kept = {key: value for key, value in form.items() if key != "website"}
        state = FormState(values=kept, errors=error.errors, utm=utm, referrer=referrer)
        return await _render_page(
            request,
            webinar,
            form=state,
            wanted_zone=_zone_from(form.get("timezone")),
            explicit_zone=True,  # never switch zones (reload) over a page holding errors
            embed=embed,
            status=error.status,
        )
    if result.created and result.token:
        thanks = f"/j/{result.token}/registered"
        if not embed:
            return RedirectResponse(thanks, status_code=303)
        context = {"webinar": webinar, "thanks_url": thanks, "state": "done"}
        return _embed_result(request, webinar, context)
    await result.registrant.fetch_related("contact")
    context = {
        "webinar": webinar,
        "masked_email": mask_email(result.registrant.contact.email),
        "link_emailed": result.link_emailed,
        "state": "already",
    }
    if embed:
        return _embed_result(request, webinar, context)
    theme = content.theme_from(webinar.theme)
    context.update(theme=theme, theme_css=f"/w/theme.css?{theme_query(theme)}")
    return _respond(request, "public/already.html", context, webinar=webinar, embed=False)


def _embed_result(request: Request, webinar: Webinar, context: dict[str, Any]) -> HTMLResponse:
    theme = content.theme_from(webinar.theme)
    context.update(theme=theme, theme_css=f"/w/theme.css?{theme_query(theme)}", embed=True)
    response = _respond(request, "public/embed.html", context, webinar=webinar, embed=True)
    response.headers["Cache-Control"] = "no-store"
    return response
