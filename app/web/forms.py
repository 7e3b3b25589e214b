"""Small helpers to read submitted forms into plain, bounded strings."""

from __future__ import annotations

from starlette.requests import Request


async def bounded_body(request: Request, limit: int) -> bytes | None:
    """The request body, or None as soon as it grows past `limit` bytes (nothing more is read)."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


async def form_fields(request: Request, *names: str, max_length: int = 2000) -> dict[str, str]:
    """The named fields of a submitted form as stripped strings ('' when absent)."""
    form = await request.form()
    values: dict[str, str] = {}
    for name in names:
        raw = form.get(name)
        values[name] = raw.strip()[:max_length] if isinstance(raw, str) else ""
    await form.close()
    return values


def safe_next(target: str | None, default: str = "/admin") -> str:
    """A local path to go to after sign-in; anything pointing elsewhere becomes the default."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return default
    return target
