"""Counting people's views of landing pages, with a random first-party visitor cookie.

A view is counted for a GET from a browser: HEAD requests, prefetches and requests that say
they are a bot, crawler, link preview, monitor or script are not. The cookie holds nothing but
a random id (no personal value), lives on the landing pages' path only, and lets the dashboards
count each visitor once however often they come back.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from starlette.requests import Request
from starlette.responses import Response

from app.services import analytics_events, auth
from app.web.middleware import secure_cookies

VISITOR_COOKIE = "encore_visitor"
# Browsers keep a cookie for at most 400 days.
VISITOR_MAX_AGE = 400 * 24 * 3600
VISITOR_PATH = "/w/"
_AUTOMATED = re.compile(
    r"bot|crawl|spider|slurp|scrape|preview|facebookexternalhit|embedly|whatsapp|"
    r"headless|lighthouse|pingdom|monitor|uptime|curl|wget|python|httpx|aiohttp|java/|"
    r"go-http-client|okhttp|libwww|node-fetch|axios|postman",
    re.IGNORECASE,
)


def is_automated(request: Request) -> bool:
    """Whether a request comes from a program rather than a person's browser."""
    agent = request.headers.get("user-agent", "")
    if not agent or _AUTOMATED.search(agent):
        return True
    purpose = request.headers.get("sec-purpose", "") or request.headers.get("purpose", "")
    return "prefetch" in purpose.lower()


def count_landing_view(
    request: Request,
    response: Response,
    *,
    webinar_id: int,
    utm: Mapping[str, str],
    referrer: str,
) -> None:
    """Count a person's view of a landing page, giving a new visitor their cookie."""
    if request.method != "GET" or response.status_code != 200 or is_automated(request):
        return
    visitor = analytics_events.parse_visitor_id(request.cookies.get(VISITOR_COOKIE, ""))
    if visitor is None:
        visitor = analytics_events.new_visitor_id()
        response.set_cookie(
            VISITOR_COOKIE,
            visitor,
            max_age=VISITOR_MAX_AGE,
            path=VISITOR_PATH,
            httponly=True,
            samesite="lax",
            secure=secure_cookies(request.scope),
        )
    analytics_events.landing_view(
        webinar_id=webinar_id,
        visitor=visitor,
        at=auth.utcnow(),
        utm=dict(utm),
        referrer=referrer,
    )
