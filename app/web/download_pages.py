"""`/j/{token}/files/{interaction_id}`: a file the live room offers, fetched by a registrant.

The join token is the only key, as on the other token pages. Each fetch is recorded as an
analytics event (kind `download`). Local files are streamed as an attachment under their
original name; from S3 the browser is sent to a short-lived presigned URL instead.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import FileResponse, RedirectResponse, Response

from app.models import Webinar
from app.services import auth, downloads, registration
from app.web.media_files import current_storage
from app.web.public_templating import TOKEN_PAGE_HEADERS, not_found
from media.storage import LocalStorage

# Long enough to start the download, too short to be worth passing on.
PRESIGNED_SECONDS = 120


async def download(request: Request) -> Response:
    """Send a registrant the file of a download interaction of their webinar."""
    registrant = await registration.find_by_token(request.path_params["token"])
    if registrant is None or not isinstance(registrant.webinar, Webinar):
        return not_found(request, headers=TOKEN_PAGE_HEADERS)
    language = registrant.webinar.language
    interaction = await downloads.download_for(registrant, request.path_params["interaction_id"])
    if interaction is None:
        return not_found(request, language=language, headers=TOKEN_PAGE_HEADERS)
    config = interaction.config or {}
    key = str(config["file_key"])
    storage = current_storage()
    counted = request.method == "GET"  # a HEAD request fetches nothing
    if isinstance(storage, LocalStorage):
        path = storage.path(key)
        if not path.is_file():
            return not_found(request, language=language, headers=TOKEN_PAGE_HEADERS)
        if counted:
            await downloads.record_download(
                registrant=registrant, interaction=interaction, now=auth.utcnow()
            )
        return FileResponse(
            path,
            media_type=downloads.served_type(str(config.get("content_type", ""))),
            filename=downloads.display_file_name(str(config.get("file_name", ""))),
            content_disposition_type="attachment",
            headers=TOKEN_PAGE_HEADERS,
        )
    if counted:
        await downloads.record_download(
            registrant=registrant, interaction=interaction, now=auth.utcnow()
        )
    url = storage.url(key, expires_in=PRESIGNED_SECONDS)
    return RedirectResponse(url, status_code=302, headers=TOKEN_PAGE_HEADERS)
