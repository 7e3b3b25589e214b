"""The media storage backend chosen by settings."""

from __future__ import annotations

from functools import lru_cache

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


@lru_cache(maxsize=4)
def _storage_for(settings: Settings) -> Storage:
    return build_storage(settings)


def shared_storage() -> Storage:
    """The configured storage, built once per settings (an S3 client is not cheap)."""
    return _storage_for(get_settings())
