"""Incoming, Reply, Button: the only types that channels and the core share."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Incoming:
    """One message from a citizen, as any channel delivers it."""

    channel: str  # "telegram" | "whatsapp" | "web" | "console"
    chat_id: str  # ids become str at the edge
    text: str  # a button press arrives as its payload
    message_id: str  # the platform's id: the key for de-duplication
    user_name: str | None = None
    location: tuple[float, float] | None = None


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
