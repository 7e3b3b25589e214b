"""Email library: compose messages and deliver them through a Mailer. Imports nothing from app/."""

from emails.mailers import Mailer, MemoryMailer, SendError, SmtpMailer, smtp_mailer_from_url
from emails.message import compose

__all__ = ["Mailer", "MemoryMailer", "SendError", "SmtpMailer", "compose", "smtp_mailer_from_url"]
