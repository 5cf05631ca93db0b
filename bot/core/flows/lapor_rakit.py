"""The Lapor Rakit request flow: start, one turn per answer, summary, confirmation."""

from __future__ import annotations

import re
from dataclasses import replace
from typing import TYPE_CHECKING

from bot.core.flows import forms
from bot.core.flows.state import FORM_KEY, HOME_KEY
from bot.core.messages import CLAIM, CLOSE, Button, Reply
from bot.core.nlu.normalize import clean, expand_slang
from bot.core.nlu.places import tokens_of
from bot.core.turn import Effect, Outcome, PlaceContext, Turn, place_context

if TYPE_CHECKING:  # pragma: no cover
    from bot.core.content import Content
    from bot.core.nlu.matcher import Understanding
    from bot.store.base import CallbackRequest, ConversationState

INTENT = "callback_request"
HANDOFF = "human_handoff"
REF_PLACEHOLDER = "{ref}"  # the confirmation is rendered before the request has its reference
# Words of a short reply, read after the chat slang is expanded ("gak jadi" is "tidak jadi").
SHORT_REPLY = 6  # words: a longer message is an answer or a question, not a yes or a cancel
YES = frozenset("ya y iya yes yep yup yoi ok oke okay sip siap benar bener betul kirim setuju sudah lanjut send "
                "correct right".split())
CHANGE = ("ubah", "ganti", "edit", "change", "koreksi", "perbaik", "ralat", "revisi", "salah", "keliru", "wrong")
CANCEL = frozenset("batal batalkan batalin cancel stop gajadi".split())
NOT_NOW = "jadi"  # "tidak jadi": after a "no", the citizen called it off
NO = frozenset("tidak bukan jangan jgn belum no not nope tapi but".split())
QUESTION_WORDS = frozenset(
    "apa apakah berapa brp bagaimana gimana gmn dimana dmn kapan kpn kenapa bisakah boleh how what where when why "
    "can could is are do does".split()
)
# Words of a citizen asking what a question of the form means.
EXPLAIN = frozenset("maksud maksudnya artinya contoh contohnya misalnya mean meaning example".split())
# What a question in the middle of the form is about when MIA reads it as the visit itself.
VISIT_INTENTS = frozenset({INTENT})
STREET_WORDS = frozenset("jl jln jalan gg gang lorong lrg lr".split())  # "Jl. Lahat" is a street, not Lahat
# Intents that belong to the form itself: never treated as a question in the middle of it.
FORM_INTENTS = frozenset({INTENT, "greeting", "thanks"})
BUTTONS = {
    "id": {"yes": "Ya, kirim", "change": "Ubah", "cancel": "Batal", "officer": "Bicara dengan petugas"},
    "en": {"yes": "Yes, send", "change": "Change", "cancel": "Cancel", "officer": "Talk to an officer"},
}
LABELS = {
    "id": {"applicant_name": "Nama pemohon", "relation": "Hubungan dengan pemohon", "phone": "Nomor telepon",
           "address": "Alamat", "region": "Kabupaten/kota", "condition": "Kondisi pemohon",
           "preferred_day": "Hari kunjungan"},
    "en": {"applicant_name": "Applicant's name", "relation": "Relation to the applicant", "phone": "Phone number",
           "address": "Address", "region": "Regency/city", "condition": "Applicant's condition",
           "preferred_day": "Preferred day"},
}


class RegionResolver:
    """Resolves the region answer with the place matcher: one regency, one office, or an error."""

    def __init__(self, content: "Content"):
        self.content = content

    def resolve_region(self, raw: str, in_address: bool = False) -> forms.Answer:
        """`in_address`: the places of an address, leaving out streets named after a place
        ("Jl. Lahat"): what a whole address says of its regency, if anything."""
        found = self.content.places.find(tokens_of(raw))
        matches = tuple(m for m in found.matches if not (in_address and m.preceded_by in STREET_WORDS))
        if not matches:
            return forms.Answer(error="region_outside" if found.outside else "region_unknown")
        ctx = place_context(self.content, matches)
        if ctx.ambiguous or ctx.region is None:
            return forms.Answer(error="region_ambiguous")
        region = ctx.region
        shown = ctx.place if ctx.place == region.short_name else f"{ctx.place} ({region.short_name})"
        return forms.Answer({"region": region.code, "place": ctx.place, "office": ctx.office.id}, shown)


def staff_buttons(request: "CallbackRequest") -> tuple[Button, ...]:
    """The staff notice's buttons for a request in its current state (claim while open, close until done)."""
    buttons = []
    if request.status == "open":
        buttons.append(Button("Ambil", request.ref, CLAIM))
    if request.status in ("open", "claimed"):
        buttons.append(Button("Selesai", request.ref, CLOSE))
    return tuple(buttons)


class LaporRakitFlow:
    """The request form for an officer's visit to a sick applicant: one question per message."""

    key = FORM_KEY
    intents = frozenset({INTENT})
    raw = False

    def active(self, state: "ConversationState") -> bool:
        return bool(state.data.get(FORM_KEY))

    def expire(self, turn: Turn) -> tuple[Reply, ...]:
        form = turn.state.data.get(FORM_KEY)
        if not form or form.get("expires_at", 0) >= turn.now:
            return ()
        turn.state.data.pop(FORM_KEY)
        return (Reply(turn.content.responses.render(turn.state.lang, "form_expired", kb=turn.content.knowledge)),)

    def cancel(self, state: "ConversationState") -> bool:
        return state.data.pop(FORM_KEY, None) is not None

    def start(self, turn: Turn, intent: str, u: "Understanding | None", place: PlaceContext) -> Outcome:
        return start(turn, u, place)

    def turn(self, turn: Turn, u: "Understanding | None") -> Outcome:
        return form_turn(turn, u)


def start(turn: Turn, u: "Understanding | None", ctx: PlaceContext) -> Outcome:
    """Open the form; a place named in the request already answers the region question."""
    content, state = turn.content, turn.state
    form = forms.new_form(turn.now, turn.form_ttl_seconds)
    if ctx.region is not None and not ctx.ambiguous:
        answer = RegionResolver(content).resolve_region(ctx.place)
        if answer.error is None:
            form["values"]["region"] = answer.value
            form["shown"]["region"] = answer.shown
    form["step"] = forms.next_step(form)
    state.data[FORM_KEY] = form
    intro = turn.reply("callback_request", INTENT, u.confidence if u else 1.0, understanding=u,
                       region=ctx.region, office=ctx.office, place=ctx.place, retention_days=turn.retention_days)
    return intro.then(_question(turn, form).replies)


def form_turn(turn: Turn, u: "Understanding") -> Outcome:
    """Feed one message to the open form."""
    content, state, text = turn.content, turn.state, turn.text
    form = dict(state.data[FORM_KEY])
    form["values"] = dict(form["values"])
    form["shown"] = dict(form["shown"])
    state.data[FORM_KEY] = form
    lang = state.lang
    said = " ".join(text.lower().split()).strip(" .!")
    expanded, words = _words(content, text)
    if _cancels(expanded, words):
        state.data.pop(FORM_KEY)
        return turn.reply("form_cancelled", INTENT, 1.0, buttons=("help",))
    step = form["step"]
    if step in forms.STEP_BY_FIELD and _asks_about_form(text, u, words):
        # "maksudnya hubungan apa?", "alamat rumah atau rumah sakit?", "kapan petugas dtg?": the
        # question is explained and asked again; the form goes on, nothing is stored.
        return _question(turn, form, error="explain")
    if (said in (BUTTONS["id"]["officer"].lower(), BUTTONS["en"]["officer"].lower()) or u.intent == HANDOFF) \
            and turn.switch is not None:
        # The officer takes it from here: the unfinished form is dropped, and the citizen told so.
        state.data.pop(FORM_KEY)
        left = turn.reply("form_cancelled", INTENT, 1.0, for_officer=True)
        return turn.switch(turn, HANDOFF, u, turn.home()).after(left.replies)
    if _is_question(text, u):
        # Answer the question, then ask the form's question again.
        answer = turn.reply(content.intents.get(u.intent).response, u.intent, u.confidence, understanding=u)
        return answer.then(_question(turn, form).replies)
    if _not_an_answer(content, text, u):
        return _question(turn, form)
    if step == forms.CONFIRM:
        if len(words) <= SHORT_REPLY and _changes(words):
            form["step"] = forms.CHOOSE_FIELD
            return _question(turn, form)
        if len(words) <= SHORT_REPLY and words & YES and not words & NO:
            return _confirmed(turn, form)
        return _wrong(turn, form, "confirm_unclear")
    if step == forms.CHOOSE_FIELD:
        field = _field_from_label(said, lang) or _field_named(words)
        if field is None and len(words) <= SHORT_REPLY and words & YES and not words & NO:
            return _confirmed(turn, form)  # "iya sudah benar, kirim": nothing to change after all
        if field is None:
            return _wrong(turn, form, "choose_unclear")
        form["step"] = field
        form["editing"] = True
        return _question(turn, form)
    resolver = RegionResolver(content)
    answer = forms.STEP_BY_FIELD[step].validate(text, resolver)
    if answer.error is not None:
        return _wrong(turn, form, answer.error)
    form["values"][step] = answer.value
    form["shown"][step] = answer.shown
    form["wrong"] = 0
    from_address = None
    if step == "address" and "region" not in form["values"]:
        # "Desa Tanjung Agung, Muara Enim" names its regency: not asked again, but said (the summary
        # shows it, and "Ubah" changes it). A street named after a place ("Jl. Lahat"), or places
        # of two offices, say nothing: the question comes.
        in_address = resolver.resolve_region(text, in_address=True)
        if in_address.error is None:
            step, answer, from_address = "region", in_address, in_address.shown
            form["values"][step], form["shown"][step] = answer.value, answer.shown
    if step == "region":
        state.data[HOME_KEY] = {"region": answer.value["region"], "place": answer.value["place"]}
    form["step"] = forms.next_step(form)
    return _question(turn, form, from_address=from_address)


def _words(content: "Content", text: str) -> tuple[list[str], frozenset[str]]:
    """The message's words with the chat slang expanded ("gak jadi" is "tidak jadi"), and the set of
    its words as written or expanded (a "ya" expands to nothing)."""
    written = clean(text).split()
    expanded = expand_slang(written, content.matcher.lexicon)
    return expanded, frozenset(written + expanded)


def _cancels(expanded: list[str], words: frozenset[str]) -> bool:
    """A short message that calls the request off: "batal aja", "gak jadi deh", "udah stop"."""
    if len(words) > SHORT_REPLY:
        return False
    return bool(CANCEL & words) or any(w == NOT_NOW and expanded[i - 1] in NO for i, w in enumerate(expanded) if i)


def _changes(words: frozenset[str]) -> bool:
    return any(stem in w for w in words for stem in CHANGE)


def _asks_about_form(text: str, u: "Understanding", words: frozenset[str]) -> bool:
    """A question about the form's question or the visit, not an answer nor another topic: it asks
    what is meant ("maksudnya", "contohnya", "what do you mean"), or it is a question MIA reads as the
    visit itself or cannot place ("kapan petugas dtg?", "alamat rumah atau rumah sakit?")."""
    if u.by_title or len(words) > 2 * SHORT_REPLY:
        return False
    if words & EXPLAIN:
        return True
    first = clean(text).split()[:1]
    asks = "?" in text or bool(first and first[0] in QUESTION_WORDS)
    return asks and (u.intent is None or u.intent in VISIT_INTENTS)


def _is_question(text: str, u: "Understanding") -> bool:
    """A question about something else (typed, or another answer's button): answered, then the form goes on."""
    if u.intent is None or u.intent in FORM_INTENTS or u.only_places:
        return False
    words = set(re.findall(r"\w+", text.lower()))
    return u.by_title or "?" in text or bool(words & QUESTION_WORDS)


def _not_an_answer(content: "Content", text: str, u: "Understanding") -> bool:
    """The form's own button again, or a greeting or thanks and nothing else: the question is asked again."""
    if u.by_title:
        return u.intent in FORM_INTENTS
    if u.intent not in content.matcher.small_talk:
        return False
    said = clean(text)
    return not clean(content.matcher.lexicon.past_preamble(text)) or \
        any(clean(e.text) == said for e in content.intents.get(u.intent).examples)


def _question(turn: Turn, form: dict, error: str | None = None, from_address: str | None = None) -> Outcome:
    content = turn.content
    lang = turn.state.lang
    step = form["step"]
    buttons: list[Button] = []
    if step == forms.CONFIRM:
        for key in ("yes", "change", "cancel"):
            buttons.append(Button(BUTTONS[lang][key], BUTTONS[lang][key]))
    elif step == forms.CHOOSE_FIELD:
        buttons = [Button(label, label) for label in LABELS[lang].values()]
        buttons.append(Button(BUTTONS[lang]["cancel"], BUTTONS[lang]["cancel"]))
        if form.get("wrong", 0) >= forms.MAX_WRONG:
            buttons.insert(0, Button(BUTTONS[lang]["officer"], BUTTONS[lang]["officer"]))
    else:
        choices = forms.STEP_BY_FIELD[step].choices
        buttons = [Button(c, c) for c in choices.get(lang, choices.get("id", ()))]
        if form.get("wrong", 0) >= forms.MAX_WRONG:
            buttons = [Button(BUTTONS[lang]["officer"], BUTTONS[lang]["officer"])] + buttons
        buttons.append(Button(BUTTONS[lang]["cancel"], BUTTONS[lang]["cancel"]))
    office = content.knowledge.office(form["values"]["region"]["office"]) if "region" in form["values"] else None
    outcome = turn.reply(
        "form_question", INTENT, 1.0, step=step, error=error, wrong=form.get("wrong", 0),
        max_wrong=forms.MAX_WRONG, labels=LABELS[lang], shown=form["shown"], fields=forms.FIELDS,
        office=office, from_address=from_address, extra_buttons=tuple(buttons),
    )
    return outcome


def _wrong(turn: Turn, form: dict, error: str) -> Outcome:
    form["wrong"] = form.get("wrong", 0) + 1
    return _question(turn, form, error=error)


def _field_named(words: frozenset[str]) -> str | None:
    """The one answer a message names by its words ("ganti alamat", "nomor hp nya"), or None."""
    named = [step.field for step in forms.STEPS if step.names & words]
    return named[0] if len(named) == 1 else None


def _field_from_label(said: str, lang: str) -> str | None:
    for labels in (LABELS[lang], *LABELS.values()):
        for field, label in labels.items():
            if said == label.lower() or said == field:
                return field
    return None


def _confirmed(turn: Turn, form: dict) -> Outcome:
    content = turn.content
    turn.state.data.pop(FORM_KEY)
    values = form["values"]
    region = values["region"]
    fields = {name: values[name] for name in forms.FIELDS if name != "region"}
    fields["place"] = region["place"]
    outcome = turn.reply("form_done", INTENT, 1.0, ref=REF_PLACEHOLDER, staff_available=turn.has_staff(region["office"]),
                         office=content.knowledge.office(region["office"]),
                         region=content.knowledge.regency(region["region"]))
    effect = Effect("create_request", office=region["office"], context={"region": region["region"], "fields": fields})
    return replace(outcome, effects=(effect,))
