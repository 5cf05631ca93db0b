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


# What pressing a button does. A channel renders each kind its own way (Telegram callback data,
# WhatsApp reply ids, the web chat's payloads); none reads another's encoding.
SAY = "say"  # sends `payload` as if the citizen had typed it
CHOOSE = "choose"  # picks an answer from a "Maksud Anda yang mana?" menu (payload: the intent's title)
FEEDBACK = "feedback"  # the one-tap "was this helpful?" pair; a channel short of room may leave it out
CLAIM = "claim"  # staff: take the request `payload` (its reference)
CLOSE = "close"  # staff: mark the request `payload` done
DIGEST = "digest"  # operators: a decision on a digest row (payload: "add:ROW:N", "pick:ROW", "ign:ROW", "to:ROW:INTENT")
CITIZEN_ACTIONS = (SAY, CHOOSE, FEEDBACK)
STAFF_ACTIONS = (CLAIM, CLOSE, DIGEST)


@dataclass(frozen=True, slots=True)
class Button:
    """A reply option: its title and what pressing it does (`kind`, with `payload`).

    A citizen's button (say, choose, feedback) sends `payload` as if typed; a staff button acts
    on the request or digest row named by `payload`.
    """

    title: str
    payload: str
    kind: str = SAY

    def __post_init__(self) -> None:
        if self.kind not in CITIZEN_ACTIONS + STAFF_ACTIONS:
            raise ValueError(f"unknown button kind {self.kind!r}")

    @property
    def says(self) -> bool:
        """True for a button that stands for something the citizen could have typed."""
        return self.kind in CITIZEN_ACTIONS


@dataclass(frozen=True, slots=True)
class Reply:
    """One message from MIA. `html`: the text is already Telegram-style HTML (staff notices)."""

    text: str
    buttons: tuple[Button, ...] = ()
    html: bool = False


# The outbox keeps a reply as JSON until it is sent; these two are the only reading and writing of it.
LEGACY_DATA = {"say:": SAY, "claim:": CLAIM, "done:": CLOSE, "dg:": DIGEST}  # rows written before typed buttons


def to_payload(reply: Reply, **extra) -> dict:
    """The outbox's JSON for `reply`; `extra` carries delivery details (edit, bind, template...)."""
    payload = {"text": reply.text, "buttons": [{"title": b.title, "payload": b.payload, "kind": b.kind}
                                               for b in reply.buttons]}
    if reply.html:
        payload["html"] = True
    payload.update(extra)
    return payload


def reply_of(payload: dict) -> Reply:
    """The typed reply an outbox row holds (rows of older versions included)."""
    buttons = []
    for b in payload.get("buttons") or ():
        if "kind" in b and "payload" in b:
            buttons.append(Button(b["title"], b["payload"], b["kind"]))
            continue
        data = b.get("data") or ""
        prefix = next((p for p in LEGACY_DATA if data.startswith(p)), None)
        buttons.append(Button(b["title"], data[len(prefix):] if prefix else b["title"],
                              LEGACY_DATA[prefix] if prefix else SAY))
    return Reply(payload.get("text", ""), tuple(buttons), bool(payload.get("html")))
