"""The media storage backend chosen by settings."""

from __future__ import annotations

from app.settings import Settings, get_settings
from media.storage import LocalStorage, S3Storage, Storage


def build_storage(settings: Settings | None = None) -> Storage:
    """LocalStorage by default; S3Storage when MEDIA_BACKEND=s3."""
    settings = settings or get_settings()
    if settings.media_backend == "s3":
        return S3Storage(
            bucket=settings.s3_bucket,
            prefix=settings.s3_prefix,
            region=settings.s3_region or None,
            endpoint_url=settings.s3_endpoint_url or None,
            access_key_id=settings.s3_access_key_id or None,
            secret_access_key=settings.s3_secret_access_key or None,
            public_base_url=settings.s3_public_base_url or None,
        )
    return LocalStorage(root=settings.resolved_media_dir)
