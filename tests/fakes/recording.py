"""A stand-in for a chat platform in tests: keeps what MIA sends and numbers the messages."""

from __future__ import annotations


class RecordingSender:
    """An outbox sender that always succeeds and remembers every payload."""

    def __init__(self):
        self.sent: list[tuple[str, dict]] = []

    async def send(self, chat_id: str, payload: dict) -> str:
        self.sent.append((chat_id, payload))
        return str(len(self.sent))
