"""The outbox: nothing lost, nothing twice, in order per chat, honouring the platform's retry_after."""

from __future__ import annotations

import time

import pytest

from bot.runtime.staff import OutboxWorker, SendError
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


class CountingStore:
    """The store, counting how often the worker reads the outbox."""

    def __init__(self, store):
        self.store = store
        self.reads = 0

    async def due_outbox(self, *args, **kwargs):
        self.reads += 1
        return await self.store.due_outbox(*args, **kwargs)

    def __getattr__(self, name):
        return getattr(self.store, name)


async def test_a_row_waiting_for_its_retry_is_not_read_again_until_due(store):
    import asyncio

    sender = FlakySender()
    sender.down["staff"] = SendError("502 Bad Gateway", retry_after=1.5)
    await queue(store, "staff", "n1", "n2")
    counting = CountingStore(store)
    worker = OutboxWorker(counting, {"telegram": sender}, poll_seconds=10)
    worker.start()
    try:
        await asyncio.sleep(0.3)  # the first attempt failed; the row is due again in 1.5 s
        reads = counting.reads
        await asyncio.sleep(1.0)
        assert counting.reads == reads, f"{counting.reads - reads} reads of an outbox with nothing due"
        del sender.down["staff"]
        await asyncio.sleep(1.0)  # woken by the row falling due, not by the 10 s poll
        assert sender.arrived == [("staff", "n1"), ("staff", "n2")]
        assert counting.reads - reads <= 3
    finally:
        await worker.stop()


async def test_rows_without_a_sender_cost_nothing(store):
    import asyncio

    await queue(store, "operators", "no Telegram configured")
    counting = CountingStore(store)
    worker = OutboxWorker(counting, {"web": FlakySender()}, poll_seconds=0.5)
    worker.start()
    await asyncio.sleep(1.0)
    await worker.stop()
    assert counting.reads <= 4  # a poll every 0.5 s, not a pass after a pass


async def test_stop_ends_a_task_that_swallows_a_cancellation():
    import asyncio

    from bot.core.tasks import BackgroundTask

    async def stubborn():  # like asyncio.wait_for on Python 3.11 when the awaited event is set at that moment
        while True:
            try:
                await asyncio.sleep(10)
            except asyncio.CancelledError:
                break
        await asyncio.sleep(10)

    task = BackgroundTask("stubborn", stubborn)
    task.start()
    await asyncio.sleep(0.05)
    stopping = asyncio.ensure_future(task.stop())
    done, _ = await asyncio.wait({stopping}, timeout=2.5)
    if not done:
        stopping.cancel()
    assert done, "stop() waited for a task that had swallowed its cancellation"
