"""Incoming, Reply, Button: the only types that channels and the core share."""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass


def visible_text(text: str) -> str:
    """Text as a person reads it: no control characters but line breaks and tabs, no invisible
    format characters (zero-width spaces, bidi overrides such as U+202E that make
    "\u202e0987-6543-2180" display as another number)."""
    return "".join(ch for ch in text if ch in "\n\t" or unicodedata.category(ch) not in ("Cc", "Cf", "Co", "Cs"))


def option_number(text: str, count: int) -> int | None:
    """The 1-based option a typed answer picks ("2", "2."), or None: ASCII digits only ("²" and
    "①" pass str.isdigit() but are no number int() reads) and within 1..count."""
    number = text.strip().rstrip(".")
    if number.isascii() and number.isdigit() and len(number) <= 3 and 0 < int(number) <= count:
        return int(number)
    return None


@dataclass(frozen=True, slots=True)
class Incoming:
    """One message from a citizen, as any channel delivers it."""

    channel: str  # "telegram" | "whatsapp" | "web" | "console"
    chat_id: str  # ids become str at the edge
    text: str  # a button press arrives as its payload
    message_id: str  # the platform's id: the key for de-duplication
    user_name: str | None = None
    location: tuple[float, float] | None = None
    media: str | None = None  # "photo", "voice", "video", "document", "sticker", "contact", "reaction"; text = caption


@dataclass(frozen=True, slots=True)
class Button:
    """A reply option; pressing it sends `payload` as if typed.

    `kind` "feedback" marks the one-tap "was this helpful?" pair, which a channel short of room
    for buttons (WhatsApp: three) may leave out.
    """

    title: str
    payload: str
    kind: str = "say"


@dataclass(frozen=True, slots=True)
class Reply:
    """One message from MIA."""

    text: str
    buttons: tuple[Button, ...] = ()
