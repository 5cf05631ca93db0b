"""Handoff to staff: MIA steps aside while a staff member talks to the citizen through it."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from bot.core.flows.state import COMPLAINT_REGION, HANDOFF_KEY, HANDOFF_REGION
from bot.core.knowledge import ABROAD, OutsidePlace
from bot.core.nlu.normalize import clean
from bot.core.messages import Reply, visible_text
from bot.core.turn import Effect, Outcome, PlaceContext, Turn, reply

if TYPE_CHECKING:  # pragma: no cover
    from bot.core.content import Content
    from bot.core.nlu.matcher import Understanding
    from bot.store.base import ConversationState

INTENT = "human_handoff"
COMPLAINT = "complaint"  # a complaint is a handoff too: acknowledged, warned about touts, routed to staff
BACK_TO_BOT = {"kembali ke bot", "kembali ke mia", "back to bot", "/kembali", "/bot", "selesai", "/selesai"}
# A citizen's messages reach the staff chat at most this often; the rest wait, summarised, for the
# next one that may go (a flood from the web must not bury the office's real work).
RELAYS_PER_MINUTE = 4
RELAY_CHARS = 1500  # of one relayed message
HELD_KEPT = 5  # held messages whose text is kept for the summary (all are counted)
HELD_CHARS = 300  # of each kept held message
MEDIA_NAMES = {"photo": "foto", "voice": "pesan suara", "video": "video", "document": "dokumen",
               "sticker": "stiker", "contact": "kontak", "other": "lampiran"}


class HandoffFlow:
    """A staff member has the conversation; MIA relays the citizen's messages as written."""

    key = HANDOFF_KEY
    intents = frozenset({INTENT, COMPLAINT})
    raw = True

    def active(self, state: "ConversationState") -> bool:
        return bool(state.data.get(HANDOFF_KEY))

    def expire(self, turn: Turn) -> tuple[Reply, ...]:
        return ()  # a handoff lasts until staff or the citizen end it

    def cancel(self, state: "ConversationState") -> bool:
        return False  # "kembali ke bot" ends it, so staff are told

    def start(self, turn: Turn, intent: str, u: "Understanding | None", place: PlaceContext) -> Outcome:
        """Hand the conversation to the staff of the office serving the citizen's regency.

        Without a known regency MIA asks for it first: a request must reach the right office.
        `intent` is human_handoff or complaint; each has its own answer (the template of that name).
        """
        state = turn.state
        if place.region is None or place.as_office:  # the office serving where the citizen lives
            home = turn.home()
            place = home if home.region is not None else place
        confidence = u.confidence if u else 1.0
        outside = outside_place(turn.content, u, turn.text) if u and place.region is None else None
        if outside is not None:  # no office MIA serves covers it: said plainly, not the same question again
            state.pending = COMPLAINT_REGION if intent == COMPLAINT else HANDOFF_REGION
            return turn.reply("outside_region", intent, confidence, understanding=u, outside=outside,
                              buttons=("office_list",))
        if place.region is None:
            state.pending = COMPLAINT_REGION if intent == COMPLAINT else HANDOFF_REGION
            template = COMPLAINT if intent == COMPLAINT else "ask_region"
            return turn.reply(template, intent, confidence, understanding=u, staff_available=False)
        office = place.office
        available = turn.has_staff(office.id)
        outcome = turn.reply(intent, intent, confidence, understanding=u, region=place.region, office=office,
                             place=place.place, user_name=turn.user_name, staff_available=available,
                             buttons=turn.content.intents.get(intent).buttons if not available else ())
        if not available:  # nobody would read the citizen's messages: MIA does not fall silent
            return outcome
        state.data[HANDOFF_KEY] = {"office": office.id, "region": place.region.code, "place": place.place}
        notice = Effect("staff_notice", office=office.id, template="staff_handoff",
                        context={"place": place.place, "region": place.region.name, "user_name": turn.user_name,
                                 "with_history": True, "complaint": intent == COMPLAINT},
                        bind=("handoff", ""))
        return replace(outcome, effects=(notice,))

    def turn(self, turn: Turn, u: "Understanding | None" = None) -> Outcome:
        """A citizen's message while staff have the conversation: relayed (within the budget), MIA
        stays silent; a photo or voice note is named to staff, and the citizen told it was not sent."""
        state, media = turn.state, turn.media
        info = state.data[HANDOFF_KEY]
        said = " ".join(turn.text.lower().split()).strip(" .!")
        if said in BACK_TO_BOT and not media:
            state.data.pop(HANDOFF_KEY)
            outcome = turn.reply("handoff_ended", None, 1.0, buttons=("help",))
            notice = Effect("staff_notice", office=info["office"], template="staff_handoff_closed",
                            context={"by_citizen": True, "user_name": turn.user_name, "held": held_summary(info)},
                            bind=("handoff", ""))
            return replace(outcome, effects=(notice,))
        body = visible_text(turn.text)[:RELAY_CHARS].strip()
        if media:
            body = f"[{MEDIA_NAMES.get(media, 'lampiran')} tidak diteruskan]" + (f" {body}" if body else "")
        replies: tuple[Reply, ...] = ()
        if media:  # the citizen must know the photo did not reach anyone
            replies = turn.reply("media_in_handoff", None, 1.0, media=MEDIA_NAMES.get(media, "lampiran")).replies
        recent = [t for t in info.get("relayed", []) if turn.now - t < 60]
        if len(recent) >= RELAYS_PER_MINUTE:
            return Outcome(replies=replies + hold(turn.content, state, info, body), intent=None, confidence=0.0,
                           state=state)
        info["relayed"] = recent + [turn.now]
        notice = Effect("staff_notice", office=info["office"], template="staff_citizen_message",
                        context={"text": body, "user_name": turn.user_name, "held": held_summary(info, clear=True)},
                        bind=("handoff", ""))
        return Outcome(replies=replies, intent=None, confidence=0.0, state=state, effects=(notice,))


def outside_place(content: "Content", u: "Understanding", text: str) -> OutsidePlace | None:
    """Where outside South Sumatra the message says the citizen is: a province or regency named,
    or a country after "di"/"in" ("sy skrg di kuala lumpur", "I'm in Hong Kong")."""
    if u.places.outside:
        return u.places.outside[0].place
    country = content.knowledge.abroad_in(clean(text))
    return OutsidePlace(country, ABROAD) if country else None


def hold(content: "Content", state: "ConversationState", info: dict, body: str) -> tuple[Reply, ...]:
    """Keep a message that may not go to staff yet; the citizen hears so once per batch."""
    held = info.setdefault("held", {"count": 0, "texts": []})
    first = held["count"] == 0
    held["count"] += 1
    if len(held["texts"]) < HELD_KEPT:
        held["texts"].append(body[:HELD_CHARS])
    return reply(content, state, "relay_held", None, 1.0).replies if first else ()


def held_summary(info: dict, clear: bool = False) -> dict | None:
    """The messages held back since the last relay ({"count", "texts"}), for the staff notice."""
    held = info.pop("held", None) if clear else info.get("held")
    return held if held and held.get("count") else None
