"""Small helpers shared by the HTTP channels (web chat, WhatsApp and Telegram webhooks)."""

from __future__ import annotations

import hmac

from starlette.requests import Request


# A webhook update kept before its 200 and still unhandled this long after it came was left by a
# worker that stopped or died: any worker handles it then (a message id is handled once, whichever
# worker gets there).
ORPHAN_SECONDS = 20.0
# What a citizen reads when their message could not be answered after every attempt (the store may be
# down, so this is sent directly, not rendered from the content), Indonesian first, English second.
NOT_PROCESSED = ("Maaf, pesan Anda belum dapat kami proses karena ada gangguan pada sistem kami. "
                 "Silakan kirim ulang pesan Anda beberapa saat lagi.\n"
                 "Sorry, we could not process your message because of a problem on our side. "
                 "Please send it again in a little while.")


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


def is_unicode(text: str) -> bool:
    """False for text that cannot be stored (a lone surrogate such as "\\ud800" from JSON)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def same_secret(given: str, expected: str) -> bool:
    """Constant-time comparison of a secret from a request; any text (non-ASCII too) is just wrong."""
    return hmac.compare_digest(given.encode("utf-8", "surrogatepass"), expected.encode("utf-8", "surrogatepass"))
