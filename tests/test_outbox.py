"""The outbox: nothing lost, nothing twice, in order per chat, honouring the platform's retry_after."""

from __future__ import annotations

import asyncio
import time
from types import SimpleNamespace

import pytest

from bot.channels import delivery
from bot.channels.delivery import LeasedReplies
from bot.core.messages import Incoming, Reply, to_payload
from bot.runtime.staff import OutboxWorker, SendError
from bot.store.sqlite import SQLiteStore
from tests.test_store_contract import BACKENDS, SIBLINGS


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


# -- leases held while their rows are sent ----------------------------------------------------


class SlowSender:
    """A healthy but slow peer (a Graph API near its timeout): each send arrives after `seconds`,
    recorded with the name of who sent it."""

    def __init__(self, name: str, arrived: list, seconds: float):
        self.name, self.arrived, self.seconds = name, arrived, seconds

    async def send(self, chat_id: str, payload: dict) -> str:
        await asyncio.sleep(self.seconds)
        self.arrived.append((self.name, payload["text"]))
        return str(len(self.arrived))


class Answering:
    """An assistant answering every message with the same replies, committed with the message's
    transaction as Assistant.handle_outcome does for a channel."""

    def __init__(self, store, *texts: str):
        self.store, self.texts = store, texts

    async def handle_outcome(self, incoming: Incoming, record=None):
        outcome = SimpleNamespace(replies=[Reply(t) for t in self.texts])
        async with self.store.unit() as unit:
            await record(unit, incoming, outcome)
        return outcome


async def until(condition, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline:
        await asyncio.sleep(0.05)


async def test_replies_slower_than_their_lease_are_sent_once_in_order(store, monkeypatch):
    """One worker: each reply takes longer to send than the lease lasts, yet the outbox worker
    (holding leases under the same name) never sends them too: the channel renews the lease."""
    monkeypatch.setattr(delivery, "REPLY_LEASE_SECONDS", 0.6)  # 30 s, and sends near a 20 s timeout
    arrived: list = []
    worker = OutboxWorker(store, {"whatsapp": SlowSender("worker", arrived, 0.8)}, poll_seconds=0.1)
    replies = LeasedReplies(Answering(store, "r1", "r2", "r3"), SlowSender("channel", arrived, 0.8), "whatsapp",
                            on_queue=worker.wake)
    worker.start()
    try:
        await replies.answer(Incoming("whatsapp", "62811", "halo", "m1"))
        await until(lambda: len(arrived) >= 3, 5.0)
        await asyncio.sleep(0.5)  # a second copy would arrive meanwhile
    finally:
        await replies.wait()
        await worker.stop()
    assert arrived == [("channel", "r1"), ("channel", "r2"), ("channel", "r3")]


class Unreachable:
    """The store, with its lease renewals failing while `down` (the database out of reach)."""

    def __init__(self, store):
        self.store = store
        self.down = False

    async def renew_outbox(self, ids, lease_seconds):
        if self.down:
            raise ConnectionError("database out of reach")
        return await self.store.renew_outbox(ids, lease_seconds)

    def __getattr__(self, name):
        return getattr(self.store, name)


async def test_the_worker_leaves_alone_a_chat_its_process_is_sending(store, monkeypatch):
    """The lease of a reply in hand runs out (its renewals failed while a send hung): the outbox
    worker of the same process, holding leases under the same name, still leaves the chat to the
    channel, which then hands back what is left instead of sending it alongside the worker."""
    monkeypatch.setattr(delivery, "REPLY_LEASE_SECONDS", 0.3)
    flaky = Unreachable(store)
    arrived: list = []

    class HangingOnce(SlowSender):
        async def send(self, chat_id: str, payload: dict) -> str:
            if payload["text"] == "r1":  # the database is out of reach while this send hangs
                flaky.down = True
                await asyncio.sleep(1.0)
                flaky.down = False
            return await super().send(chat_id, payload)

    worker = OutboxWorker(store, {"whatsapp": SlowSender("worker", arrived, 0.0)}, poll_seconds=0.1)
    replies = LeasedReplies(Answering(flaky, "r1", "r2", "r3"), HangingOnce("channel", arrived, 0.0), "whatsapp",
                            on_queue=worker.wake)
    worker.leave_alone(replies.chats_in_hand)  # as MiaApp wires every channel sending its own replies
    worker.start()
    try:
        await replies.answer(Incoming("whatsapp", "62811", "halo", "m1"))
        await until(lambda: len(arrived) >= 3, 5.0)
        await asyncio.sleep(0.5)
    finally:
        await replies.wait()
        await worker.stop()
    assert arrived == [("channel", "r1"), ("worker", "r2"), ("worker", "r3")]


@pytest.fixture(params=sorted(BACKENDS))
async def two_workers(request, tmp_path):
    """Two workers' stores on one database, of each back end."""
    async with BACKENDS[request.param](tmp_path) as first:
        await first.open()
        second = SIBLINGS[request.param](first, "mia-2")
        await second.open()
        try:
            yield first, second
        finally:
            await second.close()
            await first.close()


async def test_a_batch_slower_than_the_outbox_lease_is_not_taken_over(two_workers, monkeypatch):
    """A worker sending a long batch of one chat keeps its lease: another worker reading the outbox
    meanwhile gets none of its rows, and every notice arrives once, in order."""
    first, second = two_workers
    async with first.unit() as u:
        for n in range(5):
            await u.enqueue("telegram", "-100", to_payload(Reply(f"notice {n}")))
    arrived: list = []
    monkeypatch.setattr(OutboxWorker, "LEASE_SECONDS", 0.6)  # 120 s, with up to 200 rows of one chat
    one = OutboxWorker(first, {"telegram": SlowSender("mia", arrived, 0.4)})
    other = OutboxWorker(second, {"telegram": SlowSender("mia-2", arrived, 0.4)})
    sending = asyncio.create_task(one.run_once())
    await asyncio.sleep(1.0)  # past the lease the batch was leased with
    assert await other.run_once() == 0
    assert await sending == 5
    assert arrived == [("mia", f"notice {n}") for n in range(5)]
