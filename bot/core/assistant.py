"""The assistant: one message in, replies out. Imports no channel SDK."""

from __future__ import annotations

import asyncio
import logging
import re
import secrets
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Callable

from bot.core.content import Content
from bot.core.dialogue import HANDOFF, MENU_KEY, Dialogue
from bot.core.flows import handoff
from bot.core.flows.base import Flow
from bot.core.flows.handoff import HandoffFlow
from bot.core.flows.lapor_rakit import REF_PLACEHOLDER, LaporRakitFlow, staff_buttons
from bot.core.flows.state import HANDOFF_KEY, HOME_KEY
from bot.core.messages import Button, Incoming, Reply, to_payload, visible_text
from bot.core.privacy import review_text
from bot.core.routes import DESK, StaffRoutes
from bot.core.turn import Outcome, Recorder, reply
from bot.store.base import ConversationState, Store

log = logging.getLogger(__name__)

RATE_KEY = "rate"
# Messages are read ahead of their transaction on this one thread (the model's caches and engine
# are shared; one reader keeps them simple). The benchmarks switch it off to measure its effect.
UNDERSTAND_AHEAD = True
_READER = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mia-reader")
REQUEST_REF = re.compile(r"\bRKT-\d{4}-\d{1,9}\b", re.IGNORECASE)  # a Lapor Rakit reference anywhere in a message


class Assistant:
    """Understands a citizen's message, decides, renders the answer and records the turn."""

    def __init__(self, content: Content, store: Store | None, staff_chats: StaffRoutes | dict | None = None,
                 form_ttl_seconds: float = 24 * 3600, on_enqueue: Callable[[], None] | None = None,
                 rate_limit: int = 0, rate_window_seconds: float = 60.0, staff_relays_per_minute: int = 6,
                 retention_days: int = 90):
        self.content = content
        self.store = store
        self.staff_chats = staff_chats  # office id -> where its staff read notices (Telegram group, web desk)
        self.form_ttl_seconds = form_ttl_seconds
        self.on_enqueue = on_enqueue  # wakes the outbox worker
        self.rate_limit = rate_limit  # messages per chat per window; 0 = no limit
        self.rate_window = rate_window_seconds
        self._limited: dict[tuple[str, str], float] = {}  # chats over their rate limit, until when
        # Citizens' messages relayed into one staff chat per minute, all conversations together.
        self.staff_relays_per_minute = staff_relays_per_minute or 10**9
        # The multi-turn flows, in the order they are asked whether they hold the conversation.
        self.flows: tuple[Flow, ...] = (HandoffFlow(), LaporRakitFlow())
        self.dialogue = Dialogue(lambda: self.content, self.flows, lambda: self.staff_chats.offices(),
                                 form_ttl_seconds, retention_days)

    @property
    def staff_chats(self) -> StaffRoutes:
        return self._staff_chats

    @staff_chats.setter
    def staff_chats(self, value: StaffRoutes | dict | None) -> None:
        """Routes, or a plain {office: (channel, chat id)} mapping (tests, `mia ask`)."""
        self._staff_chats = value if isinstance(value, StaffRoutes) else StaffRoutes(value)

    async def handle(self, msg: Incoming) -> list[Reply]:
        """Answer one incoming message; a re-delivered message id gets no second answer."""
        outcome = await self.handle_outcome(msg)
        return list(outcome.replies) if outcome else []

    async def handle_outcome(self, msg: Incoming, record: Recorder | None = None) -> Outcome | None:
        """Like handle, returning what MIA understood too; None for a re-delivered message.

        `record(unit, msg, outcome)` runs inside the same transaction, for a channel that keeps
        its own transcript (the web chat): the transcript and the state commit together.
        """
        key = (msg.channel, msg.chat_id)
        if self._limited.get(key, 0.0) < time.monotonic():
            self._limited.pop(key, None)
        if UNDERSTAND_AHEAD and msg.text.strip() and msg.location is None and key not in self._limited:
            # The message is read before its conversation is locked and its transaction opened, on
            # a thread of its own (the sentence model lets go of the GIL): other chats' database
            # work goes on meanwhile, and the transaction holds its lock only for the decision.
            # Reading depends on the text alone, so the decision inside finds it read.
            matcher = self.content.matcher
            await asyncio.get_running_loop().run_in_executor(_READER, matcher.understand, msg.text)
        async with self.store.unit() as unit:
            state = await unit.claim_and_load(msg.channel, msg.message_id, msg.chat_id)
            if state is None:
                log.info("duplicate message %s/%s ignored", msg.channel, msg.message_id)
                return None
            limited = self._rate_limited(state)
            if limited is not None:
                # A chat over its limit is not read ahead for a while (a flood costs no model time).
                self._limited[key] = time.monotonic() + self.rate_window
                while len(self._limited) > 10_000:
                    self._limited.pop(next(iter(self._limited)))
                if record is not None and limited.replies:  # the channel delivers the slow-down message
                    await record(unit, msg, limited)
                await unit.save_state(msg.channel, msg.chat_id, limited.state)
                return limited
            words = msg.text.strip().split()
            ref = REQUEST_REF.search(msg.text[:2000])
            if words and words[0].lower() == "/status":
                outcome = await self._status(unit, state, words[1] if len(words) > 1 else "", msg)
            elif ref and not self.dialogue.busy(state):
                outcome = await self._status(unit, state, ref.group(0), msg)  # "cek status RKT-2026-000001"
            elif msg.location is not None and not self.dialogue.relaying(state):
                outcome = reply(self.content, replace(state, pending=None), "location_unsupported", None, 0.0,
                                buttons=("office_for_region",))
            else:
                outcome = self.respond(msg.text, state, msg.user_name, media=msg.media)
            if outcome.intent == "request_status":  # "status permintaan saya": the chat's newest request
                latest = await unit.latest_request(msg.channel, msg.chat_id)
                outcome = await self._status(unit, state, latest.ref if latest else "", msg, asked=True)
            outcome = await self._apply(unit, msg, outcome)
            await self._log_if_unanswered(unit, msg, outcome, state)
            if record is not None:
                await record(unit, msg, outcome)
            await unit.save_state(msg.channel, msg.chat_id, outcome.state)
            await unit.log_turn(
                msg.channel,
                msg.chat_id,
                msg.text[:1000],
                outcome.intent,
                outcome.confidence,
                outcome.region,
                outcome.office,
                "\n\n".join(r.text for r in outcome.replies),
            )
        if outcome.effects and self.on_enqueue is not None:
            self.on_enqueue()
        return outcome

    def _rate_limited(self, state: ConversationState) -> Outcome | None:
        """Past MIA_RATE_LIMIT messages in the window: one polite slow-down message, then silence.

        The count lives in the conversation state, so it holds across workers and restarts and
        one flooding chat never slows the others.
        """
        if not self.rate_limit:
            return None
        now = time.time()
        rate = state.data.get(RATE_KEY) or {}
        times = [t for t in rate.get("times", []) if now - t < self.rate_window]
        if len(times) < self.rate_limit:
            state.data[RATE_KEY] = {"times": times + [now], "warned": False}
            return None
        warned = rate.get("warned", False) and bool(times)
        data = dict(state.data, **{RATE_KEY: {"times": times, "warned": True}})
        limited = ConversationState(state.lang, state.pending, data)
        if warned:
            return Outcome(replies=(), intent=None, confidence=0.0, state=limited)
        return reply(self.content, limited, "slow_down", None, 0.0)

    async def _log_if_unanswered(self, unit, msg: Incoming, outcome: Outcome, state: ConversationState) -> None:
        """Messages MIA did not understand or offered a menu for go to the operators' review log:
        normalized, masked. A menu's row gets a reference, so the citizen's tap can label it."""
        u = outcome.understanding
        if u is None or u.by_title or not u.text.strip() or outcome.intent is not None:
            return
        menu = outcome.state.data.get(MENU_KEY)
        kind = "menu" if menu is not None else "fallback"
        ref = None
        if menu is not None:
            ref = menu["ref"] = secrets.token_hex(8)
        top = [(c.intent, round(c.score, 1)) for c in u.candidates[:3]]
        text = review_text(msg.text, self.content.matcher.vocab, (msg.user_name,))
        await unit.log_unanswered(msg.channel, self._office_of(outcome, state), text, kind, top, ref=ref)

    def _office_of(self, outcome: Outcome, state: ConversationState) -> str | None:
        home = state.data.get(HOME_KEY)
        return outcome.office or (self.content.knowledge.office_for(home["region"]).id if home else None)

    async def _apply(self, unit, msg: Incoming, outcome: Outcome) -> Outcome:
        """Carry out the outcome's effects inside the message's transaction."""
        replies = list(outcome.replies)
        for effect in outcome.effects:
            if effect.kind == "create_request":
                request = await unit.create_request(msg.channel, msg.chat_id, effect.office,
                                                    effect.context["region"], effect.context["fields"])
                replies = [replace(r, text=r.text.replace(REF_PLACEHOLDER, request.ref)) for r in replies]
                await self._notify_staff(unit, effect.office, "staff_request", {"request": request},
                                         ("request", request.ref), buttons=staff_buttons(request))
            elif effect.kind == "review":  # "not helpful": the message, what MIA answered, what else it thought
                c = effect.context
                await unit.log_unanswered(msg.channel, effect.office, c["text"], "not_helpful", c["candidates"],
                                          ref=c["ref"], answered=c["answered"])
            elif effect.kind == "label":  # a tap on a menu MIA offered: the citizen labelled their message
                await unit.label_unanswered(effect.context["ref"], effect.context["intent"])
            elif effect.kind == "staff_notice":
                if effect.template == "staff_citizen_message" and await self._staff_busy(unit, effect.office):
                    # The office's staff chat is busy this minute: the message waits, summarised.
                    info = outcome.state.data.get(HANDOFF_KEY)
                    if info is not None:
                        if effect.context.get("held"):  # the held batch it would have carried stays held
                            info["held"] = effect.context["held"]
                        replies += handoff.hold(self.content, outcome.state, info, effect.context["text"])
                        info["relayed"] = info.get("relayed", [])[:-1]
                    continue
                context = dict(effect.context, channel=msg.channel, chat_id=msg.chat_id)
                if context.get("user_name"):
                    context["user_name"] = visible_text(context["user_name"])[:80]
                if context.pop("with_history", False):
                    context["history"] = await unit.recent_turns(msg.channel, msg.chat_id, 6)
                kind, _ = effect.bind or ("handoff", "")
                await self._notify_staff(unit, effect.office, effect.template, context,
                                         (kind, f"{msg.channel}:{msg.chat_id}"))
        return replace(outcome, replies=tuple(replies))

    async def _staff_busy(self, unit, office_id: str) -> bool:
        """True when a staff chat of the office got its budget of messages this minute (a Telegram group
        takes about 20 a minute from a bot; the web desk has no such limit, and each conversation's own
        budget still holds there)."""
        since = time.time() - 60
        for channel, chat_id in self.staff_chats.of(office_id):
            if channel != DESK and await unit.recent_outbox(channel, chat_id, since) >= self.staff_relays_per_minute:
                return True
        return False

    async def _notify_staff(self, unit, office_id: str, template: str, context: dict, bind: tuple[str, str],
                            buttons: tuple[Button, ...] = ()) -> None:
        destinations = self.staff_chats.of(office_id)
        if not destinations:
            log.warning("no staff chat or desk for office %s: %s not sent", office_id, template)
            return
        content = self.content
        html = content.responses.render("id", template, kb=content.knowledge, office=content.knowledge.office(office_id),
                                        **context)
        payload = to_payload(Reply(html, buttons, html=True), bind={"kind": bind[0], "target": bind[1]})
        for channel, chat_id in destinations:
            await unit.enqueue(channel, chat_id, payload)

    async def _status(self, unit, state: ConversationState, ref: str, msg: Incoming, asked: bool = False) -> Outcome:
        """/status REF: the state of a callback request (only for the chat that made it)."""
        request = await unit.get_request(ref, lock=False) if ref else None  # read only: never wait on another chat
        if request is not None and (request.channel, request.chat_id) != (msg.channel, msg.chat_id):
            request = None  # another citizen's request: as if it did not exist
        content = self.content
        office = content.knowledge.office(request.office) if request else None
        return reply(content, replace(state, pending=None), "request_status", "request_status" if asked else None,
                     1.0, ref=ref.upper(), request=request, office=office, asked=asked, buttons=(HANDOFF,))

    # -- deciding (pure: no I/O) ----------------------------------------------------------

    def respond(self, text: str, state: ConversationState, user_name: str | None = None,
                now: float | None = None, media: str | None = None) -> Outcome:
        """Decide the answer to `text` given the conversation state (bot/core/dialogue.py)."""
        return self.dialogue.respond(text, state, user_name, now, media)
