"""The outbox: nothing lost, nothing twice, in order per chat, honouring the platform's retry_after."""

from __future__ import annotations

import time

import pytest

from bot.staff import OutboxWorker, SendError
from bot.store.sqlite import SQLiteStore


class FlakySender:
    """A chat platform that fails for chats in `down` and records what arrives."""

    def __init__(self):
        self.down: dict[str, SendError] = {}
        self.arrived: list[tuple[str, str]] = []

    async def send(self, chat_id: str, payload: dict) -> str:
        if chat_id in self.down:
            raise self.down[chat_id]
        self.arrived.append((chat_id, payload["text"]))
        return str(len(self.arrived))


@pytest.fixture
async def store(tmp_path):
    s = SQLiteStore(tmp_path / "outbox.db")
    await s.open()
    yield s
    await s.close()


async def queue(store, chat_id: str, *texts: str) -> None:
    async with store.unit() as u:
        for t in texts:
            await u.enqueue("telegram", chat_id, {"text": t})


async def test_down_chat_keeps_order_and_others_are_unaffected(store):
    sender = FlakySender()
    worker = OutboxWorker(store, {"telegram": sender}, max_backoff=10)
    sender.down["staff"] = SendError("502 Bad Gateway")
    await queue(store, "staff", "n1", "n2", "n3")
    await queue(store, "citizen", "c1")
    now = time.time() + 1
    await worker.run_once(now)
    assert sender.arrived == [("citizen", "c1")]
    del sender.down["staff"]
    await worker.run_once(now + 0.1)  # the failed one is not due yet: later ones wait behind it
    assert sender.arrived == [("citizen", "c1")]
    await worker.run_once(now + 60)
    assert sender.arrived == [("citizen", "c1"), ("staff", "n1"), ("staff", "n2"), ("staff", "n3")]
    await worker.run_once(now + 120)
    assert len(sender.arrived) == 4  # nothing twice


async def test_retry_after_is_honoured(store):
    sender = FlakySender()
    worker = OutboxWorker(store, {"telegram": sender})
    sender.down["staff"] = SendError("429", retry_after=30)
    await queue(store, "staff", "n1")
    now = time.time() + 1
    await worker.run_once(now)
    del sender.down["staff"]
    await worker.run_once(now + 29)
    assert sender.arrived == []
    await worker.run_once(now + 31)
    assert sender.arrived == [("staff", "n1")]


async def test_permanent_failure_is_given_up_and_recorded(store):
    sender = FlakySender()
    worker = OutboxWorker(store, {"telegram": sender})
    sender.down["gone"] = SendError("chat not found", permanent=True)
    await queue(store, "gone", "x")
    await queue(store, "gone", "y")
    await worker.run_once(time.time() + 1)
    assert await store.due_outbox(time.time()) != []  # "y" still waits its turn
    import sqlite3

    with sqlite3.connect(store.path) as db:
        rows = db.execute("SELECT status, last_error FROM outbox ORDER BY id").fetchall()
    assert rows[0][0] == "failed" and "chat not found" in rows[0][1]
