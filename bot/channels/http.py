"""Small helpers shared by the HTTP channels (web chat, WhatsApp webhook)."""

from __future__ import annotations

from starlette.requests import Request


class BodyTooLarge(Exception):
    """The request body is over the limit; answer 413 and read no further."""


async def read_body(request: Request, limit: int) -> bytes:
    """The raw body, refusing (BodyTooLarge) anything over `limit` bytes without buffering it all."""
    if int(request.headers.get("content-length") or 0) > limit:
        raise BodyTooLarge
    raw = b""
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > limit:
            raise BodyTooLarge
    return raw
