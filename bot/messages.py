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
    """A reply option; pressing it sends `payload` as if typed."""

    title: str
    payload: str


@dataclass(frozen=True, slots=True)
class Reply:
    """One message from MIA."""

    text: str
    buttons: tuple[Button, ...] = ()
