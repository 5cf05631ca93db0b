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


@dataclass(frozen=True)
class CallbackRequest:
    """A confirmed Lapor Rakit request: an officer is asked to visit a sick applicant."""

    ref: str
    channel: str
    chat_id: str
    office: str
    region: str
    fields: dict[str, Any]
    status: str  # "open" | "claimed" | "done"
    created_at: float
    claimed_by: str | None = None
    claimed_at: float | None = None
    done_by: str | None = None
    done_at: float | None = None


@dataclass(frozen=True)
class OutboxItem:
    """A message waiting to leave: to a staff chat or to a citizen."""

    id: int
    channel: str
    chat_id: str
    payload: dict[str, Any]
    attempts: int
    next_attempt_at: float


class Unit(Protocol):
    """Operations inside one transaction."""

    async def claim_message(self, channel: str, message_id: str) -> bool: ...

    async def load_state(self, channel: str, chat_id: str) -> ConversationState: ...

    async def claim_and_load(self, channel: str, message_id: str, chat_id: str) -> ConversationState | None: ...

    async def save_state(self, channel: str, chat_id: str, state: ConversationState) -> None: ...

    async def create_request(self, channel: str, chat_id: str, office: str, region: str,
                             fields: dict) -> CallbackRequest: ...

    async def get_request(self, ref: str) -> CallbackRequest | None: ...

    async def latest_request(self, channel: str, chat_id: str) -> CallbackRequest | None: ...

    async def set_request_status(self, ref: str, status: str, by: str) -> None: ...

    async def enqueue(self, channel: str, chat_id: str, payload: dict) -> int: ...

    async def enqueue_many(self, channel: str, chat_id: str, payloads: list[dict], lease_seconds: float = 0.0
                           ) -> list[int]: ...

    async def find_staff_message(self, channel: str, chat_id: str, message_id: str) -> tuple[str, str] | None: ...

    async def recent_outbox(self, channel: str, chat_id: str, since: float) -> int: ...

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

    async def due_outbox(self, now: float, limit: int = 50, channels: list[str] | None = None,
                         skip: list[tuple[str, str]] = ()) -> list[OutboxItem]: ...

    async def next_outbox_due(self, now: float, channels: list[str] | None = None,
                              skip: list[tuple[str, str]] = ()) -> float | None: ...

    async def outbox_sent(self, item: OutboxItem, message_id: str | None) -> None: ...

    async def outbox_failed(self, item: OutboxItem, error: str, retry_at: float | None) -> None: ...

    async def release_outbox(self, channel: str, ids: list[int] | None = None) -> int: ...

    async def list_requests(self, office: str | None = None, status: str | None = None) -> list[CallbackRequest]: ...
