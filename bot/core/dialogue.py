"""Deciding the answer to one message from the conversation so far (pure: no I/O)."""

from __future__ import annotations

import re
import secrets
import time
from dataclasses import replace
from typing import Callable, Sequence

from bot.core.content import Content
from bot.core.flows.base import Flow
from bot.core.flows.state import COMPLAINT_REGION, HANDOFF_REGION, HOME_KEY
from bot.core.messages import Button
from bot.core.nlu.matcher import MARKERS, OFFICE_WORDS, Understanding
from bot.core.nlu.normalize import clean
from bot.core.nlu.places import PlaceMatch
from bot.core.privacy import review_text
from bot.core.topics import Topics
from bot.core.turn import (FEEDBACK_TITLES, Effect, Outcome, PlaceContext, Turn, home_context, place_context,
                           reply, with_feedback)
from bot.store.base import ConversationState

ASK_REGION = "office_for_region"
ANY_OFFICE = "passport_any_office"
PULLED_WORDS = 12  # a question this short names its topic; a longer story's keyword may be an aside
WHERE_WORDS = frozenset("mana dimana kemana kantor kanim where office".split())  # a message that asks where
# Answers about an office that name the citizen's own office when the message names no place.
HOME_OFFICE_INTENTS = frozenset({ASK_REGION, "office_contact", "office_hours"})
HANDOFF = "human_handoff"
LAST_PLACE = "clarified_place"
LAST_INTENT = "last_intent"  # the previous answer's intent, for follow-ups
FOLLOW_UP_WORDS = 5  # a follow-up is short: read in its conversation in this many words or fewer...
FOLLOW_UP_CUED = 3  # ...and with the previous topic even when understood alone, this few starting with a follow-up word
# How much of a message (by weight) one line of the previous answer holds: this much, and the message
# asks again what that line says; half, and a message not understood alone leans on that answer.
RESTATED = 2 / 3
ECHOED = 1 / 2
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
CLAUSE_END = re.compile(r"[,;.!?\n]+")  # where a thanks or a greeting ends and the question begins


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
        self._topics: Topics | None = None

    def topics(self, content: Content) -> Topics:
        """The topics of this content snapshot (a reload swaps them)."""
        if self._topics is None or self._topics.content is not content:
            self._topics = Topics(content)
        return self._topics

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
        follows = active is None and state.pending is None
        if follows:
            u = self._follow_up(content, text, u, new_state)
        if active is None:
            u = self._past_small_talk(content, text, u, new_state if follows else None)
        if active is not None:
            return active.turn(turn, u).after(notes)
        intent = u.intent
        confidence = u.confidence
        places = u.places
        abroad = content.knowledge.abroad_in(clean(text), places.outside)
        has_place = bool(places.matches or places.outside or abroad)
        awaited = PENDING_PLACE.get(state.pending)
        if awaited and has_place and (intent is None or intent in (ASK_REGION, HANDOFF, awaited)):
            intent = awaited
            confidence = max(confidence, 1.0 if u.only_places else 0.9)
        elif awaited and intent in (None, "help") and not u.out_of_scope:
            # "Terus saya harus gimana?" while MIA waits for the regency: the question again, not a menu.
            intent = awaited

        if places.outside and places.matches and not awaited and (
                intent == ASK_REGION or (intent is None and {c.intent for c in u.candidates[:2]} >= {ASK_REGION, ANY_OFFICE})):
            # "sy dr bengkulu, bisa bikin paspor di palembang?": someone from elsewhere asks whether
            # they may apply here; any office will do, and the office of the place is named.
            intent, confidence = ANY_OFFICE, max(confidence, content.matcher.t.accept / 100)
        words = u.text.split()
        if places.matches and not awaited and intent in (None, ASK_REGION) and not u.out_of_scope \
                and u.candidates and u.candidates[0].intent == ASK_REGION \
                and len(words) <= PULLED_WORDS and not WHERE_WORDS.intersection(words):
            # "sy tinggal di muaraenim mau bikin paspor syaratnya apa": the place pulls toward its
            # office, but the message names another topic by that topic's own words and asks no
            # "where": that topic is the question (the place is kept; the answer names its office).
            topics = self.topics(content)
            named = [c.intent for c in u.candidates[1:3] if topics.named(u.text, c.intent)]
            if len(named) == 1:
                intent, confidence = named[0], max(confidence, content.matcher.t.accept / 100)
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
        if home.region is not None and not (intent == ANY_OFFICE and places.outside):  # they live elsewhere
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
        # "paspor hilang di malaysia": the citizen may be abroad, where MIA's steps do not apply.
        if abroad and HANDOFF not in buttons:
            buttons = buttons + (HANDOFF,)
        if u.also and u.also != intent:  # a second question in the message: offered first among the buttons
            buttons = (u.also,) + tuple(b for b in buttons if b != u.also)
        outcome = turn.reply(content.intents.get(intent).response, intent, confidence, buttons=buttons,
                             region=ctx.region, office=ctx.office, place=ctx.place, user_name=turn.user_name,
                             abroad=abroad, understanding=u)
        if intent not in NO_FEEDBACK and intent not in content.matcher.small_talk and not u.by_title:
            new_state.data[ANSWERED_KEY] = {"text": review_text(text, content.matcher.vocab, (turn.user_name,)),
                                            "intent": intent,
                                            "candidates": [(c.intent, round(c.score, 1)) for c in u.candidates[:4]],
                                            "office": ctx.office.id if ctx.office else None}
            outcome = with_feedback(outcome, new_state.lang)
        return replace(outcome, effects=outcome.effects + labels).after(notes)

    def _follow_up(self, content: Content, text: str, u: Understanding, state: ConversationState) -> Understanding:
        """A short message read in its conversation: the previous answer decides what it asks.

        - A next step the previous answer offered (one of its buttons), named in the message's own
          words, is what it asks: "kalau hilang?" after the renewal answer.
        - A message that says again what a line of the previous answer says asks about that answer:
          "sabtu minggu diitung ga" after the processing time ("Sabtu dan Minggu tidak dihitung"),
          "paspor sy terbit 2008" after the renewal answer ("paspor yang terbit setelah 2009").
        - Another topic named in the message's own words is a new question: "what about
          requirements for renewal?" after the child passport.
        - A short message that is not understood alone but leans on the previous answer is read
          with that answer's topic ("previous title + text"): "kalau di lahat?" after an office.
        """
        last = state.data.get(LAST_INTENT)
        previous = content.intents.get(last) if last else None
        words = [w for w in u.text.split() if w not in MARKERS]
        if previous is None or u.by_title or len(words) > FOLLOW_UP_WORDS:
            return u
        matcher, topics = content.matcher, self.topics(content)
        best = u.candidates[0] if u.candidates else None
        other = best.intent if best is not None and best.intent != last else None
        # Another topic the message alone leans to, at half what MIA needs to answer it alone.
        topic = other if other and other not in matcher.small_talk and best.score >= matcher.t.accept / 2 else None
        named = topic is not None and not u.out_of_scope and topics.named(u.text, topic)
        if named and topic in previous.buttons:
            return self._read_as(u, topic)
        echo = topics.echo(u.text, last, other)
        if u.intent != last and u.intent not in matcher.small_talk and echo >= RESTATED:
            return replace(u, intent=last, also=None)
        cue = bool(words) and words[0] in FOLLOW_UP_CUES and len(words) <= FOLLOW_UP_CUED
        if u.intent is not None and (named or not cue):
            return u
        title = previous.title[state.lang if state.lang in ("id", "en") else "id"]
        joined = matcher.understand(f"{title} {text}")
        if topic is not None and (named or topic in previous.buttons) and joined.intent in (None, last):
            # Read with the previous topic, the message would get the same answer again (or a menu);
            # but its own words name another topic ("what about requirements for renewal?" after the
            # child passport), or it leans to a next step MIA itself offered ("kalo mau ganti yg
            # baru?" after the requirements): that topic is what it asks.
            return self._read_as(u, topic)
        # Otherwise the previous topic decides only for a message that leans on it: a follow-up word;
        # another place after an answer about a place ("kalau di lahat?" after an office, "di muara
        # enim bisa?"); or, when MIA does not read it as out of scope, a reading the message alone
        # had in mind (a menu would offer it) or half of what it says in a line of the previous
        # answer. "prabumulih" after the processing time is no follow-up, "asdfgh" none at all.
        considered = {c.intent for c in u.candidates if c.score >= matcher.t.clarify}
        about_place = (bool(u.places.matches) and last in HOME_OFFICE_INTENTS
                       and joined.intent in HOME_OFFICE_INTENTS)
        leans = cue or about_place or (not u.out_of_scope and (joined.intent in considered or echo >= ECHOED))
        if joined.intent is None or not leans:
            return u
        return replace(joined, text=u.text, places=u.places, lang=u.lang or joined.lang, also=None)

    @staticmethod
    def _read_as(u: Understanding, intent: str) -> Understanding:
        return u if u.intent == intent else replace(u, intent=intent, also=None)

    def _past_small_talk(self, content: Content, text: str, u: Understanding,
                         state: ConversationState | None) -> Understanding:
        """Thanks or a greeting in the same sentence as a question ("oke makasih, kalau perpanjang
        syaratnya apa?"): the question, read without the parts that are small talk on their own,
        when the whole reads as small talk or as nothing MIA can answer.

        `state`: the conversation, when the question may follow up the previous answer."""
        small_talk = content.matcher.small_talk
        if (u.intent is not None and u.intent not in small_talk) or u.by_title:
            return u
        topics = self.topics(content)
        if u.intent is None and not any(topics.named(u.text, intent) for intent in small_talk):
            return u  # no thanks nor greeting in it: nothing to read past
        clauses = [c.strip() for c in CLAUSE_END.split(text) if c.strip()]
        if len(clauses) < 2:
            return u
        rest = [c for c in clauses if content.matcher.understand(c).intent not in small_talk]
        if not rest or len(rest) == len(clauses):
            return u
        question = ", ".join(rest)
        q = content.matcher.understand(question)
        words = [w for w in q.text.split() if w not in MARKERS]
        if state is not None and (q.intent is not None or (words and words[0] in FOLLOW_UP_CUES)):
            # A question that follows up the previous answer ("makasih min, kalo yg elektronik?");
            # a remark is no question ("Prosesnya cepat. Thx." stays thanks).
            q = self._follow_up(content, question, q, state)
        return q if q.intent is not None and q.intent not in small_talk else u

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
