"""What every channel is to the app: started, stopped, and a sender the outbox worker delivers through.

A channel parses what its platform delivers into `Incoming`, hands it to the assistant (through
`LeasedReplies`, so replies commit with the answer and leave in order), and renders the typed
`Reply` objects back in its platform's terms. The app starts a list of channels and stops them
in reverse order.
"""

from __future__ import annotations

from typing import Protocol


class Sender(Protocol):
    """Delivers one outbox row (bot.core.messages.to_payload) to a chat; returns the platform's message id."""

    async def send(self, chat_id: str, payload: dict) -> str | None:
        """Send (or raise bot.runtime.staff.SendError: retry later, or permanent)."""


class Channel(Protocol):
    """One way citizens (and staff) reach MIA."""

    name: str  # "telegram" | "whatsapp" | "web" | "console": the Incoming.channel of its messages
    sender: Sender  # what the outbox worker sends this channel's rows through

    async def start(self) -> None:
        """Begin receiving; replies a previous run left unsent go out."""

    async def stop(self) -> None:
        """Stop receiving; let the sends in hand finish for a moment."""
