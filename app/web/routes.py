"""The URL table of the web process."""

from __future__ import annotations

from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from app.web import (
    admin,
    analytics_pages,
    auth_pages,
    captions,
    console_pages,
    contact_pages,
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


def build_routes() -> list[BaseRoute]:
    """Every route."""
    routes: list[BaseRoute] = [
        Route("/", pages.home, methods=GET),
        Route("/healthz", pages.healthz, methods=GET),
        Route("/readyz", pages.readyz, methods=GET),
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
        Route("/admin/webinars/{webinar_id:int}", webinar_admin.webinar_edit, methods=FORM),
        Route(
            "/admin/webinars/{webinar_id:int}/preview", webinar_admin.webinar_preview, methods=POST
        ),
        Route(
            "/admin/webinars/{webinar_id:int}/publish", webinar_admin.webinar_publish, methods=POST
        ),
        Route(
            "/admin/webinars/{webinar_id:int}/unpublish",
            webinar_admin.webinar_unpublish,
            methods=POST,
        ),
        Route(
            "/admin/webinars/{webinar_id:int}/duplicate",
            webinar_admin.webinar_duplicate,
            methods=POST,
        ),
        Route(
            "/admin/webinars/{webinar_id:int}/archive", webinar_admin.webinar_archive, methods=POST
        ),
        Route("/admin/webinars/{webinar_id:int}/share", webinar_admin.webinar_share, methods=GET),
        # The schedule tab: anyone who sees webinars may look, editors may change it.
        Route(
            "/admin/webinars/{webinar_id:int}/schedule", schedule_admin.schedule_page, methods=GET
        ),
        Route(
            "/admin/webinars/{webinar_id:int}/schedule", schedule_admin.schedule_save, methods=POST
        ),
        # The interactions tab: polls, offers and the rest, placed on the video's timeline.
        Route(
            "/admin/webinars/{webinar_id:int}/interactions",
            interaction_admin.interactions_page,
            methods=GET,
        ),
        Route(
            "/admin/webinars/{webinar_id:int}/interactions/new",
            interaction_admin.interaction_new,
            methods=GET,
        ),
        Route(
            "/admin/webinars/{webinar_id:int}/interactions/new",
            interaction_admin.interaction_save,
            methods=POST,
        ),
        Route(
            "/admin/webinars/{webinar_id:int}/interactions/{interaction_id:int}",
            interaction_admin.interaction_page,
            methods=GET,
        ),
        Route(
            "/admin/webinars/{webinar_id:int}/interactions/{interaction_id:int}",
            interaction_admin.interaction_save,
            methods=POST,
        ),
        Route(
            "/admin/webinars/{webinar_id:int}/interactions/{interaction_id:int}/duplicate",
            interaction_admin.interaction_duplicate,
            methods=POST,
        ),
        Route(
            "/admin/webinars/{webinar_id:int}/interactions/{interaction_id:int}/delete",
            interaction_admin.interaction_delete,
            methods=POST,
        ),
        # The emails tab: the sequence of reminders and follow-ups.
        Route("/admin/webinars/{webinar_id:int}/emails", email_admin.emails_page, methods=GET),
        Route(
            "/admin/webinars/{webinar_id:int}/emails/late",
            email_admin.late_rule_save,
            methods=POST,
        ),
        Route("/admin/webinars/{webinar_id:int}/emails/new", email_admin.step_new, methods=GET),
        Route("/admin/webinars/{webinar_id:int}/emails/new", email_admin.step_save, methods=POST),
        Route(
            "/admin/webinars/{webinar_id:int}/emails/{step_id:int}",
            email_admin.step_page,
            methods=GET,
        ),
        Route(
            "/admin/webinars/{webinar_id:int}/emails/{step_id:int}",
            email_admin.step_save,
            methods=POST,
        ),
        # The room tab: chat mode and rules, the recording notice, welcome and end screen.
        Route("/admin/webinars/{webinar_id:int}/room", room_admin.room_page, methods=GET),
        Route("/admin/webinars/{webinar_id:int}/room", room_admin.room_save, methods=POST),
        Route("/admin/media", media_pages.media, methods=GET),
        Route("/admin/media/status", media_pages.video_status, methods=GET),
        Route("/admin/media/{video_id:int}", media_pages.video_page, methods=GET),
        Route("/admin/media/{video_id:int}/cancel", media_pages.video_cancel, methods=POST),
        Route("/admin/media/{video_id:int}/retry", media_pages.video_retry, methods=POST),
        Route("/admin/media/{video_id:int}/captions", captions.captions_page, methods=FORM),
        Route(
            "/admin/media/{video_id:int}/captions/{caption_id:int}/delete",
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
            "/admin/analytics/webinars/{webinar_id:int}",
            analytics_pages.webinar_dashboard,
            methods=GET,
        ),
        Route(
            "/admin/analytics/webinars/{webinar_id:int}/{chart}.csv",
            analytics_pages.webinar_csv,
            methods=GET,
        ),
        # People: contacts across webinars, their companies (accounts) and saved segments.
        Route("/admin/contacts", contact_pages.contacts, methods=GET),
        Route("/admin/contacts/{contact_id:int}", contact_pages.contact_page, methods=GET),
        Route("/admin/accounts", contact_pages.accounts_page, methods=GET),
        Route("/admin/accounts/{account_key}", contact_pages.account_page, methods=GET),
        Route("/admin/accounts/{account_key}", contact_pages.account_save, methods=POST),
        Route("/admin/accounts/{account_key}/merge", contact_pages.account_merge, methods=POST),
        Route("/admin/accounts/{account_key}/delete", contact_pages.account_delete, methods=POST),
        Route("/admin/segments", segment_pages.segments_page, methods=GET),
        Route("/admin/segments/new", segment_pages.segment_new, methods=GET),
        Route("/admin/segments/new", segment_pages.segment_save, methods=POST),
        Route("/admin/segments/check", segment_pages.segment_check, methods=POST),
        Route("/admin/segments/export.csv", segment_pages.segment_export_typed, methods=POST),
        Route("/admin/segments/{segment_id:int}", segment_pages.segment_page, methods=GET),
        Route("/admin/segments/{segment_id:int}", segment_pages.segment_save, methods=POST),
        Route(
            "/admin/segments/{segment_id:int}/export.csv",
            segment_pages.segment_export,
            methods=GET,
        ),
        Route(
            "/admin/segments/{segment_id:int}/delete", segment_pages.segment_delete, methods=POST
        ),
        Route("/admin/outbox", admin.outbox, methods=GET),
        Route("/admin/outbox/{message_id:int}", admin.outbox_message, methods=GET),
        Route("/admin/team", admin.team_page, methods=GET),
        Route("/admin/team/invite", admin.team_invite, methods=POST),
        Route("/admin/team/invites/{invite_id:int}/revoke", admin.team_invite_revoke, methods=POST),
        Route("/admin/team/{user_id:int}/role", admin.team_member_role, methods=POST),
        Route("/admin/team/{user_id:int}/active", admin.team_member_active, methods=POST),
        Route("/admin/team/{user_id:int}/reset-2fa", admin.team_member_reset_2fa, methods=POST),
        Route("/admin/settings", admin.settings_page, methods=FORM),
        Route("/admin/settings/security", admin.settings_security, methods=POST),
        Route("/admin/settings/sender", admin.settings_sender, methods=POST),
        Route("/admin/settings/sender/dkim-key", admin.settings_sender_dkim_key, methods=POST),
        Route("/admin/settings/sender/check", admin.settings_sender_check, methods=POST),
        Route("/admin/settings/analytics", admin.settings_analytics, methods=POST),
        Route("/admin/audit", admin.audit_log, methods=GET),
        # Public webinar pages. theme.css comes before /w/{slug}, which would otherwise take it.
        Route("/w/theme.css", landing.theme_css, methods=GET),
        Route("/w/{slug}", landing.landing_page, methods=GET),
        Route("/w/{slug}/register", landing.register, methods=POST),
        Route("/w/{slug}/embed", landing.embed_page, methods=GET),
        # A registrant's own pages, reached through the personal token of their link.
        Route("/j/{token}/registered", join_pages.thanks, methods=GET),
        Route("/j/{token}/calendar.ics", join_pages.calendar_file, methods=GET),
        Route("/j/{token}/files/{interaction_id:int}", download_pages.download, methods=GET),
        Route("/j/{token}", join_pages.join, methods=GET),
        # The unsubscribe link of every email to a contact (GET only shows; POST unsubscribes).
        Route("/u/{token}", unsubscribe_pages.page, methods=GET),
        Route("/u/{token}", unsubscribe_pages.submit, methods=POST),
        Route("/u/{token}/resubscribe", unsubscribe_pages.resubscribe, methods=POST),
        # Published video files only (local disk, or signed S3 playlists); never uploads.
        Route("/media/{key:path}", media_files.serve, methods=GET),
        Mount("/static", app=StaticFiles(directory=STATIC), name="static"),
    ]
    return routes
