"""Deciding the answer to one message from the conversation so far (pure: no I/O)."""

from __future__ import annotations

import secrets
import time
from dataclasses import replace
from typing import Callable, Sequence

from bot.core.content import Content
from bot.core.flows.base import Flow
from bot.core.flows.state import COMPLAINT_REGION, HANDOFF_REGION, HOME_KEY
from bot.core.messages import Button
from bot.core.nlu.matcher import MARKERS, OFFICE_WORDS, Understanding
from bot.core.nlu.places import PlaceMatch
from bot.core.privacy import review_text
from bot.core.turn import (FEEDBACK_TITLES, Effect, Outcome, PlaceContext, Turn, home_context, place_context,
                           reply, with_feedback)
from bot.store.base import ConversationState

ASK_REGION = "office_for_region"
# Answers about an office that name the citizen's own office when the message names no place.
HOME_OFFICE_INTENTS = frozenset({ASK_REGION, "office_contact", "office_hours"})
HANDOFF = "human_handoff"
LAST_PLACE = "clarified_place"
LAST_INTENT = "last_intent"  # the previous answer's intent, for follow-ups
FOLLOW_UP_WORDS = 5  # a follow-up is short: not understood alone in this many words or fewer...
FOLLOW_UP_CUED = 3  # ...or this few, starting with a follow-up word ("kalau yang elektronik?")
FOLLOW_UP_CUES = frozenset("kalau kalo klo kl trus terus lalu bagaimana gimana yang yg tanpa selain what how and if about without".split())
CANCEL_TEXT = "/batal"
# Commands every channel may send; each stands for a text MIA already understands.
COMMANDS = {
    "/start": "halo",
    "/menu": "menu",
    "/help": "menu",
    "/petugas": "Bicara dengan petugas",
    "/batal": CANCEL_TEXT,
    "/cancel": CANCEL_TEXT,
}
FALLBACK_BUTTONS = ("help", HANDOFF)
# A question MIA asked that a place answers: the intent the place completes.
PENDING_PLACE = {ASK_REGION: ASK_REGION, HANDOFF_REGION: HANDOFF, COMPLAINT_REGION: "complaint"}
MENU_BUTTONS = ("services_list", "passport_requirements", "office_for_region")
MENU_KEY = "menu"  # the menu MIA just offered: {"options": [...], "ref": review row}; a tap labels the message
ANSWERED_KEY = "answered"  # the last answer, for "Tidak membantu": {"text" (masked), "intent", "candidates"}
FEEDBACK_YES = frozenset(" ".join(t[0].lower().split()[1:]) for t in FEEDBACK_TITLES.values())
FEEDBACK_NO = frozenset(" ".join(t[1].lower().split()[1:]) for t in FEEDBACK_TITLES.values())
# Answers that ask for no feedback: small talk, menus of their own, and the flows.
NO_FEEDBACK = frozenset({"help", "bot_identity", "services_list", HANDOFF, "complaint", "callback_request", ASK_REGION})


def homes(content: Content, matches: tuple[PlaceMatch, ...]) -> tuple[PlaceMatch, ...]:
    """The places a message names as where someone is: not an office named by its town ("kanim palembang")."""
    seats = content.matcher.seat_names
    return tuple(m for m in matches if not (m.text in seats and m.preceded_by in OFFICE_WORDS))


class Dialogue:
    """Reads a message in its conversation and decides the answer; the flows take their turns."""

    def __init__(self, content: Callable[[], Content], flows: Sequence[Flow], staff_offices: Callable[[], frozenset],
                 form_ttl_seconds: float, retention_days: int = 90):
        self._content = content  # the current snapshot (a reload swaps it)
        self.flows = tuple(flows)
        self._starts = {intent: flow for flow in self.flows for intent in flow.intents}
        self._staff_offices = staff_offices
        self.form_ttl_seconds = form_ttl_seconds
        self.retention_days = retention_days

    def busy(self, state: ConversationState) -> bool:
        """True while a flow holds the conversation."""
        return any(f.active(state) for f in self.flows)

    def relaying(self, state: ConversationState) -> bool:
        """True while a flow relays the citizen's messages as written (a handoff)."""
        return any(f.raw and f.active(state) for f in self.flows)

    def respond(self, text: str, state: ConversationState, user_name: str | None = None,
                now: float | None = None, media: str | None = None) -> Outcome:
        """Decide the answer to `text` given the conversation state; returns the new state too.

        `media`: what the message carried besides text (its caption is `text`)."""
        if media == "reaction":  # a reaction to an earlier message is no message: nothing to answer
            return Outcome(replies=(), intent=None, confidence=0.0, state=state)
        content = self._content()  # one snapshot for the whole message
        turn = Turn(content, ConversationState(lang=state.lang, pending=None, data=dict(state.data)), text,
                    user_name, time.time() if now is None else now, media, self._staff_offices(),
                    self.form_ttl_seconds, self._switch, self.retention_days)
        outcome = self._decide(turn, state)
        if outcome.intent is not None:  # what a short follow-up ("kalau di lahat?") refers to
            outcome.state.data[LAST_INTENT] = outcome.intent
        elif outcome.replies:
            outcome.state.data.pop(LAST_INTENT, None)
        return outcome

    def _switch(self, turn: Turn, intent: str, u: Understanding | None, place: PlaceContext) -> Outcome:
        return self._starts[intent].start(turn, intent, u, place)

    def _decide(self, turn: Turn, state: ConversationState) -> Outcome:
        content, new_state, text = turn.content, turn.state, turn.text
        # A place named in a question MIA had to clarify counts for the very next turn only; so do
        # the menu it offered and the answer that feedback would be about.
        remembered = new_state.data.pop(LAST_PLACE, None)
        menu = new_state.data.pop(MENU_KEY, None)
        answered = new_state.data.pop(ANSWERED_KEY, None)
        notes = [note for flow in self.flows for note in flow.expire(turn)]
        for flow in self.flows:
            if flow.raw and flow.active(new_state):
                return flow.turn(turn, None).after(notes)
        command = text.strip().split(maxsplit=1)[0].lower() if text.strip().startswith("/") else None
        if command in COMMANDS:
            text = turn.text = COMMANDS[command]
        if not any(ch.isalnum() for ch in text[:2000]):
            new_state.pending = state.pending  # an empty message does not cancel a question
            return turn.reply("bad_input", None, 0.0, buttons=MENU_BUTTONS).after(notes)
        if text == CANCEL_TEXT:
            cancelled = [flow.cancel(new_state) for flow in self.flows if not flow.raw]
            return turn.reply("form_cancelled" if any(cancelled) else "nothing_to_cancel", None, 1.0,
                              buttons=MENU_BUTTONS)
        said = " ".join(text.lower().split()).lstrip("👍👎 ")
        if said in FEEDBACK_YES or said in FEEDBACK_NO:
            return self._feedback(content, new_state, answered, said in FEEDBACK_NO).after(notes)
        u = content.matcher.understand(text)
        new_state.lang = u.lang or state.lang
        active = next((flow for flow in self.flows if flow.active(new_state)), None)
        if active is None and state.pending is None:
            u = self._follow_up(content, text, u, new_state)
        if active is not None:
            return active.turn(turn, u).after(notes)
        intent = u.intent
        confidence = u.confidence
        places = u.places
        has_place = bool(places.matches or places.outside)
        awaited = PENDING_PLACE.get(state.pending)
        if awaited and has_place and (intent is None or intent in (ASK_REGION, HANDOFF, awaited)):
            intent = awaited
            confidence = max(confidence, 1.0 if u.only_places else 0.9)
        elif awaited and intent in (None, "help") and not u.out_of_scope:
            # "Terus saya harus gimana?" while MIA waits for the regency: the question again, not a menu.
            intent = awaited

        if intent is None:
            return self._not_understood(content, new_state, u).after(notes)
        labels = ()
        if menu and menu.get("ref") and u.by_title and intent in menu["options"]:
            labels = (Effect("label", context={"ref": menu["ref"], "intent": intent}),)

        ctx = place_context(content, places.matches)
        # Where the citizen is: the places named, except an office named by its town ("kanim muara enim").
        home = place_context(content, homes(content, places.matches))
        if remembered and not places.matches and not places.outside:
            ctx = replace(ctx, region=content.knowledge.regency(remembered["region"]),
                          office=content.knowledge.office_for(remembered["region"]), place=remembered["place"])
            home = home if remembered.get("office") else ctx
        if home.region is not None:
            new_state.data[HOME_KEY] = {"region": home.region.code, "place": home.place}
        elif ctx.region is None and intent in HOME_OFFICE_INTENTS and not places.outside and not ctx.ambiguous:
            # "daerah saya", or the address or hours asked with no place: the office of where the
            # citizen said they live.
            ctx = home_context(content, new_state)
        if intent == ASK_REGION:
            return self._office_for_region(content, new_state, u, confidence, ctx).after(notes)
        if intent in self._starts:
            if ctx.region is not None and home.region is None:
                ctx = replace(ctx, as_office=True)
            return self._starts[intent].start(turn, intent, u, ctx).after(notes)
        if intent == "request_status":  # the assistant looks the chat's request up in the store
            return turn.reply("request_status", intent, confidence, ref="", request=None, office=None, asked=True,
                              buttons=(HANDOFF,), understanding=u).after(notes)
        buttons = content.intents.get(intent).buttons
        if u.also and u.also != intent:  # a second question in the message: offered first among the buttons
            buttons = (u.also,) + tuple(b for b in buttons if b != u.also)
        outcome = turn.reply(content.intents.get(intent).response, intent, confidence, buttons=buttons,
                             region=ctx.region, office=ctx.office, place=ctx.place, user_name=turn.user_name,
                             understanding=u)
        if intent not in NO_FEEDBACK and intent not in content.matcher.small_talk and not u.by_title:
            new_state.data[ANSWERED_KEY] = {"text": review_text(text, content.matcher.vocab, (turn.user_name,)),
                                            "intent": intent,
                                            "candidates": [(c.intent, round(c.score, 1)) for c in u.candidates[:4]],
                                            "office": ctx.office.id if ctx.office else None}
            outcome = with_feedback(outcome, new_state.lang)
        return replace(outcome, effects=outcome.effects + labels).after(notes)

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

    @staticmethod
    def _feedback(content: Content, state: ConversationState, answered: dict | None, unhelpful: bool) -> Outcome:
        """A tap on the feedback pair. "Tidak membantu" puts the message in the review log and offers
        the other answers MIA thought of, and an officer; the citizen's next tap labels the message."""
        if not unhelpful or not answered:
            return reply(content, state, "feedback_thanks", None, 1.0)
        ref = secrets.token_hex(8)
        others = tuple(i for i, _ in answered["candidates"] if i != answered["intent"]
                       and i not in content.matcher.small_talk and i != HANDOFF
                       and content.intents.get(i) is not None)[:content.matcher.t.menu]
        state.data[MENU_KEY] = {"options": list(others) + [HANDOFF], "ref": ref}
        review = Effect("review", office=answered.get("office"),
                        context={"text": answered["text"], "answered": answered["intent"],
                                 "candidates": answered["candidates"], "ref": ref})
        outcome = reply(content, state, "not_helpful", None, 1.0, buttons=others + (HANDOFF,))
        return replace(outcome, effects=(review,), offered=others + (HANDOFF,))

    @staticmethod
    def _not_understood(content: Content, state: ConversationState, u: Understanding) -> Outcome:
        matches = u.places.matches
        if u.only_places and matches:
            ctx = place_context(content, matches)
            if ctx.region is not None:
                title = content.intents.get(ASK_REGION).title[state.lang]
                button = Button(f"{title}: {ctx.place}"[:40], f"{title} {ctx.place}")
                return reply(content, state, "place_only", None, u.confidence, place=ctx.place,
                             extra_buttons=(button,), understanding=u)
        small_talk = content.matcher.small_talk
        cands = [c.intent for c in u.candidates if c.intent not in small_talk and c.intent != HANDOFF]
        if not u.out_of_scope and cands and u.candidates[0].score >= content.matcher.t.clarify:
            # Unsure: the best answers as buttons, and an officer. The place is understood even
            # when the question is not: say which office serves it.
            offered = tuple(cands[:content.matcher.t.menu])
            state.data[MENU_KEY] = {"options": list(offered) + [HANDOFF]}
            ctx = place_context(content, matches)
            if ctx.region is not None:
                state.data[LAST_PLACE] = {"region": ctx.region.code, "place": ctx.place,
                                          "office": not homes(content, matches)}
            outcome = reply(content, state, "clarify", None, u.confidence, buttons=offered + (HANDOFF,),
                            understanding=u, region=ctx.region, office=ctx.office, place=ctx.place)
            return replace(outcome, offered=offered + (HANDOFF,))
        outcome = reply(content, state, "fallback", None, u.confidence, buttons=FALLBACK_BUTTONS, understanding=u)
        return replace(outcome, offered=(HANDOFF,))

    @staticmethod
    def _office_for_region(content: Content, state: ConversationState, u: Understanding, confidence: float,
                           ctx: PlaceContext) -> Outcome:
        if ctx.ambiguous:
            state.pending = ASK_REGION
            places = [{"name": name, "office": office} for name, office in ctx.ambiguous]
            buttons = tuple(Button(p["name"], p["name"]) for p in places)
            return reply(content, state, "region_ambiguous", ASK_REGION, confidence, places=places,
                         extra_buttons=buttons, understanding=u)
        if ctx.region is not None:
            return reply(content, state, "office_for_region", ASK_REGION, confidence,
                         buttons=content.intents.get(ASK_REGION).buttons, region=ctx.region, office=ctx.office,
                         place=ctx.place, also_outside=ctx.also_outside, understanding=u)
        if u.places.outside:
            return reply(content, state, "outside_region", ASK_REGION, confidence, outside=u.places.outside[0].place,
                         buttons=("office_list", HANDOFF), understanding=u)
        state.pending = ASK_REGION
        return reply(content, state, "ask_region", ASK_REGION, confidence, understanding=u)
