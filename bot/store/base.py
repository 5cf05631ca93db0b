"""The Store contract shared by every storage back end, and the conversation state it keeps."""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass
class ConversationState:
    """What MIA remembers of one conversation between messages."""

    lang: str = "id"
    pending: str | None = None  # what MIA asked and waits for, e.g. "office_for_region"
    data: dict[str, Any] = field(default_factory=dict)


class Unit(Protocol):
    """Operations inside one transaction."""

    async def claim_message(self, channel: str, message_id: str) -> bool: ...

    async def load_state(self, channel: str, chat_id: str) -> ConversationState: ...

    async def save_state(self, channel: str, chat_id: str, state: ConversationState) -> None: ...

    async def log_turn(
        self,
        channel: str,
        chat_id: str,
        text: str,
        intent: str | None,
        confidence: float,
        region: str | None,
        office: str | None,
        reply: str,
    ) -> None: ...


class Store(Protocol):
    """Where conversations live, so that a restart or a second worker continues them."""

    async def open(self) -> None: ...

    async def close(self) -> None: ...

    def unit(self) -> AbstractAsyncContextManager[Unit]: ...

    async def recent_turns(self, channel: str, chat_id: str, limit: int = 10) -> list[dict]: ...
