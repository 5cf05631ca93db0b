"""One turn of a conversation: what the assistant and its flows share, and how a reply is rendered."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Awaitable, Callable

from bot.core.flows.state import HOME_KEY
from bot.core.knowledge import Office, Regency
from bot.core.messages import CHOOSE, FEEDBACK, Button, Incoming, Reply
from bot.store.base import ConversationState

if TYPE_CHECKING:  # pragma: no cover
    from bot.core.content import Content
    from bot.core.nlu.matcher import Understanding
    from bot.core.nlu.places import PlaceMatch

# Words before an office's town name that make it the office asked about, not a home.
OFFICE_CUES = frozenset("ke kanim kantor imigrasi atau or to hrs harus ikut".split())
MENU_TEMPLATES = ("clarify", "not_helpful")  # answers whose buttons are a menu of answers, the last an officer
# The one-tap feedback under an answer. The payload is the title, so what the citizen sees in the
# chat is what they pressed; typing the same words counts too.
FEEDBACK_TITLES = {"id": ("👍 Membantu", "👎 Tidak membantu"), "en": ("👍 Helpful", "👎 Not helpful")}


@dataclass(frozen=True, slots=True)
class Effect:
    """Something to do in the same transaction as the reply: save a request, notify staff."""

    kind: str  # "create_request" | "staff_notice" | "review" | "label"
    office: str | None = None
    template: str | None = None  # staff_notice: template rendered for the staff chat
    context: dict = field(default_factory=dict)
    bind: tuple[str, str] | None = None  # (kind, target) so staff replies find the citizen


@dataclass(frozen=True, slots=True)
class Outcome:
    """What MIA decided for one message: the replies and what it understood."""

    replies: tuple[Reply, ...]
    intent: str | None
    confidence: float
    region: str | None = None
    office: str | None = None
    understanding: "Understanding | None" = None
    state: ConversationState = field(default_factory=ConversationState)
    effects: tuple[Effect, ...] = ()
    offered: tuple[str, ...] = ()  # intents offered in a "Maksud Anda yang mana?" menu

    def then(self, more: tuple[Reply, ...]) -> "Outcome":
        """This outcome followed by more replies (a form's next question after an answer)."""
        return replace(self, replies=self.replies + tuple(more))

    def after(self, notes: list[Reply] | tuple[Reply, ...]) -> "Outcome":
        """This outcome preceded by notes (a form expired since the last message)."""
        return replace(self, replies=tuple(notes) + self.replies) if notes else self


Recorder = Callable[[object, Incoming, Outcome], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class PlaceContext:
    """The regency and office a message points at, or the offices it could mean."""

    region: Regency | None = None
    office: Office | None = None
    place: str | None = None  # the most specific name the citizen used
    ambiguous: tuple[tuple[str, Office], ...] = ()  # (place, office) when places of several offices were named
    also_outside: str | None = None
    as_office: bool = False  # named only as an office ("kanim muara enim"): not where the citizen is


@dataclass(slots=True)
class Turn:
    """One message being answered: the content snapshot, the state being built and what a flow may ask."""

    content: "Content"
    state: ConversationState  # the conversation after this message: flows change it in place
    text: str
    user_name: str | None = None
    now: float = 0.0
    media: str | None = None
    staff_offices: frozenset[str] = frozenset()  # offices whose staff read a staff chat or desk
    form_ttl_seconds: float = 24 * 3600
    # Hands the conversation to another flow (a form's "Bicara dengan petugas" starts the handoff).
    switch: Callable[["Turn", str, "Understanding | None", PlaceContext], Outcome] | None = None
    retention_days: int = 90  # how long personal data is kept (MIA_RETENTION_DAYS), for the privacy notice

    def has_staff(self, office_id: str) -> bool:
        return office_id in self.staff_offices

    def reply(self, template: str, intent: str | None = None, confidence: float = 1.0, **kw) -> Outcome:
        return reply(self.content, self.state, template, intent, confidence, **kw)

    def home(self) -> PlaceContext:
        return home_context(self.content, self.state)


def reply(content: "Content", state: ConversationState, template: str, intent: str | None, confidence: float,
          buttons: tuple[str, ...] = (), extra_buttons: tuple[Button, ...] = (),
          understanding: "Understanding | None" = None, region: Regency | None = None,
          office: Office | None = None, place: str | None = None, user_name: str | None = None,
          **extra) -> Outcome:
    """Render `template` in the conversation's language; `buttons` are intents offered by title."""
    kb = content.knowledge
    lang = state.lang
    service = kb.services.get(intent) if intent else None
    context = dict(
        kb=kb, office=office, region=region, place=place, user_name=user_name, service=service,
        service_offices=[o for oid in (service.offices if service else ()) if (o := kb.office(oid))],
        also_outside=None, abroad=None,
    )
    context.update(extra)
    menu = template in MENU_TEMPLATES
    if menu:
        context["candidates"] = [content.intents.get(b).title[lang] for b in buttons[:-1]]
    text = content.responses.render(lang, template, **context)
    rendered = list(extra_buttons)
    for intent_id in buttons:
        target = content.intents.get(intent_id)
        if target is not None and target.id != intent:
            title = target.title[lang]
            rendered.append(Button(title, title, CHOOSE if menu else "say"))
    return Outcome(
        replies=(Reply(text, tuple(rendered)),),
        intent=intent,
        confidence=round(confidence, 3),
        region=region.code if region else None,
        office=office.id if office else None,
        understanding=understanding,
        state=state,
    )


def with_feedback(outcome: Outcome, lang: str) -> Outcome:
    """The answer's last message gets the one-tap "Membantu / Tidak membantu" pair."""
    yes, no = FEEDBACK_TITLES.get(lang, FEEDBACK_TITLES["id"])
    last = outcome.replies[-1]
    last = Reply(last.text, last.buttons + (Button(yes, yes, FEEDBACK), Button(no, no, FEEDBACK)), last.html)
    return replace(outcome, replies=outcome.replies[:-1] + (last,))


def home_context(content: "Content", state: ConversationState) -> PlaceContext:
    """The citizen's regency as remembered from earlier in the conversation."""
    home = state.data.get(HOME_KEY)
    if not home:
        return PlaceContext()
    return PlaceContext(content.knowledge.regency(home["region"]), content.knowledge.office_for(home["region"]),
                        home["place"])


def place_context(content: "Content", matches: tuple["PlaceMatch", ...]) -> PlaceContext:
    """The one regency and office the message points at, or the conflicting candidates.

    Never guesses an office: places served by different offices make the answer a question.
    """
    kb = content.knowledge
    if not matches:
        return PlaceContext()
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
        return PlaceContext(ambiguous=tuple(by_office.values()))
    code = _agreed_regency(home)
    inside = [m for m in home if m.place.regency_code == code]
    region = kb.regency(code)
    place, named = _place_name(inside, region)
    return PlaceContext(region, kb.office_for(code), place, also_outside=named.also_outside)


def _spans(matches: list["PlaceMatch"]) -> list[list["PlaceMatch"]]:
    """The matches grouped by the words they were read from, in the order the citizen wrote them."""
    spans: dict[tuple[int, int], list["PlaceMatch"]] = {}
    for m in matches:
        spans.setdefault((m.start, m.end), []).append(m)
    return list(spans.values())


def _agreed_regency(matches: list["PlaceMatch"]) -> str:
    """Of the regencies (one office's) the names may lie in, the one most of the names agree on.

    "pendopo talang ubi pali": Pendopo is a district of Empat Lawang, but Talang Ubi and PALI
    both say Penukal Abab Lematang Ilir (where the oil town Pendopo lies). On a tie the regency
    named as a regency wins ("pendopo, kab pali"), then the one named first.
    """
    support: dict[str, int] = {}
    as_regency: set[str] = set()
    for span in _spans(matches):
        for code in dict.fromkeys(m.place.regency_code for m in span):
            support[code] = support.get(code, 0) + 1
        as_regency.update(m.place.regency_code for m in span if m.place.district_code is None)
    order = list(support)
    return max(order, key=lambda c: (support[c], c in as_regency, -order.index(c)))


def _place_name(matches: list["PlaceMatch"], region: Regency) -> tuple[str, "PlaceMatch"]:
    """The most specific name the citizen used within one regency (a district or village over the
    regency), and its match. Places of one name in different districts name no district: "desa
    sukarami, lahat" is Sukarami in Lahat, not one of its three Sukarami picked at random."""
    for span in _spans(matches):
        specific = [m for m in span if m.place.district_code]
        if not specific:
            continue
        if len({m.place.district_code for m in specific}) == 1:
            return specific[0].place.name, specific[0]
        bare = [m.place.name.split(", Kec. ")[0] for m in specific]
        if len({b.replace(" ", "").lower() for b in bare}) == 1:  # "Pagar Jati" and "Pagarjati" too
            return bare[0], specific[0]
    broad = next((m for m in matches if not m.place.district_code), matches[0])  # the regency, a postal code
    return (broad.place.name if not broad.place.district_code else region.short_name), broad
