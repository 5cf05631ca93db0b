"""Staff work: claiming and closing requests, replying to citizens, and the outbox worker."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from dataclasses import dataclass
from typing import Callable, Iterable, Protocol

from bot.core.content import Content
from bot.core.flows.lapor_rakit import staff_buttons
from bot.core.flows.state import HANDOFF_KEY
from bot.core.messages import Reply, to_payload
from bot.core.routes import DESK, StaffRoutes
from bot.core.tasks import BackgroundTask, cancel, finish, wait_event
from bot.store.base import ConversationState, OutboxItem

log = logging.getLogger(__name__)

@dataclass(frozen=True, slots=True)
class StaffEvent:
    """Something a staff member did in a staff chat, as a channel delivers it."""

    channel: str
    chat_id: str  # the staff chat
    event_id: str  # the platform's id of the update: the key for de-duplication
    user_id: str
    user_name: str
    action: str  # "claim" | "done" | "reply" | "end"
    ref: str = ""  # claim/done: the request reference
    reply_to: str = ""  # reply/end: the id of the MIA notification being answered
    text: str = ""


@dataclass(frozen=True, slots=True)
class StaffResult:
    """What the staff member sees at once (a toast or a short reply)."""

    text: str
    ok: bool


class StaffDesk:
    """Carries out staff actions, only from the staff chat of the office concerned."""

    def __init__(self, content: Content, store, staff_chats: StaffRoutes | dict, on_enqueue=None):
        self.content = content
        self.store = store
        self.staff_chats = staff_chats if isinstance(staff_chats, StaffRoutes) else StaffRoutes(staff_chats)
        self.on_enqueue = on_enqueue

    def office_of_chat(self, channel: str, chat_id: str) -> str | None:
        """The office whose staff chat (or web desk) this is, or None for any other chat."""
        return self.staff_chats.office_of(channel, str(chat_id))

    async def _desk_note(self, unit, office: str, kind: str, target: str, text: str) -> None:
        """What staff did, in the thread on the office's web desk (whichever chat they did it in)."""
        if (DESK, office) in self.staff_chats.of(office):
            await unit.enqueue(DESK, office, to_payload(Reply(text), bind={"kind": kind, "target": target},
                                                        desk_note=True))

    async def handle(self, event: StaffEvent) -> StaffResult:
        """Apply one staff action; refuse politely when it does not come from the right chat."""
        office = self.office_of_chat(event.channel, event.chat_id)
        if office is None:
            return StaffResult("Maaf, perintah ini hanya untuk grup petugas kantor imigrasi.", False)
        async with self.store.unit() as unit:
            if not await unit.claim_message(event.channel, f"staff:{event.event_id}"):
                return StaffResult("Sudah diproses.", True)
            if event.action in ("claim", "done"):
                result = await self._status(unit, event, office)
            else:
                result = await self._reply(unit, event, office)
        if self.on_enqueue is not None:
            self.on_enqueue()
        return result

    async def _status(self, unit, event: StaffEvent, office: str) -> StaffResult:
        request = await unit.get_request(event.ref)
        if request is None or request.office != office:
            return StaffResult("Permintaan tidak ditemukan untuk kantor ini.", False)
        new = "claimed" if event.action == "claim" else "done"
        if request.status == "done" or (new == "claimed" and request.status == "claimed"):
            return StaffResult(f"{request.ref} sudah {_status_word(request.status)}.", False)
        who = f"{event.user_name} ({event.user_id})"
        await unit.set_request_status(request.ref, new, who)
        request = await unit.get_request(request.ref)
        render = self.content.responses.render
        kb = self.content.knowledge
        lang = (await unit.load_state(request.channel, request.chat_id)).lang
        citizen = render(lang, f"citizen_request_{new}", kb=kb, request=request, office=kb.office(request.office),
                         staff_name=event.user_name)
        await unit.enqueue(request.channel, request.chat_id, to_payload(Reply(citizen)))
        # The notification in the staff chat shows the new state and only the buttons still useful.
        html = render("id", "staff_request", kb=kb, office=kb.office(request.office), request=request)
        for channel, chat_id, message_id in await unit.staff_messages_of("request", request.ref):
            await unit.enqueue(channel, chat_id, to_payload(Reply(html, staff_buttons(request), html=True),
                                                            edit=message_id))
        await self._desk_note(unit, office, "request", request.ref, f"{_status_word(new).capitalize()} oleh "
                                                                   f"{event.user_name} ({CHANNEL_NAMES.get(event.channel, event.channel)}).")
        return StaffResult(f"{request.ref} {_status_word(new)} oleh {event.user_name}.", True)

    async def _reply(self, unit, event: StaffEvent, office: str) -> StaffResult:
        found = await unit.find_staff_message(event.channel, event.chat_id, event.reply_to) if event.reply_to else None
        if found is None:
            return StaffResult("Balas (reply) pesan notifikasi MIA agar jawaban sampai ke warga.", False)
        kind, target = found
        if kind == "request":
            request = await unit.get_request(target)
            channel, chat_id = request.channel, request.chat_id
        else:
            channel, chat_id = target.split(":", 1)
        state = await unit.load_state(channel, chat_id)
        render = self.content.responses.render
        kb = self.content.knowledge
        handoff = state.data.get(HANDOFF_KEY) or {}
        if handoff and handoff.get("office") != office:
            # The citizen has since been handed to another office: its staff have the conversation now.
            other = kb.office(handoff.get("office") or "")
            return StaffResult(f"Warga ini sekarang ditangani {other.name if other else 'kantor lain'}; "
                               "pesan tidak dikirim.", False)
        if event.action == "end":
            if not handoff:
                return StaffResult("Percakapan ini tidak sedang ditangani petugas.", False)
            data = dict(state.data)
            held = (data.pop(HANDOFF_KEY) or {}).get("held") or {}
            await unit.save_state(channel, chat_id, ConversationState(state.lang, None, data))
            text = render(state.lang, "handoff_ended", kb=kb)
            await unit.enqueue(channel, chat_id, to_payload(Reply(text)))
            await self._desk_note(unit, office, kind, target, f"{event.user_name} mengakhiri percakapan.")
            unread = ""
            if held.get("count"):  # nothing a citizen wrote is dropped without a word
                shown = "; ".join(f'"{t}"' for t in held.get("texts", []))
                unread = f" Sebelumnya {held['count']} pesan warga ditahan (terlalu banyak dalam satu menit): {shown}."
            return StaffResult("Percakapan diakhiri; MIA kembali melayani warga ini." + unread, True)
        text = render(state.lang, "staff_reply_to_citizen", kb=kb, text=event.text[:3000], staff_name=event.user_name)
        await unit.enqueue(channel, chat_id, to_payload(Reply(text)))
        await self._desk_note(unit, office, kind, target, f"{event.user_name}: {event.text[:3000]}")
        return StaffResult("Terkirim ke warga.", True)


CHANNEL_NAMES = {DESK: "meja web", "telegram": "grup Telegram"}


def _status_word(status: str) -> str:
    return {"open": "terbuka", "claimed": "diambil", "done": "selesai"}.get(status, status)


# -- the outbox --------------------------------------------------------------------------


class SendError(Exception):
    """A send failed. `retry_after` (seconds) when the platform said when to try again;
    `permanent` when retrying cannot help (chat not found, bot blocked)."""

    def __init__(self, message: str, retry_after: float | None = None, permanent: bool = False):
        super().__init__(message)
        self.retry_after = retry_after
        self.permanent = permanent


class Sender(Protocol):
    """Delivers one outbox payload on a channel; returns the platform's message id."""

    async def send(self, chat_id: str, payload: dict) -> str | None: ...


class HeldRows:
    """Outbox rows of one chat leased to this worker, which sends them in order (async with: while held).

    Before each send `renew` extends the lease of the rows still to send, fenced: only rows this
    worker still holds on a lease that has not run out; if any has gone (another worker took it
    over), the sender stops and hands back the rest it holds, to wait behind the taken ones. A
    keeper renews the lease every third of its length meanwhile, so it runs out only when this
    process dies or loses its database, however long a send or the wait for the chat's turn takes.
    """

    def __init__(self, store, items: list[OutboxItem], lease_seconds: float):
        self.store = store
        self.rest = [i.id for i in items]  # not yet sent, recorded as failed or handed back; in order
        self.lease_seconds = lease_seconds
        self._keeper: asyncio.Task | None = None

    async def __aenter__(self) -> HeldRows:
        self._keeper = asyncio.create_task(self._keep(), name="outbox lease")
        return self

    async def __aexit__(self, *exc) -> None:
        await cancel({self._keeper})

    async def _keep(self) -> None:
        while True:
            await asyncio.sleep(self.lease_seconds / 3)
            try:
                if self.rest:
                    await self.store.renew_outbox(self.rest, self.lease_seconds)
            except Exception:  # noqa: BLE001 - tried again in a moment; each send renews for itself
                log.warning("renewing the lease of outbox rows failed", exc_info=True)

    async def renew(self) -> bool:
        """Before the next send: whether this worker still holds every row left (lease renewed)."""
        if await self.store.renew_outbox(self.rest, self.lease_seconds) == len(self.rest):
            return True
        log.warning("outbox rows %s: their lease ran out (another worker may hold them now): left to the outbox",
                    self.rest)
        await self.hand_back()
        return False

    def done(self) -> None:
        """The first row left was sent or recorded as failed."""
        self.rest = self.rest[1:]

    async def hand_back(self) -> None:
        """The rows left, those this worker still holds, are due again now (for the outbox worker)."""
        rest, self.rest = self.rest, []
        if rest:
            await self.store.release_outbox(None, rest)


class OutboxWorker:
    """Sends queued messages, in order per chat, retrying with backoff until they arrive.

    It leases only rows that are due, then sleeps until the next row falls due, something is
    queued (`wake`) or a chat's send ends, and at most `poll_seconds` (rows queued by another
    process, or behind a reply the channel itself is sending): a chat waiting for a retry costs
    nothing meanwhile.
    """

    BATCH = 200  # rows read per pass
    # Rows read are leased to this worker this long: another worker on the same database leaves
    # them (and the younger rows of their chats) alone meanwhile, and takes them over when a
    # worker that died leaves its lease to run out. Longer than any send waits for its answer.
    LEASE_SECONDS = 120.0

    def __init__(self, store, senders: dict[str, Sender], poll_seconds: float = 1.0, max_backoff: float = 300.0,
                 max_attempts: int = 1000):
        self.store = store
        self.senders = senders
        self.poll_seconds = poll_seconds
        self.max_backoff = max_backoff
        self.max_attempts = max_attempts
        self._wake = asyncio.Event()
        self._task = BackgroundTask("outbox", self._run)
        self._active: dict[tuple[str, str], asyncio.Task] = {}  # chat -> its sending task
        self._resting: dict[tuple[str, str], float] = {}  # chat -> until when, after an unexpected error
        self._elsewhere: list[Callable[[], Iterable[tuple[str, str]]]] = []  # other senders' chats in hand

    def wake(self) -> None:
        """Something was queued: look now rather than at the next poll."""
        self._wake.set()

    def leave_alone(self, chats_in_hand: Callable[[], Iterable[tuple[str, str]]]) -> None:
        """Another sender of this process (a channel sending its citizens' replies itself): the chats it
        has in hand, (channel, chat id) pairs, are left to it whatever their leases say: both hold
        leases under this worker's name, so no lease tells them apart."""
        self._elsewhere.append(chats_in_hand)

    def start(self) -> None:
        self._task.start()

    async def stop(self) -> None:
        """Stop reading the outbox; sends in hand get a moment to finish, then are cancelled
        (their rows stay pending: the next start sends them)."""
        await self._task.stop()
        await finish(self._active.values())

    async def _run(self) -> None:
        while True:
            self._wake.clear()  # a wake from now on means another pass
            try:
                delay = await self._dispatch()
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - the worker must outlive any one failure
                log.exception("outbox pass failed")
                delay = self.poll_seconds
            if delay > 0:
                await wait_event(self._wake, delay)

    async def run_once(self, now: float | None = None) -> int:
        """One pass, waited for: every chat's due messages, chats side by side; returns how many left."""
        now = time.time() if now is None else now
        groups = await self._due_by_chat(now)
        return sum(await asyncio.gather(*(self._send_chat(items, now) for items in groups.values())))

    async def _dispatch(self) -> float:
        """One pass of the running worker: a task per chat, so a slow or failing chat (a send
        waiting for its timeout) never holds up the others, not even until the next pass.
        Returns how long to sleep before the next pass (unless woken)."""
        now = time.time()
        self._resting = {k: t for k, t in self._resting.items() if t > now}
        skip = set(self._active) | set(self._resting)  # a busy chat's task end wakes the next pass
        skip.update(chat for chats_in_hand in self._elsewhere for chat in chats_in_hand())
        channels = list(self.senders)
        groups = await self._due_by_chat(now, channels, skip)
        for key, items in groups.items():
            if key in self._active:
                continue  # started while the rows were read
            task = asyncio.create_task(self._send_chat(items, now), name=f"outbox {key[0]}:{key[1]}")
            self._active[key] = task
            task.add_done_callback(lambda _t, key=key: self._chat_done(key))
        if sum(map(len, groups.values())) >= self.BATCH:
            return 0.0  # more may be due than one read returns: read on, past the chats now busy
        next_due = await self.store.next_outbox_due(now, channels, skip)
        delay = self.poll_seconds if next_due is None else min(self.poll_seconds, next_due - now)
        return max(delay, 0.0)

    def _chat_done(self, key: tuple[str, str]) -> None:
        self._active.pop(key, None)
        self._wake.set()  # more may have been queued for that chat meanwhile

    async def _due_by_chat(self, now: float, channels: list[str] | None = None,
                           skip=()) -> dict[tuple[str, str], list[OutboxItem]]:
        groups: dict[tuple[str, str], list[OutboxItem]] = {}
        for item in await self.store.lease_outbox(now, self.LEASE_SECONDS, limit=self.BATCH, channels=channels,
                                                  skip=sorted(skip)):
            groups.setdefault((item.channel, item.chat_id), []).append(item)
        return groups

    async def _send_chat(self, items: list[OutboxItem], now: float) -> int:
        """A chat's messages in order; the first that waits or fails holds the later ones, and so does
        another worker that has taken them over (HeldRows)."""
        sent = 0
        async with HeldRows(self.store, items, self.LEASE_SECONDS) as held:
            try:
                for item in items:
                    sender = self.senders.get(item.channel)
                    if item.next_attempt_at > now or sender is None or not await held.renew():
                        break
                    try:
                        message_id = await sender.send(item.chat_id, item.payload)
                    except Exception as exc:  # noqa: BLE001 - unknown errors are retried like network errors
                        await self._failed(item, exc if isinstance(exc, SendError) else SendError(repr(exc)), now)
                        held.done()
                        break
                    await self.store.outbox_sent(item, message_id)
                    held.done()
                    sent += 1
                await held.hand_back()  # the rest wait behind the failed one, not behind a lease
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - a later pass tries again
                log.exception("outbox: sending to %s:%s failed", items[0].channel, items[0].chat_id)
                # Its rows may still be due: rest the chat a while rather than retrying in a loop.
                self._resting[(items[0].channel, items[0].chat_id)] = time.time() + self.poll_seconds
                try:
                    await held.hand_back()
                except Exception:  # noqa: BLE001 - their lease runs out by itself
                    log.debug("releasing the rest of a chat's rows failed", exc_info=True)
        return sent

    async def _failed(self, item: OutboxItem, exc: SendError, now: float) -> None:
        if exc.permanent or item.attempts + 1 >= self.max_attempts:
            log.error("outbox %s to %s:%s given up: %s", item.id, item.channel, item.chat_id, exc)
            await self.store.outbox_failed(item, str(exc), None)
            return
        if exc.retry_after is not None:
            delay = exc.retry_after
        else:
            delay = min(self.max_backoff, 2 ** min(item.attempts, 10)) * random.uniform(0.5, 1.0)
        log.warning("outbox %s to %s:%s failed (%s); retry in %.1fs", item.id, item.channel, item.chat_id, exc, delay)
        # From when the attempt ended: a send that hung until its timeout is not retried at once.
        await self.store.outbox_failed(item, str(exc), max(now, time.time()) + delay)
