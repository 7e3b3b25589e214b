"""What each role may do. Every admin route names one permission; this table grants it."""

from __future__ import annotations

from enum import StrEnum

from app.models.staff import Role


class Permission(StrEnum):
    """One capability in the admin."""

    VIEW_DASHBOARD = "view_dashboard"
    VIEW_WEBINARS = "view_webinars"
    EDIT_WEBINARS = "edit_webinars"
    MANAGE_MEDIA = "manage_media"
    VIEW_SESSIONS = "view_sessions"
    MODERATE = "moderate"
    VIEW_ANALYTICS = "view_analytics"
    VIEW_CONTACTS = "view_contacts"
    EDIT_PEOPLE = "edit_people"  # rename and merge accounts, save and delete segments
    VIEW_OUTBOX = "view_outbox"
    MANAGE_TEAM = "manage_team"
    MANAGE_SETTINGS = "manage_settings"
    MANAGE_SECURITY = "manage_security"
    VIEW_AUDIT = "view_audit"


P = Permission

ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.OWNER: frozenset(Permission),
    Role.ADMIN: frozenset(Permission) - {P.MANAGE_SECURITY, P.VIEW_AUDIT},
    Role.EDITOR: frozenset(
        {
            P.VIEW_DASHBOARD,
            P.VIEW_WEBINARS,
            P.EDIT_WEBINARS,
            P.MANAGE_MEDIA,
            P.VIEW_SESSIONS,
            P.VIEW_ANALYTICS,
            P.VIEW_CONTACTS,
            P.EDIT_PEOPLE,
            P.VIEW_OUTBOX,
        }
    ),
    Role.MODERATOR: frozenset(
        {P.VIEW_DASHBOARD, P.VIEW_WEBINARS, P.VIEW_SESSIONS, P.MODERATE, P.VIEW_CONTACTS}
    ),
    Role.ANALYST: frozenset(
        {P.VIEW_DASHBOARD, P.VIEW_WEBINARS, P.VIEW_SESSIONS, P.VIEW_ANALYTICS, P.VIEW_CONTACTS}
    ),
}

ROLE_DESCRIPTIONS: dict[Role, str] = {
    Role.OWNER: "Everything, including security settings, the audit log and other owners.",
    Role.ADMIN: "Everything except security settings and the audit log; manages the team.",
    Role.EDITOR: "Creates and edits webinars, media and emails; sees analytics.",
    Role.MODERATOR: "Runs the live room: chat, questions and polls.",
    Role.ANALYST: "Reads analytics and contacts; changes nothing.",
}


def can(role: Role, permission: Permission) -> bool:
    """Whether a role holds a permission."""
    return permission in ROLE_PERMISSIONS[role]


def assignable_roles(actor_role: Role) -> list[Role]:
    """Roles a user with `actor_role` may give to others: only owners make owners."""
    if actor_role == Role.OWNER:
        return list(Role)
    if can(actor_role, Permission.MANAGE_TEAM):
        return [r for r in Role if r != Role.OWNER]
    return []
