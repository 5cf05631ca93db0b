"""Replies committed with the answer, then sent at once: a crash delays them, never loses them."""

from __future__ import annotations

import asyncio
import logging
from bot.core.messages import Incoming, to_payload
from bot.runtime.staff import HeldRows, SendError
from bot.store.base import OutboxItem
from bot.core.tasks import STOP_GRACE_SECONDS, KeyedLocks, finish

log = logging.getLogger(__name__)

# The outbox worker leaves a leased reply alone this long (or until the next start), while the
# channel sends it itself right after the commit; the channel renews it while it sends (HeldRows),
# so it runs out only when the process dies.
REPLY_LEASE_SECONDS = 30.0


class LeasedReplies:
    """A citizen's replies go into the outbox in the answer's transaction, leased to the
    channel, which sends them in the background in order per chat, renewing the lease as it goes.
    A failed send hands the rest to the outbox worker; a crash before the send leaves them leased
    to this worker, and the next start (`MiaApp.start`: `release_outbox`) ends its leases. The
    outbox worker of this process leaves the chats in hand here alone (`chats_in_hand`)."""

    def __init__(self, assistant, sender, channel: str, on_queue=None):
        self.assistant = assistant
        self.sender = sender
        self.channel = channel
        self.on_queue = on_queue
        self._locks = KeyedLocks()  # a chat's sends, one after another
        self._tasks: set[asyncio.Task] = set()
        self._behind: set[str] = set()  # chats with replies queued behind ones still being sent
        self._in_hand: dict[str, int] = {}  # chat -> its sends started and not ended

    async def answer(self, incoming: Incoming, record=None):
        """Handle a citizen's message; its replies commit with it and leave in the background."""
        leased: list[OutboxItem] = []

        async def keep(unit, msg, outcome) -> None:
            if record is not None:
                await record(unit, msg, outcome)
            payloads = [to_payload(r) for r in outcome.replies]
            if not payloads:
                return
            if await unit.outbox_waiting(self.channel, msg.chat_id):
                # An earlier reply to this chat has not left yet (in a retry, or in another worker's
                # hands): these queue behind it and the outbox worker sends them in order.
                await unit.enqueue_many(self.channel, msg.chat_id, payloads)
                self._behind.add(msg.chat_id)
                return
            ids = await unit.enqueue_many(self.channel, msg.chat_id, payloads, lease_seconds=REPLY_LEASE_SECONDS)
            leased.extend(OutboxItem(i, self.channel, msg.chat_id, p, 0, 0.0) for i, p in zip(ids, payloads))

        outcome = await self.assistant.handle_outcome(incoming, record=keep)
        if incoming.chat_id in self._behind and incoming.chat_id not in self._in_hand:
            self._behind.discard(incoming.chat_id)
            self._wake()  # nothing of this chat is in this process's hands: the worker sends them now
        if leased:
            self._in_hand[incoming.chat_id] = self._in_hand.get(incoming.chat_id, 0) + 1
            task = asyncio.create_task(self._send(incoming.chat_id, leased))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            task.add_done_callback(lambda _task, chat_id=incoming.chat_id: self._ended(chat_id))
        return outcome

    async def wait(self, timeout: float = STOP_GRACE_SECONDS) -> None:
        """On stop: let the sends in hand finish for a moment, then cancel them (their rows stay
        leased; the next start releases them, as after a crash)."""
        await finish(set(self._tasks), timeout)

    def chats_in_hand(self) -> list[tuple[str, str]]:
        """(channel, chat id) of the chats whose replies this channel is sending or about to send."""
        return [(self.channel, chat_id) for chat_id in self._in_hand]

    async def _send(self, chat_id: str, items: list[OutboxItem]) -> None:
        store = self.assistant.store
        try:
            async with HeldRows(store, items, REPLY_LEASE_SECONDS) as held, self._locks.hold(chat_id):
                # Replies of one chat leave in the order they were committed.
                for item in items:
                    if not await held.renew():
                        self._wake()  # another worker has them: what this one still held is due now
                        return
                    try:
                        message_id = await self.sender.send(chat_id, item.payload)
                    except SendError as exc:
                        log.warning("%s reply to a citizen failed (%s): left to the outbox", self.channel, exc)
                        await held.hand_back()
                        self._wake()
                        return
                    await store.outbox_sent(item, message_id)
                    held.done()
        except Exception:  # noqa: BLE001 - the rows stay leased; the worker sends them when the lease ends
            log.exception("%s: sending replies to %s failed", self.channel, chat_id)

    def _ended(self, chat_id: str) -> None:
        """A send of the chat's replies ended (or was cancelled before it began)."""
        self._in_hand[chat_id] -= 1
        if not self._in_hand[chat_id]:
            del self._in_hand[chat_id]
            if chat_id in self._behind:  # queued behind these: they can leave
                self._behind.discard(chat_id)
                self._wake()

    def _wake(self) -> None:
        if self.on_queue is not None:
            self.on_queue()
