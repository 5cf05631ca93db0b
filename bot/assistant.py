"""The assistant: one message in, replies out. Imports no channel SDK."""

from __future__ import annotations

import logging
import re
import secrets
import time
from dataclasses import dataclass, field, replace
from typing import Awaitable, Callable

from bot.content import Content
from bot.dialogue import handoff, lapor_rakit
from bot.dialogue.state import COMPLAINT_REGION, FORM_KEY, HANDOFF_KEY, HANDOFF_REGION, HOME_KEY
from bot.knowledge import Office, Regency
from bot.messages import Button, Incoming, Reply, visible_text
from bot.nlu.matcher import MARKERS, Understanding
from bot.nlu.places import PlaceMatch
from bot.privacy import review_text
from bot.staff import REF_PLACEHOLDER, request_buttons
from bot.store.base import ConversationState, Store

log = logging.getLogger(__name__)

ASK_REGION = "office_for_region"
LAST_PLACE = "clarified_place"
LAST_INTENT = "last_intent"  # the previous answer's intent, for follow-ups
FOLLOW_UP_WORDS = 5  # a follow-up is short: not understood alone in this many words or fewer...
FOLLOW_UP_CUED = 3  # ...or this few, starting with a follow-up word ("kalau yang elektronik?")
FOLLOW_UP_CUES = frozenset("kalau kalo klo kl trus terus lalu bagaimana gimana yang yg tanpa selain what how and if about without".split())
CANCEL_TEXT = "/batal"
RATE_KEY = "rate"
# Commands every channel may send; each stands for a text MIA already understands.
REQUEST_REF = re.compile(r"\bRKT-\d{4}-\d{1,9}\b", re.IGNORECASE)  # a Lapor Rakit reference anywhere in a message
COMMANDS = {
    "/start": "halo",
    "/menu": "menu",
    "/help": "menu",
    "/petugas": "Bicara dengan petugas",
    "/batal": CANCEL_TEXT,
    "/cancel": CANCEL_TEXT,
}
# Words before an office's town name that make it the office asked about, not a home.
OFFICE_CUES = frozenset("ke kanim kantor imigrasi atau or to hrs harus ikut".split())
FALLBACK_BUTTONS = ("help", "human_handoff")
# A question MIA asked that a place answers: the intent the place completes.
PENDING_PLACE = {ASK_REGION: ASK_REGION, HANDOFF_REGION: "human_handoff", COMPLAINT_REGION: "complaint"}
MENU_BUTTONS = ("services_list", "passport_requirements", "office_for_region")
MENU_KEY = "menu"  # the menu MIA just offered: {"options": [...], "ref": review row}; a tap labels the message
ANSWERED_KEY = "answered"  # the last answer, for "Tidak membantu": {"text" (masked), "intent", "candidates"}
# The one-tap feedback under an answer. The payload is the title, so what the citizen sees in the
# chat is what they pressed; typing the same words counts too.
FEEDBACK = {"id": ("👍 Membantu", "👎 Tidak membantu"), "en": ("👍 Helpful", "👎 Not helpful")}
FEEDBACK_YES = frozenset(" ".join(t[0].lower().split()[1:]) for t in FEEDBACK.values())
FEEDBACK_NO = frozenset(" ".join(t[1].lower().split()[1:]) for t in FEEDBACK.values())
# Answers that ask for no feedback: small talk, menus of their own, and the flows.
NO_FEEDBACK = frozenset({"help", "bot_identity", "services_list", "human_handoff", "complaint", "callback_request", ASK_REGION})


@dataclass(frozen=True, slots=True)
class Outcome:
    """What MIA decided for one message: the replies and what it understood."""

    replies: tuple[Reply, ...]
    intent: str | None
    confidence: float
    region: str | None = None
    office: str | None = None
    understanding: Understanding | None = None
    state: ConversationState = field(default_factory=ConversationState)
    effects: tuple["Effect", ...] = ()
    offered: tuple[str, ...] = ()  # intents offered in a "Maksud Anda yang mana?" menu


Recorder = Callable[[object, Incoming, "Outcome"], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Effect:
    """Something to do in the same transaction as the reply: save a request, notify staff."""

    kind: str  # "create_request" | "staff_notice"
    office: str | None = None
    template: str | None = None  # staff_notice: template rendered for the staff chat
    context: dict = field(default_factory=dict)
    bind: tuple[str, str] | None = None  # (kind, target) so staff replies find the citizen


class Assistant:
    """Understands a citizen's message, decides, renders the answer and records the turn."""

    def __init__(self, content: Content, store: Store | None, staff_chats: dict[str, tuple[str, str]] | None = None,
                 form_ttl_seconds: float = 24 * 3600, on_enqueue: Callable[[], None] | None = None,
                 rate_limit: int = 0, rate_window_seconds: float = 60.0, staff_relays_per_minute: int = 6):
        self.content = content
        self.store = store
        self.staff_chats = dict(staff_chats or {})  # office id -> (channel, chat id) of its staff chat
        self.form_ttl_seconds = form_ttl_seconds
        self.on_enqueue = on_enqueue  # wakes the outbox worker
        self.rate_limit = rate_limit  # messages per chat per window; 0 = no limit
        self.rate_window = rate_window_seconds
        # Citizens' messages relayed into one staff chat per minute, all conversations together.
        self.staff_relays_per_minute = staff_relays_per_minute or 10**9

    def has_staff_chat(self, office_id: str) -> bool:
        """True when the office's staff chat is configured."""
        return office_id in self.staff_chats

    async def handle(self, msg: Incoming) -> list[Reply]:
        """Answer one incoming message; a re-delivered message id gets no second answer."""
        outcome = await self.handle_outcome(msg)
        return list(outcome.replies) if outcome else []

    async def handle_outcome(self, msg: Incoming, record: Recorder | None = None) -> Outcome | None:
        """Like handle, returning what MIA understood too; None for a re-delivered message.

        `record(unit, msg, outcome)` runs inside the same transaction, for a channel that keeps
        its own transcript (the web chat): the transcript and the state commit together.
        """
        async with self.store.unit() as unit:
            state = await unit.claim_and_load(msg.channel, msg.message_id, msg.chat_id)
            if state is None:
                log.info("duplicate message %s/%s ignored", msg.channel, msg.message_id)
                return None
            limited = self._rate_limited(state)
            if limited is not None:
                if record is not None and limited.replies:  # the channel delivers the slow-down message
                    await record(unit, msg, limited)
                await unit.save_state(msg.channel, msg.chat_id, limited.state)
                return limited
            words = msg.text.strip().split()
            ref = REQUEST_REF.search(msg.text[:2000])
            if words and words[0].lower() == "/status":
                outcome = await self._status(unit, state, words[1] if len(words) > 1 else "", msg)
            elif ref and not state.data.get(HANDOFF_KEY) and not state.data.get(FORM_KEY):
                outcome = await self._status(unit, state, ref.group(0), msg)  # "cek status RKT-2026-000001"
            elif msg.location is not None and not state.data.get(HANDOFF_KEY):
                outcome = self._reply(self.content, replace(state, pending=None), "location_unsupported", None, 0.0,
                                      buttons=(ASK_REGION,))
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
        return self._reply(self.content, limited, "slow_down", None, 0.0)

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
                replies = [Reply(r.text.replace(REF_PLACEHOLDER, request.ref), r.buttons) for r in replies]
                await self._notify_staff(unit, effect.office, "staff_request", {"request": request},
                                         ("request", request.ref), buttons=request_buttons(request))
            elif effect.kind == "review":  # "not helpful": the message, what MIA answered, what else it thought
                c = effect.context
                await unit.log_unanswered(msg.channel, effect.office, c["text"], "not_helpful", c["candidates"],
                                          ref=c["ref"], answered=c["answered"])
            elif effect.kind == "label":  # a tap on a menu MIA offered: the citizen labelled their message
                await unit.label_unanswered(effect.context["ref"], effect.context["intent"])
            elif effect.kind == "staff_notice":
                destination = self.staff_chats.get(effect.office)
                if (effect.template == "staff_citizen_message" and destination is not None
                        and await unit.recent_outbox(*destination, time.time() - 60) >= self.staff_relays_per_minute):
                    # The office's staff chat is busy this minute: the message waits, summarised.
                    info = outcome.state.data.get(HANDOFF_KEY)
                    if info is not None:
                        if effect.context.get("held"):  # the held batch it would have carried stays held
                            info["held"] = effect.context["held"]
                        replies += handoff.hold(self, self.content, outcome.state, info, effect.context["text"])
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

    async def _notify_staff(self, unit, office_id: str, template: str, context: dict, bind: tuple[str, str],
                            buttons: list[dict] | None = None) -> None:
        destination = self.staff_chats.get(office_id)
        if destination is None:
            log.warning("no staff chat configured for office %s: %s not sent", office_id, template)
            return
        content = self.content
        html = content.responses.render("id", template, kb=content.knowledge, office=content.knowledge.office(office_id),
                                        **context)
        payload = {"text": html, "html": True, "buttons": buttons or [], "bind": {"kind": bind[0], "target": bind[1]}}
        await unit.enqueue(destination[0], destination[1], payload)

    async def _status(self, unit, state: ConversationState, ref: str, msg: Incoming, asked: bool = False) -> Outcome:
        """/status REF: the state of a callback request (only for the chat that made it)."""
        request = await unit.get_request(ref) if ref else None
        if request is not None and (request.channel, request.chat_id) != (msg.channel, msg.chat_id):
            request = None  # another citizen's request: as if it did not exist
        content = self.content
        office = content.knowledge.office(request.office) if request else None
        return self._reply(content, replace(state, pending=None), "request_status", "request_status" if asked else None,
                           1.0, ref=ref.upper(), request=request, office=office, asked=asked,
                           buttons=("human_handoff",))

    # -- deciding (pure: no I/O) ----------------------------------------------------------

    def respond(self, text: str, state: ConversationState, user_name: str | None = None,
                now: float | None = None, media: str | None = None) -> Outcome:
        """Decide the answer to `text` given the conversation state; returns the new state too.

        `media`: what the message carried besides text (its caption is `text`)."""
        if media == "reaction":  # a reaction to an earlier message is no message: nothing to answer
            return Outcome(replies=(), intent=None, confidence=0.0, state=state)
        outcome = self._respond(text, state, user_name, now, media)
        if outcome.intent is not None:  # what a short follow-up ("kalau di lahat?") refers to
            outcome.state.data[LAST_INTENT] = outcome.intent
        elif outcome.replies:
            outcome.state.data.pop(LAST_INTENT, None)
        return outcome

    def _follow_up(self, content: Content, text: str, u: Understanding, state: ConversationState) -> Understanding:
        """A short message that leans on the previous answer, read together with that answer's topic.

        "kalau yang elektronik?" after the fees, "kalau di lahat?" after an office, "berapa lama?"
        after same-day service: the previous intent's title plus the new words decide.
        """
        last = state.data.get(LAST_INTENT)
        words = [w for w in u.text.split() if w not in MARKERS]
        if not last or content.intents.get(last) is None or len(words) > FOLLOW_UP_WORDS or u.by_title:
            return u
        cue = bool(words) and words[0] in FOLLOW_UP_CUES and len(words) <= FOLLOW_UP_CUED
        if u.intent is not None and not cue:
            return u
        title = content.intents.get(last).title[state.lang if state.lang in ("id", "en") else "id"]
        joined = content.matcher.understand(f"{title} {text}")
        # "kalo buat anak gimana?" after the requirements: a next step MIA itself offered (one of the
        # previous answer's buttons) is what a short message most likely asks, rather than the same
        # answer again or a menu.
        best = u.candidates[0] if u.candidates else None
        if (joined.intent in (None, last) and best is not None and best.intent != last
                and best.intent in content.intents.get(last).buttons and best.score >= content.matcher.t.accept / 2):
            return replace(u, intent=best.intent, also=None)
        if joined.intent is None:
            return u
        return replace(joined, text=u.text, places=u.places, lang=u.lang or joined.lang, also=None)

    def _respond(self, text: str, state: ConversationState, user_name: str | None = None,
                 now: float | None = None, media: str | None = None) -> Outcome:
        content = self.content  # one snapshot for the whole message, even if a reload swaps it
        now = time.time() if now is None else now
        new_state = ConversationState(lang=state.lang, pending=None, data=dict(state.data))
        # A place named in a question MIA had to clarify counts for the very next turn only; so do
        # the menu it offered and the answer that feedback would be about.
        remembered = new_state.data.pop(LAST_PLACE, None)
        menu = new_state.data.pop(MENU_KEY, None)
        answered = new_state.data.pop(ANSWERED_KEY, None)
        notes: list[Reply] = []
        form = new_state.data.get(FORM_KEY)
        if form and form.get("expires_at", 0) < now:
            new_state.data.pop(FORM_KEY)
            form = None
            notes.append(Reply(content.responses.render(state.lang, "form_expired", kb=content.knowledge)))
        if new_state.data.get(HANDOFF_KEY):
            return handoff.during(self, content, new_state, text, user_name, media, now)
        command = text.strip().split(maxsplit=1)[0].lower() if text.strip().startswith("/") else None
        if command in COMMANDS:
            text = COMMANDS[command]
        if not any(ch.isalnum() for ch in text[:2000]):
            new_state.pending = state.pending  # an empty message does not cancel a question
            return self._prepend(notes, self._reply(content, new_state, "bad_input", None, 0.0, buttons=MENU_BUTTONS))
        if text == CANCEL_TEXT:
            return self._cancel(content, new_state, state)
        said = " ".join(text.lower().split()).lstrip("👍👎 ")
        if said in FEEDBACK_YES or said in FEEDBACK_NO:
            return self._prepend(notes, self._feedback(content, new_state, answered, said in FEEDBACK_NO))
        u = content.matcher.understand(text)
        new_state.lang = u.lang or state.lang
        if not form and state.pending is None:
            u = self._follow_up(content, text, u, new_state)
        if form:
            return self._prepend(notes, lapor_rakit.turn(self, content, new_state, text, u, user_name, now))
        intent = u.intent
        confidence = u.confidence
        places = u.places
        has_place = bool(places.matches or places.outside)
        awaited = PENDING_PLACE.get(state.pending)
        if awaited and has_place and (intent is None or intent in (ASK_REGION, "human_handoff", awaited)):
            intent = awaited
            confidence = max(confidence, 1.0 if u.only_places else 0.9)
        elif awaited and intent in (None, "help") and not u.out_of_scope:
            # "Terus saya harus gimana?" while MIA waits for the regency: the question again, not a menu.
            intent = awaited

        if intent is None:
            return self._prepend(notes, self._not_understood(content, new_state, u))
        labels = ()
        if menu and menu.get("ref") and u.by_title and intent in menu["options"]:
            labels = (Effect("label", context={"ref": menu["ref"], "intent": intent}),)

        ctx = self._place_context(content, places.matches)
        if remembered and not places.matches and not places.outside:
            ctx = dict(ctx, region=content.knowledge.regency(remembered["region"]),
                       office=content.knowledge.office_for(remembered["region"]), place=remembered["place"])
        if ctx["region"] is not None:
            new_state.data[HOME_KEY] = {"region": ctx["region"].code, "place": ctx["place"]}
        elif intent == ASK_REGION and not places.outside and not ctx["ambiguous"]:
            ctx = self._home_context(content, new_state)  # "daerah saya": where the citizen said they live
        if intent == ASK_REGION:
            return self._prepend(notes, self._office_for_region(content, new_state, u, confidence, ctx))
        if intent == "callback_request":
            return self._prepend(notes, lapor_rakit.start(self, content, new_state, u, ctx, now))
        if intent in ("human_handoff", handoff.COMPLAINT):
            return self._prepend(notes, handoff.start(self, content, new_state, u, ctx, user_name, intent))
        if intent == "request_status":  # handle_outcome looks the chat's request up in the store
            return self._prepend(notes, self._reply(content, new_state, "request_status", intent, confidence, ref="",
                                                    request=None, office=None, asked=True,
                                                    buttons=("human_handoff",), understanding=u))
        region: Regency | None = ctx["region"]
        office: Office | None = ctx["office"]
        buttons = content.intents.get(intent).buttons
        if u.also and u.also != intent:  # a second question in the message: offered first among the buttons
            buttons = (u.also,) + tuple(b for b in buttons if b != u.also)
        outcome = self._reply(content, new_state, content.intents.get(intent).response, intent, confidence,
                              buttons=buttons, region=region, office=office, place=ctx["place"],
                              user_name=user_name, understanding=u)
        if intent not in NO_FEEDBACK and intent not in content.matcher.small_talk and not u.by_title:
            new_state.data[ANSWERED_KEY] = {"text": review_text(text, content.matcher.vocab, (user_name,)),
                                            "intent": intent,
                                            "candidates": [(c.intent, round(c.score, 1)) for c in u.candidates[:4]],
                                            "office": office.id if office else None}
            outcome = self._with_feedback(outcome, new_state.lang)
        return self._prepend(notes, replace(outcome, effects=outcome.effects + labels))

    @staticmethod
    def _with_feedback(outcome: Outcome, lang: str) -> Outcome:
        """The answer's last message gets the one-tap "Membantu / Tidak membantu" pair."""
        yes, no = FEEDBACK.get(lang, FEEDBACK["id"])
        last = outcome.replies[-1]
        last = Reply(last.text, last.buttons + (Button(yes, yes, "feedback"), Button(no, no, "feedback")))
        return replace(outcome, replies=outcome.replies[:-1] + (last,))

    def _feedback(self, content: Content, state: ConversationState, answered: dict | None, unhelpful: bool) -> Outcome:
        """A tap on the feedback pair. "Tidak membantu" puts the message in the review log and offers
        the other answers MIA thought of, and an officer; the citizen's next tap labels the message."""
        if not unhelpful or not answered:
            return self._reply(content, state, "feedback_thanks", None, 1.0)
        ref = secrets.token_hex(8)
        others = tuple(i for i, _ in answered["candidates"] if i != answered["intent"]
                       and i not in content.matcher.small_talk and i != "human_handoff"
                       and content.intents.get(i) is not None)[:content.matcher.t.menu]
        state.data[MENU_KEY] = {"options": list(others) + ["human_handoff"], "ref": ref}
        review = Effect("review", office=answered.get("office"),
                        context={"text": answered["text"], "answered": answered["intent"],
                                 "candidates": answered["candidates"], "ref": ref})
        outcome = self._reply(content, state, "not_helpful", None, 1.0, buttons=others + ("human_handoff",))
        return replace(outcome, effects=(review,), offered=others + ("human_handoff",))

    def _cancel(self, content: Content, new_state: ConversationState, old: ConversationState) -> Outcome:
        """/batal: close whatever is open (a form, a question MIA asked)."""
        had_form = new_state.data.pop(FORM_KEY, None) is not None
        template = "form_cancelled" if had_form else "nothing_to_cancel"
        return self._reply(content, new_state, template, None, 1.0, buttons=MENU_BUTTONS)

    @staticmethod
    def _prepend(notes: list[Reply], outcome: Outcome) -> Outcome:
        if not notes:
            return outcome
        return replace(outcome, replies=tuple(notes) + outcome.replies)

    def _not_understood(self, content: Content, state: ConversationState, u: Understanding) -> Outcome:
        matches = u.places.matches
        if u.only_places and matches:
            ctx = self._place_context(content, matches)
            if ctx["region"] is not None:
                title = content.intents.get(ASK_REGION).title[state.lang]
                button = Button(f"{title}: {ctx['place']}"[:40], f"{title} {ctx['place']}")
                return self._reply(content, state, "place_only", None, u.confidence, place=ctx["place"],
                                   extra_buttons=(button,), understanding=u)
        small_talk = content.matcher.small_talk
        cands = [c.intent for c in u.candidates if c.intent not in small_talk and c.intent != "human_handoff"]
        if not u.out_of_scope and cands and u.candidates[0].score >= content.matcher.t.clarify:
            # Unsure: the best answers as buttons, and an officer. The place is understood even
            # when the question is not: say which office serves it.
            offered = tuple(cands[:content.matcher.t.menu])
            state.data[MENU_KEY] = {"options": list(offered) + ["human_handoff"]}
            ctx = self._place_context(content, matches)
            if ctx["region"] is not None:
                state.data[LAST_PLACE] = {"region": ctx["region"].code, "place": ctx["place"]}
            outcome = self._reply(content, state, "clarify", None, u.confidence,
                                  buttons=offered + ("human_handoff",), understanding=u,
                                  region=ctx["region"], office=ctx["office"], place=ctx["place"])
            return replace(outcome, offered=offered + ("human_handoff",))
        outcome = self._reply(content, state, "fallback", None, u.confidence, buttons=FALLBACK_BUTTONS,
                              understanding=u)
        return replace(outcome, offered=("human_handoff",))

    def _office_for_region(self, content: Content, state: ConversationState, u: Understanding,
                           confidence: float, ctx: dict) -> Outcome:
        if ctx["ambiguous"]:
            state.pending = ASK_REGION
            places = [{"name": name, "office": office} for name, office in ctx["ambiguous"]]
            buttons = tuple(Button(p["name"], p["name"]) for p in places)
            return self._reply(content, state, "region_ambiguous", ASK_REGION, confidence, places=places,
                               extra_buttons=buttons, understanding=u)
        if ctx["region"] is not None:
            return self._reply(content, state, "office_for_region", ASK_REGION, confidence,
                               buttons=content.intents.get(ASK_REGION).buttons, region=ctx["region"],
                               office=ctx["office"], place=ctx["place"], also_outside=ctx["also_outside"],
                               understanding=u)
        if u.places.outside:
            return self._reply(content, state, "outside_region", ASK_REGION, confidence,
                               outside=u.places.outside[0].place, buttons=("office_list", "human_handoff"),
                               understanding=u)
        state.pending = ASK_REGION
        return self._reply(content, state, "ask_region", ASK_REGION, confidence, understanding=u)

    @staticmethod
    def _home_context(content: Content, state: ConversationState) -> dict:
        """The citizen's regency as remembered from earlier in the conversation."""
        home = state.data.get(HOME_KEY)
        ctx = {"region": None, "office": None, "place": None, "ambiguous": (), "also_outside": None}
        if home:
            region = content.knowledge.regency(home["region"])
            ctx.update(region=region, office=content.knowledge.office_for(home["region"]), place=home["place"])
        return ctx

    @staticmethod
    def _place_context(content: Content, matches: tuple[PlaceMatch, ...]) -> dict:
        """The one regency and office the message points at, or the conflicting candidates.

        Never guesses an office: places served by different offices make the answer a question.
        """
        kb = content.knowledge
        ctx = {"region": None, "office": None, "place": None, "ambiguous": (), "also_outside": None}
        if not matches:
            return ctx
        home = list(matches)
        if len({m.place.regency_code for m in matches}) > 1:
            seats = {name for o in kb.offices for name in o.seat_names}
            home = [m for m in matches if not (m.text in seats and m.preceded_by in OFFICE_CUES)] or home
        by_office: dict[str, tuple[str, Office]] = {}
        for m in home:
            office = kb.office_for(m.place.regency_code)
            if office is None:
                continue
            by_office.setdefault(office.id, (m.place.name, office))
        if len(by_office) > 1:
            ctx["ambiguous"] = tuple(by_office.values())
            return ctx
        first = home[0]
        ctx["region"] = kb.regency(first.place.regency_code)
        ctx["office"] = kb.office_for(first.place.regency_code)
        # Prefer the most specific name the citizen used (a district over its regency).
        specific = next((m for m in home if m.place.district_code), first)
        ctx["place"] = specific.place.name
        ctx["also_outside"] = specific.also_outside
        return ctx

    def _reply(self, content: Content, state: ConversationState, template: str, intent: str | None,
               confidence: float, buttons: tuple[str, ...] = (), extra_buttons: tuple[Button, ...] = (),
               understanding: Understanding | None = None, region: Regency | None = None,
               office: Office | None = None, place: str | None = None, user_name: str | None = None,
               **extra) -> Outcome:
        kb = content.knowledge
        lang = state.lang
        service = kb.services.get(intent) if intent else None
        context = dict(
            kb=kb, office=office, region=region, place=place, user_name=user_name, service=service,
            service_offices=[o for oid in (service.offices if service else ()) if (o := kb.office(oid))],
            also_outside=None,
        )
        context.update(extra)
        if template in ("clarify", "not_helpful"):
            context["candidates"] = [content.intents.get(b).title[lang] for b in buttons[:-1]]
        text = content.responses.render(lang, template, **context)
        rendered = list(extra_buttons)
        for intent_id in buttons:
            target = content.intents.get(intent_id)
            if target is not None and target.id != intent:
                title = target.title[lang]
                rendered.append(Button(title, title))
        return Outcome(
            replies=(Reply(text, tuple(rendered)),),
            intent=intent,
            confidence=round(confidence, 3),
            region=region.code if region else None,
            office=office.id if office else None,
            understanding=understanding,
            state=state,
        )

