"""The URL table of the web process."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from app.web import (
    admin,
    analytics_pages,
    auth_pages,
    captions,
    console_pages,
    contact_pages,
    convertors,
    download_pages,
    email_admin,
    interaction_admin,
    join_pages,
    landing,
    media_files,
    media_pages,
    pages,
    room_admin,
    schedule_admin,
    segment_pages,
    unsubscribe_pages,
    uploads,
    webinar_admin,
)
from app.web.templating import STATIC

GET = ["GET"]
POST = ["POST"]
FORM = ["GET", "POST"]

Endpoint = Callable[[Request], Awaitable[Response]]

convertors.register()  # `{name:id}` and `{name:bigid}` in the paths below

# Every tab of the webinar editor lives below one webinar's address.
WEBINAR = "/admin/webinars/{webinar_id:id}"


def _page_and_save(path: str, page: Endpoint, save: Endpoint) -> list[BaseRoute]:
    """A form at one address: GET shows it, POST saves it."""
    return [Route(path, page, methods=GET), Route(path, save, methods=POST)]


def build_routes() -> list[BaseRoute]:
    """Every route."""
    routes: list[BaseRoute] = [
        Route("/", pages.home, methods=GET),
        Route("/healthz", pages.healthz, methods=GET),
        Route("/readyz", pages.readyz, methods=GET),
        # Public webinar pages, near the top: the router tries routes in order, and these are
        # what a crowd asks for (no other route starts with /w/). theme.css comes before
        # /w/{slug}, which would otherwise take it.
        Route("/w/theme.css", landing.theme_css, methods=GET),
        Route("/w/{slug}", landing.landing_page, methods=GET),
        Route("/w/{slug}/register", landing.register, methods=POST),
        Route("/w/{slug}/embed", landing.embed_page, methods=GET),
        # Staff sign-in
        Route("/login", auth_pages.login, methods=FORM),
        Route("/login/2fa", auth_pages.login_second_factor, methods=FORM),
        Route("/logout", auth_pages.logout, methods=POST),
        Route("/setup/{token}", auth_pages.setup, methods=FORM),
        Route("/invite/{token}", auth_pages.accept_invite, methods=FORM),
        Route("/reset", auth_pages.reset_request, methods=FORM),
        Route("/reset/{token}", auth_pages.reset_password, methods=FORM),
        Route("/account", auth_pages.account, methods=FORM),
        Route("/account/2fa", auth_pages.two_factor, methods=FORM),
        Route("/account/2fa/disable", auth_pages.two_factor_disable, methods=POST),
        Route("/account/2fa/recovery-codes", auth_pages.recovery_codes_renew, methods=POST),
        # Admin
        Route("/admin", admin.dashboard, methods=GET),
        # The webinar editor
        Route("/admin/webinars", webinar_admin.webinar_list, methods=GET),
        Route("/admin/webinars/new", webinar_admin.webinar_new, methods=FORM),
        *_webinar_editor_routes(),
        Route("/admin/media", media_pages.media, methods=GET),
        Route("/admin/media/status", media_pages.video_status, methods=GET),
        Route("/admin/media/{video_id:id}", media_pages.video_page, methods=GET),
        Route("/admin/media/{video_id:id}/cancel", media_pages.video_cancel, methods=POST),
        Route("/admin/media/{video_id:id}/retry", media_pages.video_retry, methods=POST),
        Route("/admin/media/{video_id:id}/captions", captions.captions_page, methods=FORM),
        Route(
            "/admin/media/{video_id:id}/captions/{caption_id:id}/delete",
            captions.caption_delete,
            methods=POST,
        ),
        # Uploads: tus to local disk, or presigned multipart straight to S3
        Route("/admin/uploads/tus", uploads.tus_collection, methods=["OPTIONS", "POST"]),
        Route(
            "/admin/uploads/tus/{upload_id}",
            uploads.tus_upload,
            methods=["HEAD", "PATCH", "DELETE"],
        ),
        Route("/admin/uploads/{upload_id}/finish", uploads.finish_upload, methods=POST),
        Route("/admin/uploads/s3", uploads.s3_start, methods=POST),
        Route("/admin/uploads/s3/{upload_id}", uploads.s3_upload, methods=["GET", "DELETE"]),
        Route("/admin/uploads/s3/{upload_id}/sign", uploads.s3_sign, methods=POST),
        Route("/admin/uploads/s3/{upload_id}/complete", uploads.s3_complete, methods=POST),
        Route("/admin/sessions", admin.sessions, methods=GET),
        # The presenter console; its live data comes over the Socket.IO hub.
        Route("/admin/console", console_pages.console, methods=GET),
        # Analytics: the overview across webinars, each webinar's dashboard, their CSV files.
        Route("/admin/analytics", analytics_pages.overview, methods=GET),
        Route("/admin/analytics/webinars.csv", analytics_pages.overview_csv, methods=GET),
        Route(
            "/admin/analytics/webinars/{webinar_id:id}",
            analytics_pages.webinar_dashboard,
            methods=GET,
        ),
        Route(
            "/admin/analytics/webinars/{webinar_id:id}/{chart}.csv",
            analytics_pages.webinar_csv,
            methods=GET,
        ),
        Route(
            "/admin/analytics/webinars/{webinar_id:id}/sample/remove",
            analytics_pages.sample_remove,
            methods=POST,
        ),
        *_people_routes(),
        Route("/admin/outbox", admin.outbox, methods=GET),
        Route("/admin/outbox/{message_id:bigid}", admin.outbox_message, methods=GET),
        Route("/admin/team", admin.team_page, methods=GET),
        Route("/admin/team/invite", admin.team_invite, methods=POST),
        Route("/admin/team/invites/{invite_id:id}/revoke", admin.team_invite_revoke, methods=POST),
        Route("/admin/team/{user_id:id}/role", admin.team_member_role, methods=POST),
        Route("/admin/team/{user_id:id}/active", admin.team_member_active, methods=POST),
        Route("/admin/team/{user_id:id}/reset-2fa", admin.team_member_reset_2fa, methods=POST),
        Route("/admin/settings", admin.settings_page, methods=FORM),
        Route("/admin/settings/security", admin.settings_security, methods=POST),
        Route("/admin/settings/sender", admin.settings_sender, methods=POST),
        Route("/admin/settings/sender/dkim-key", admin.settings_sender_dkim_key, methods=POST),
        Route("/admin/settings/sender/check", admin.settings_sender_check, methods=POST),
        Route("/admin/settings/analytics", admin.settings_analytics, methods=POST),
        Route("/admin/audit", admin.audit_log, methods=GET),
        # A registrant's own pages, reached through the personal token of their link.
        Route("/j/{token}/registered", join_pages.thanks, methods=GET),
        Route("/j/{token}/calendar.ics", join_pages.calendar_file, methods=GET),
        Route("/j/{token}/files/{interaction_id:id}", download_pages.download, methods=GET),
        Route("/j/{token}", join_pages.join, methods=GET),
        # The unsubscribe link of every email to a contact (GET only shows; POST unsubscribes).
        *_page_and_save("/u/{token}", unsubscribe_pages.page, unsubscribe_pages.submit),
        Route("/u/{token}/resubscribe", unsubscribe_pages.resubscribe, methods=POST),
        # Published video files only (local disk, or signed S3 playlists); never uploads.
        Route("/media/{key:path}", media_files.serve, methods=GET),
        Mount("/static", app=StaticFiles(directory=STATIC), name="static"),
    ]
    return routes


def _webinar_editor_routes() -> list[BaseRoute]:
    """One webinar's editor: its own actions, then its tabs."""
    interaction = f"{WEBINAR}/interactions/{{interaction_id:id}}"
    step = f"{WEBINAR}/emails/{{step_id:id}}"
    return [
        Route(WEBINAR, webinar_admin.webinar_edit, methods=FORM),
        Route(f"{WEBINAR}/preview", webinar_admin.webinar_preview, methods=POST),
        Route(f"{WEBINAR}/publish", webinar_admin.webinar_publish, methods=POST),
        Route(f"{WEBINAR}/unpublish", webinar_admin.webinar_unpublish, methods=POST),
        Route(f"{WEBINAR}/duplicate", webinar_admin.webinar_duplicate, methods=POST),
        Route(f"{WEBINAR}/archive", webinar_admin.webinar_archive, methods=POST),
        Route(f"{WEBINAR}/share", webinar_admin.webinar_share, methods=GET),
        # The schedule tab: anyone who sees webinars may look, editors may change it.
        *_page_and_save(
            f"{WEBINAR}/schedule", schedule_admin.schedule_page, schedule_admin.schedule_save
        ),
        # The interactions tab: polls, offers and the rest, placed on the video's timeline.
        Route(f"{WEBINAR}/interactions", interaction_admin.interactions_page, methods=GET),
        *_page_and_save(
            f"{WEBINAR}/interactions/new",
            interaction_admin.interaction_new,
            interaction_admin.interaction_save,
        ),
        *_page_and_save(
            interaction, interaction_admin.interaction_page, interaction_admin.interaction_save
        ),
        Route(f"{interaction}/duplicate", interaction_admin.interaction_duplicate, methods=POST),
        Route(f"{interaction}/delete", interaction_admin.interaction_delete, methods=POST),
        # The emails tab: the sequence of reminders and follow-ups.
        Route(f"{WEBINAR}/emails", email_admin.emails_page, methods=GET),
        Route(f"{WEBINAR}/emails/late", email_admin.late_rule_save, methods=POST),
        *_page_and_save(f"{WEBINAR}/emails/new", email_admin.step_new, email_admin.step_save),
        *_page_and_save(step, email_admin.step_page, email_admin.step_save),
        # The room tab: chat mode and rules, the recording notice, welcome and end screen.
        *_page_and_save(f"{WEBINAR}/room", room_admin.room_page, room_admin.room_save),
    ]


def _people_routes() -> list[BaseRoute]:
    """Contacts across webinars, their companies (accounts) and saved segments."""
    account = "/admin/accounts/{account_key}"
    segment = "/admin/segments/{segment_id:id}"
    return [
        Route("/admin/contacts", contact_pages.contacts, methods=GET),
        Route("/admin/contacts/{contact_id:id}", contact_pages.contact_page, methods=GET),
        Route("/admin/accounts", contact_pages.accounts_page, methods=GET),
        *_page_and_save(account, contact_pages.account_page, contact_pages.account_save),
        Route(f"{account}/merge", contact_pages.account_merge, methods=POST),
        Route(f"{account}/delete", contact_pages.account_delete, methods=POST),
        Route("/admin/segments", segment_pages.segments_page, methods=GET),
        *_page_and_save(
            "/admin/segments/new", segment_pages.segment_new, segment_pages.segment_save
        ),
        Route("/admin/segments/check", segment_pages.segment_check, methods=POST),
        Route("/admin/segments/export.csv", segment_pages.segment_export_typed, methods=POST),
        *_page_and_save(segment, segment_pages.segment_page, segment_pages.segment_save),
        Route(f"{segment}/export.csv", segment_pages.segment_export, methods=GET),
        Route(f"{segment}/delete", segment_pages.segment_delete, methods=POST),
    ]
