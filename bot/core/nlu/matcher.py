"""Understanding one message: normalize, find places, score intents with one learned model, decide."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Callable

from rapidfuzz import fuzz, process

from bot.core.nlu.classifier import ClassifierConfig, IntentClassifier, TrainingItem
from bot.core.nlu.embedding import Embedder, VectorCache
from bot.core.nlu.intents import Example, IntentSet
from bot.core.nlu.normalize import MAX_CHARS, Lexicon, clean, detect_language, expand_slang, split_digits
from bot.core.nlu.places import CUE_WORDS, FILLER_WORDS, PlaceMatcher, PlaceResult

PLACE_TOKEN = "xloc"  # stands for a place named in the message
OFFICE_TOKEN = "xkanim"  # stands for an office named by its town ("kanim palembang")
MARKERS = frozenset((PLACE_TOKEN, OFFICE_TOKEN))
PLACE_WORDS = CUE_WORDS | FILLER_WORDS  # words that only frame a place ("desa", "kec", "saya di")
OFFICE_WORDS = frozenset("kanim kantor imigrasi imigrasinya office".split())
SUFFIXES = ("nya", "lah", "kah", "dong")
OUT_OF_SCOPE = "__out_of_scope__"


_CAPS_WORD = re.compile(r"\b[A-Z]{2,5}\b")
_SENTENCE_END = re.compile(r"(?<=[.?!])\s+|\s*\n+\s*")
MAX_SEGMENTS = 2  # sentences of a long message scored on their own (the last ones: the question comes last)
SEGMENT_CHARS = 160  # what is read of one such sentence: a question is short, a long one is a story


def sentences(text: str) -> list[str]:
    """The last sentences of a message of several, each of two words or more; [] for one sentence.

    Citizens tell a story and ask at the end; a greeting or thanks wraps the question. Scoring
    those sentences on their own finds the question that the whole message dilutes.
    """
    parts = [p for p in _SENTENCE_END.split(text[: 4 * MAX_CHARS]) if p.strip()]
    if len(parts) < 2:
        return []
    kept = [p for p in parts if len(p.split()) >= 2][-MAX_SEGMENTS:]  # "makasih" alone tells nothing
    return [p[:SEGMENT_CHARS] for p in kept]


def acronyms_in(text: str) -> frozenset[str]:
    """Words written in capitals ("OI", "OKU") in a message that is not all capitals."""
    head = text[:MAX_CHARS]
    letters = [c for c in head if c.isalpha()]
    if not letters or sum(c.isupper() for c in letters) > len(letters) / 2:
        return frozenset()
    return frozenset(w.lower() for w in _CAPS_WORD.findall(head))


@dataclass(frozen=True, slots=True)
class Thresholds:
    """When MIA trusts its best guess (scores are probabilities in points, 0..100).

    Chosen by cross-validation on the public's messages (docs/benchmarks.md), never by hand.
    """

    accept: float = 40.0  # answer when the best intent is at least this likely...
    margin: float = 0.0  # ...and this many points ahead of the runner-up; otherwise a menu
    lead_accept: float = 101.0  # also answer a less likely best intent from this score...
    lead: float = 100.0  # ...when it leads the runner-up by this many points
    out_of_scope: float = 50.0  # an out-of-scope best at least this likely: "not understood", no menu
    clarify: float = 6.0  # below this, no "Maksud Anda ...?" menu: the plain fallback (gibberish gets no guesses)
    menu: int = 3  # answers offered when unsure (plus "Bicara dengan petugas")
    keyword_bonus: float = 0.0  # points per distinct keyword found (at most two count), times its specificity
    correction_cutoff: float = 80.0  # typo correction against the content's vocabulary


@dataclass(frozen=True, slots=True)
class Candidate:
    """An intent and its score (0..100+)."""

    intent: str
    score: float


@dataclass(frozen=True, slots=True)
class Understanding:
    """What MIA made of a message."""

    text: str  # the normalized text that was scored
    intent: str | None  # accepted intent, None when not confident
    confidence: float  # 0..1, of the best candidate
    candidates: tuple[Candidate, ...]  # best first, out-of-scope excluded
    places: PlaceResult
    lang: str | None  # "id", "en" or None when the words do not tell
    out_of_scope: bool  # the best match was a known out-of-scope phrase
    by_title: bool = False  # the text was exactly a button title
    also: str | None = None  # a second question in the same message, answered as a button

    @property
    def only_places(self) -> bool:
        """The message named places and nothing else ("lahat", "saya di baturaja", "kelurahan x kec y")."""
        words = set(self.text.split())
        return bool(words & MARKERS) and words <= MARKERS | PLACE_WORDS


@dataclass(frozen=True, slots=True)
class _Prepared:
    text: str
    tokens: tuple[str, ...]
    places: PlaceResult
    lang: str | None
    written: tuple[str, ...] = ()  # the words before typo correction (slang expanded): pieces see typos


class IntentMatcher:
    """Reads messages: places and typos first, then one model's intent probabilities; thresholds decide."""

    def __init__(
        self,
        intents: IntentSet,
        places: PlaceMatcher,
        lexicon: Lexicon,
        thresholds: Thresholds = Thresholds(),
        seat_names: frozenset[str] = frozenset(),
        embedder: Embedder | None = None,
        cache_dir: Path | None = None,
        config: ClassifierConfig = ClassifierConfig(),
        progress: Callable[[str, int, int], None] | None = None,
    ):
        self.intents = intents
        self.places = places
        self.lexicon = lexicon
        self.t = thresholds
        self.seat_names = seat_names
        self.embedder = embedder
        self.cache_dir = cache_dir
        self.config = config
        # Vocabulary for typo correction: every word of the content, as MIA reads it.
        vocab: set[str] = set()
        raw_texts = [e.text for it in intents.intents for e in it.examples]
        raw_texts += [e.text for e in intents.negatives]
        raw_texts += [k for it in intents.intents for k in it.keywords]
        raw_texts += [t for it in intents.intents for t in it.title.values()]
        for text in raw_texts:
            vocab.update(expand_slang(split_digits(clean(text).split()), lexicon))
        for repl in lexicon.slang.values():
            vocab.update(repl)
        vocab.update(lexicon.english, lexicon.indonesian)
        vocab.update(PLACE_WORDS)  # "kelurahan" is not a typo of "keluhan"
        vocab -= {k for k in places.names if " " not in k}  # places are entities, not vocabulary
        vocab.discard("")
        self.vocab = frozenset(vocab)
        # Typos rarely hit the first letter: correcting within it is faster and safer.
        by_initial: dict[str, list[str]] = {}
        for v in sorted(vocab | set(lexicon.slang)):  # a typo may be of a slang word too
            if len(v) >= 4 and v.isalpha():
                by_initial.setdefault(v[0], []).append(v)
        self._vocab_by_initial = by_initial
        places.known_words = self.vocab | frozenset(lexicon.slang)
        self._correct = lru_cache(maxsize=20000)(self._correct_uncached)
        self._understood = lru_cache(maxsize=256)(self._understand)

        self.items, self.item_examples = self._training_items()
        self._vector_cache = VectorCache(cache_dir, embedder) if embedder is not None else None
        self.classifier = self.train(self.items, progress)
        self._index = {c: i for i, c in enumerate(self.classifier.classes)}
        self._keywords = self._weigh_keywords()
        self._place_bonus = {it.id: it.place_bonus for it in intents.intents if it.place_bonus}
        self.small_talk = frozenset(it.id for it in intents.intents if it.small_talk)
        self._titles: dict[str, str] = {}
        for it in intents.intents:
            for title in it.title.values():
                self._titles.setdefault(clean(title), it.id)

    def _training_items(self) -> tuple[list[TrainingItem], list[Example | None]]:
        """Examples, out-of-scope phrases, keywords and titles, as the model reads them.

        The second list holds the example behind each item (None for keywords and titles).
        """
        items: list[TrainingItem] = []
        sources: list[Example | None] = []
        groups = [(it.id, it.examples) for it in self.intents.intents] + [(OUT_OF_SCOPE, self.intents.negatives)]
        for owner, examples in groups:
            for e in examples:
                text = self.prepare(e.text).text
                if set(text.split()) <= MARKERS:  # a place alone: no intent
                    continue
                items.append(TrainingItem(text, e.text, owner))
                sources.append(e)
        for it in self.intents.intents:
            for phrase in (*it.keywords, *dict.fromkeys(it.title.values())):
                text = self.prepare(phrase).text
                if text and not set(text.split()) <= MARKERS:
                    items.append(TrainingItem(text, phrase, it.id))
                    sources.append(None)
        return items, sources

    def train(self, items: list[TrainingItem], progress=None, child_process: bool | None = None) -> IntentClassifier:
        """A classifier over `items` with this matcher's sentence model and cache (cross-validation uses it)."""
        return IntentClassifier.train(items, self.embedder, self.cache_dir, self.config, vectors=self._vector_cache,
                                      message_vectors=self.embedder.embed if self.embedder is not None else None,
                                      progress=progress, child_process=child_process)

    def _weigh_keywords(self) -> dict[str, tuple[tuple[str, float], ...]]:
        """Each intent's keywords, worth as much as they are specific to it: the share of the
        examples using the keyword that belong to the intent (1.0 when no example uses it)."""
        padded = [(f" {it.lexical} ", it.label) for it, src in zip(self.items, self.item_examples) if src is not None]
        weighted: dict[str, tuple[tuple[str, float], ...]] = {}
        for it in self.intents.intents:
            out = []
            for k in it.keywords:
                kw = " ".join(self.prepare(k).tokens)
                if not kw:
                    continue
                owners = [label for text, label in padded if f" {kw} " in text]
                own = sum(1 for o in owners if o == it.id)
                out.append((kw, own / len(owners) if owners else 1.0))
            weighted[it.id] = tuple(out)
        return weighted

    # -- text preparation -------------------------------------------------------------

    def _correct_uncached(self, token: str) -> str:
        for suffix in SUFFIXES:  # "adminnya" -> "admin", "bisakah" -> "bisa"
            base = token[: -len(suffix)]
            if token.endswith(suffix) and len(base) >= 3 and base in self.vocab:
                return base
        if len(token) < 5 or not token.isalpha():
            return token
        hit = process.extractOne(token, self._vocab_by_initial.get(token[0], ()), scorer=fuzz.ratio,
                                 score_cutoff=self.t.correction_cutoff)
        return hit[0] if hit else token

    def correct(self, token: str) -> str:
        """A word as the content spells it ("persyaratn" -> "persyaratan"), else unchanged."""
        if token in self.vocab or token in self.lexicon.slang:
            return token
        return self._correct(token)

    def prepare(self, text: str) -> _Prepared:
        """Clean, find places, mask them, expand slang, correct typos."""
        tokens = split_digits(clean(text).split())
        found = self.places.find(tokens, acronyms=acronyms_in(text))
        offices = {m.start for m in found.matches if m.text in self.seat_names and m.preceded_by in OFFICE_WORDS}
        masked: list[str] = []
        i = 0
        for start, end in found.spans:
            masked.extend(tokens[i:start])
            masked.append(OFFICE_TOKEN if start in offices else PLACE_TOKEN)
            i = end
        masked.extend(tokens[i:])
        lang = detect_language(masked, self.lexicon)
        corrected = [w if w in MARKERS else self.correct(w) for w in masked]
        words = expand_slang(corrected, self.lexicon)
        written = tuple(expand_slang(masked, self.lexicon))
        return _Prepared(" ".join(words), tuple(words), found, lang, written)

    # -- scoring ----------------------------------------------------------------------

    def understand(self, text: str) -> Understanding:
        """Read one message and decide whether MIA knows what is asked. The same text read again
        (ahead of its transaction, then in it; a retry) is read once."""
        return self._understood(text)

    def _understand(self, text: str) -> Understanding:
        title_hit = self._titles.get(clean(text))
        if title_hit is not None:
            prep = self.prepare(text)
            return Understanding(prep.text, title_hit, 1.0, (Candidate(title_hit, 100.0),), prep.places,
                                 prep.lang, False, by_title=True)
        # Openers carry no question: "Halo min, mau tanya syarat paspor" is read as "syarat paspor".
        core = self.lexicon.past_preamble(text)
        if len(clean(core).split()) >= 2:
            text = core
        prep = self.prepare(text)
        content = [w for w in prep.tokens if w not in MARKERS]
        if not content:
            return Understanding(prep.text, None, 0.0, (), prep.places, prep.lang, False)
        parts = [(s, p) for s, p in ((s, self.prepare(s)) for s in sentences(text))
                 if any(w not in MARKERS for w in p.tokens)]
        scored = self.score_many([prep] + [p for _, p in parts], [text] + [s for s, _ in parts])
        scores = scored[0]
        places = prep.places
        asked: list[str] = []  # what each sentence asks on its own, in order
        part_decisions: dict[str, dict[str, float]] = {}
        for (_, part), part_scores in zip(parts, scored[1:]):
            if not places.matches and not places.outside and (part.places.matches or part.places.outside):
                places = part.places
            part_intent, _ = self._decide(part_scores)
            if part_intent is not None and part_intent not in asked and part_intent not in self.small_talk:
                asked.append(part_intent)
                part_decisions[part_intent] = part_scores
        intent, ranked = self._decide(scores)
        question_last = bool(asked) and parts[-1][0].rstrip().endswith("?") and \
            self._decide(scored[-1])[0] == asked[-1]
        if len(asked) >= 2 or (asked and intent in self.small_talk) or (intent is None and question_last):
            # Two questions ("syarat apa? terus biayanya?"): the first is answered, the next offered;
            # a question wrapped in a greeting and thanks is the question, not the greeting; a story
            # MIA cannot place that ends in a clear question is that question.
            intent = asked[0]
            ranked = sorted(part_decisions[asked[0]].items(), key=lambda kv: -kv[1])
        candidates = tuple(Candidate(k, v) for k, v in ranked if k != OUT_OF_SCOPE)
        oos = bool(ranked) and ranked[0][0] == OUT_OF_SCOPE and ranked[0][1] >= self.t.out_of_scope
        also = next((a for a in asked if a != intent), None) if intent is not None else None
        confidence = min(1.0, candidates[0].score / 100.0) if candidates else 0.0
        return Understanding(prep.text, intent, round(confidence, 3), candidates[:5], places, prep.lang, oos,
                             also=also)

    def _decide(self, scores: dict[str, float]) -> tuple[str | None, list[tuple[str, float]]]:
        """The accepted intent (threshold and margin over the runner-up) and the ranking."""
        ranked = sorted(scores.items(), key=lambda kv: -kv[1])
        if not ranked or ranked[0][0] == OUT_OF_SCOPE:
            return None, ranked
        best, score = ranked[0]
        second = next((v for k, v in ranked[1:] if k != OUT_OF_SCOPE), 0.0)
        if score >= self.t.accept and score - second >= self.t.margin:
            return best, ranked
        if score >= self.t.lead_accept and score - second >= self.t.lead:
            return best, ranked
        return None, ranked

    def score(self, prep: _Prepared, raw: str | None = None) -> dict[str, float]:
        """Per intent (and the out-of-scope class): its probability in points, plus keyword and place bonuses."""
        return self.score_many([prep], [raw if raw is not None else " ".join(prep.written)])[0]

    def score_many(self, preps: list[_Prepared], raws: list[str]) -> list[dict[str, float]]:
        """`score` for several texts at once (one call to the sentence model)."""
        probs = self.classifier.probabilities([p.text for p in preps], raws) * 100.0
        out = []
        for prep, row in zip(preps, probs):
            scores = dict(zip(self.classifier.classes, row.tolist()))
            self._add_bonuses(prep, scores)
            out.append(scores)
        return out

    def _add_bonuses(self, prep: _Prepared, scores: dict[str, float]) -> None:
        if self.t.keyword_bonus:
            padded = f" {prep.text} "
            for intent_id, weighted in self._keywords.items():
                found = sorted((w for kw, w in weighted if f" {kw} " in padded), reverse=True)[:2]
                if found:
                    scores[intent_id] = scores.get(intent_id, 0.0) + self.t.keyword_bonus * sum(found)
        if self._place_bonus and self._names_home_place(prep):
            for intent_id, bonus in self._place_bonus.items():
                scores[intent_id] = scores.get(intent_id, 0.0) + bonus

    def _names_home_place(self, prep: _Prepared) -> bool:
        """True when the message names a place other than an office's own town."""
        if prep.places.outside:
            return True
        return any(m.text not in self.seat_names for m in prep.places.matches)

    def prefetch(self, texts: list[str]) -> None:
        """Embed many messages (and their sentences) in batches before reading them one by one."""
        if self.embedder is not None:
            self.embedder.embed(list(dict.fromkeys(t for text in texts for t in (text, *sentences(text)))))

    def cross_validated(self, folds: int = 5, progress=None) -> list[dict[str, float] | None]:
        """Each training example's scores from a model that never saw it (k folds); None for keywords/titles.

        Keywords and titles stay in every fold: they are the operators' words, not examples. A batch
        job (`mia intents check`), so the folds are fitted in this process: one import, not five.
        """
        out: list[dict[str, float] | None] = [None] * len(self.items)
        examples = [i for i, src in enumerate(self.item_examples) if src is not None]
        for f in range(folds):
            held = set(examples[f::folds])
            model = self.train([it for i, it in enumerate(self.items) if i not in held], child_process=False)
            ordered = sorted(held)
            raw = [self.items[i].raw for i in ordered]
            semantic = self._vector_cache.vectors(raw) if self._vector_cache is not None else None
            probs = model.probabilities([self.items[i].lexical for i in ordered], raw, semantic) * 100.0
            for i, row in zip(ordered, probs):
                scores = {c: 0.0 for c in self.classifier.classes}
                scores.update(zip(model.classes, row.tolist()))
                self._add_bonuses(self.prepare(self.items[i].raw), scores)
                out[i] = scores
            if progress:
                progress(f + 1, folds)
        return out
