"""Handoff to staff: MIA steps aside while a staff member talks to the citizen through it."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from bot.dialogue.state import COMPLAINT_REGION, HANDOFF_KEY, HANDOFF_REGION

if TYPE_CHECKING:  # pragma: no cover
    from bot.assistant import Assistant, Outcome
    from bot.content import Content
    from bot.nlu.matcher import Understanding
    from bot.store.base import ConversationState

INTENT = "human_handoff"
COMPLAINT = "complaint"  # a complaint is a handoff too: acknowledged, warned about touts, routed to staff
BACK_TO_BOT = {"kembali ke bot", "kembali ke mia", "back to bot", "/kembali", "/bot", "selesai", "/selesai"}


def start(assistant: "Assistant", content: "Content", state: "ConversationState", u: "Understanding",
          ctx: dict, user_name: str | None, intent: str = INTENT) -> "Outcome":
    """Hand the conversation to the staff of the office serving the citizen's regency.

    Without a known regency MIA asks for it first: a request must reach the right office.
    `intent` is human_handoff or complaint; each has its own answer (the template of that name).
    """
    from bot.assistant import Effect

    if ctx.get("region") is None:
        home = assistant._home_context(content, state)
        ctx = home if home["region"] is not None else ctx
    confidence = u.confidence if u else 1.0
    if ctx.get("region") is None:
        state.pending = COMPLAINT_REGION if intent == COMPLAINT else HANDOFF_REGION
        template = COMPLAINT if intent == COMPLAINT else "ask_region"
        return assistant._reply(content, state, template, intent, confidence, understanding=u,
                                staff_available=False)
    office = ctx["office"]
    available = assistant.has_staff_chat(office.id)
    outcome = assistant._reply(content, state, intent, intent, confidence,
                               understanding=u, region=ctx["region"], office=office, place=ctx["place"],
                               user_name=user_name, staff_available=available,
                               buttons=content.intents.get(intent).buttons if not available else ())
    if not available:  # nobody would read the citizen's messages: MIA does not fall silent
        return outcome
    state.data[HANDOFF_KEY] = {"office": office.id, "region": ctx["region"].code, "place": ctx["place"]}
    notice = Effect("staff_notice", office=office.id, template="staff_handoff",
                    context={"place": ctx["place"], "region": ctx["region"].name, "user_name": user_name,
                             "with_history": True, "complaint": intent == COMPLAINT},
                    bind=("handoff", ""))
    return replace(outcome, effects=(notice,))


def during(assistant: "Assistant", content: "Content", state: "ConversationState", text: str,
           user_name: str | None) -> "Outcome":
    """A citizen's message while staff have the conversation: relayed, MIA stays silent."""
    from bot.assistant import Effect, Outcome

    info = state.data[HANDOFF_KEY]
    said = " ".join(text.lower().split()).strip(" .!")
    if said in BACK_TO_BOT:
        state.data.pop(HANDOFF_KEY)
        outcome = assistant._reply(content, state, "handoff_ended", None, 1.0, buttons=("help",))
        notice = Effect("staff_notice", office=info["office"], template="staff_handoff_closed",
                        context={"by_citizen": True, "user_name": user_name}, bind=("handoff", ""))
        return replace(outcome, effects=(notice,))
    notice = Effect("staff_notice", office=info["office"], template="staff_citizen_message",
                    context={"text": text[:3000], "user_name": user_name}, bind=("handoff", ""))
    return Outcome(replies=(), intent=None, confidence=0.0, state=state, effects=(notice,))
