"""The assistant: one message in, replies out. Imports no channel SDK."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from bot.content import Content
from bot.knowledge import Office, Regency
from bot.messages import Button, Incoming, Reply
from bot.nlu.matcher import Understanding
from bot.nlu.places import PlaceMatch
from bot.store.base import ConversationState, Store

log = logging.getLogger(__name__)

ASK_REGION = "office_for_region"
LAST_PLACE = "clarified_place"
# Words before an office's town name that make it the office asked about, not a home.
OFFICE_CUES = frozenset("ke kanim kantor imigrasi atau or to hrs harus ikut".split())
FALLBACK_BUTTONS = ("help", "human_handoff")
MENU_BUTTONS = ("services_list", "passport_requirements", "office_for_region")


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


class Assistant:
    """Understands a citizen's message, decides, renders the answer and records the turn."""

    def __init__(self, content: Content, store: Store):
        self.content = content
        self.store = store

    async def handle(self, msg: Incoming) -> list[Reply]:
        """Answer one incoming message; a re-delivered message id gets no second answer."""
        outcome = await self.handle_outcome(msg)
        return list(outcome.replies) if outcome else []

    async def handle_outcome(self, msg: Incoming) -> Outcome | None:
        """Like handle, returning what MIA understood too; None for a re-delivered message."""
        async with self.store.unit() as unit:
            if not await unit.claim_message(msg.channel, msg.message_id):
                log.info("duplicate message %s/%s ignored", msg.channel, msg.message_id)
                return None
            state = await unit.load_state(msg.channel, msg.chat_id)
            outcome = self.respond(msg.text, state, msg.user_name)
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
        return outcome

    # -- deciding (pure: no I/O) ----------------------------------------------------------

    def respond(self, text: str, state: ConversationState, user_name: str | None = None) -> Outcome:
        """Decide the answer to `text` given the conversation state; returns the new state too."""
        content = self.content  # one snapshot for the whole message, even if a reload swaps it
        new_state = ConversationState(lang=state.lang, pending=None, data=dict(state.data))
        # A place named in a question MIA had to clarify counts for the very next turn only.
        remembered = new_state.data.pop(LAST_PLACE, None)
        if not any(ch.isalnum() for ch in text[:2000]):
            new_state.pending = state.pending  # an empty message does not cancel a question
            return self._reply(content, new_state, "bad_input", None, 0.0, buttons=MENU_BUTTONS)
        u = content.matcher.understand(text)
        lang = u.lang or state.lang
        new_state.lang = lang
        intent = u.intent
        confidence = u.confidence
        places = u.places
        has_place = bool(places.matches or places.outside)
        if state.pending == ASK_REGION and has_place and (intent is None or intent == ASK_REGION):
            intent, confidence = ASK_REGION, max(confidence, 1.0 if u.only_places else 0.9)

        if intent is None:
            return self._not_understood(content, new_state, u)

        ctx = self._place_context(content, places.matches)
        if remembered and not places.matches and not places.outside:
            ctx = dict(ctx, region=content.knowledge.regency(remembered["region"]),
                       office=content.knowledge.office_for(remembered["region"]), place=remembered["place"])
        if intent == ASK_REGION:
            return self._office_for_region(content, new_state, u, confidence, ctx)
        region: Regency | None = ctx["region"]
        office: Office | None = ctx["office"]
        return self._reply(
            content, new_state, content.intents.get(intent).response, intent, confidence,
            buttons=content.intents.get(intent).buttons, region=region, office=office, place=ctx["place"],
            user_name=user_name, understanding=u,
        )

    def _not_understood(self, content: Content, state: ConversationState, u: Understanding) -> Outcome:
        matches = u.places.matches
        if u.only_places and matches:
            ctx = self._place_context(content, matches)
            if ctx["region"] is not None:
                title = content.intents.get(ASK_REGION).title[state.lang]
                button = Button(f"{title}: {ctx['place']}"[:40], f"{title} {ctx['place']}")
                return self._reply(content, state, "place_only", None, u.confidence, place=ctx["place"],
                                   extra_buttons=(button,), understanding=u)
        cands = u.candidates
        if (not u.out_of_scope and len(cands) >= 2 and cands[0].score >= content.matcher.t.clarify):
            # The place is understood even when the question is not: say which office serves it.
            ctx = self._place_context(content, matches)
            if ctx["region"] is not None:
                state.data[LAST_PLACE] = {"region": ctx["region"].code, "place": ctx["place"]}
            return self._reply(content, state, "clarify", None, u.confidence,
                               buttons=(cands[0].intent, cands[1].intent, "human_handoff"), understanding=u,
                               region=ctx["region"], office=ctx["office"], place=ctx["place"])
        return self._reply(content, state, "fallback", None, u.confidence, buttons=FALLBACK_BUTTONS,
                           understanding=u)

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
        if template == "clarify":
            context["candidates"] = [content.intents.get(b).title[lang] for b in buttons[:2]]
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

