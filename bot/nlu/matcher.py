"""Understanding one message: normalize, find places, score intents with rapidfuzz, decide."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from rapidfuzz import fuzz, process

from bot.nlu.intents import IntentSet
from bot.nlu.normalize import Lexicon, clean, detect_language, expand_slang, split_digits
from bot.nlu.places import PlaceMatcher, PlaceResult

PLACE_TOKEN = "xloc"
OUT_OF_SCOPE = "__out_of_scope__"


@dataclass(frozen=True, slots=True)
class Thresholds:
    """When MIA trusts its best guess. Tuned with `mia intents test`, never by hand-picking."""

    accept: float = 72.0  # best score needed to answer
    margin: float = 6.0  # lead over the runner-up needed to answer
    clarify: float = 58.0  # below this, no "Maksud Anda ...?" question: plain fallback
    keyword_bonus: float = 12.0  # added per distinct keyword found (at most two count)
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


@dataclass(frozen=True, slots=True)
class _Prepared:
    text: str
    tokens: tuple[str, ...]
    places: PlaceResult
    lang: str | None


class IntentMatcher:
    """Scores messages against intent examples and keywords; threshold plus margin decide."""

    def __init__(
        self,
        intents: IntentSet,
        places: PlaceMatcher,
        lexicon: Lexicon,
        thresholds: Thresholds = Thresholds(),
    ):
        self.intents = intents
        self.places = places
        self.lexicon = lexicon
        self.t = thresholds
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
        vocab -= {k for k in places.names if " " not in k}  # places are entities, not vocabulary
        vocab.discard("")
        self.vocab = frozenset(vocab)
        self._vocab_list = sorted(v for v in vocab if len(v) >= 4 and v.isalpha())
        places.known_words = self.vocab | frozenset(lexicon.slang)
        self._correct = lru_cache(maxsize=20000)(self._correct_uncached)

        self._choices: list[str] = []
        self._owner: list[str] = []
        labelled = [(e, it.id) for it in intents.intents for e in it.examples]
        labelled += [(e, OUT_OF_SCOPE) for e in intents.negatives]
        for example, owner in labelled:
            text = self.prepare(example.text).text
            if text.replace(PLACE_TOKEN, "").strip():  # a place alone is no intent (check warns)
                self._choices.append(text)
                self._owner.append(owner)
        self._keywords: dict[str, tuple[str, ...]] = {
            it.id: tuple(" ".join(self.prepare(k).tokens) for k in it.keywords) for it in intents.intents
        }
        self._titles: dict[str, str] = {}
        for it in intents.intents:
            for title in it.title.values():
                self._titles.setdefault(clean(title), it.id)

    # -- text preparation -------------------------------------------------------------

    def _correct_uncached(self, token: str) -> str:
        if len(token) < 5 or not token.isalpha():
            return token
        hit = process.extractOne(token, self._vocab_list, scorer=fuzz.ratio, score_cutoff=self.t.correction_cutoff)
        return hit[0] if hit else token

    def correct(self, token: str) -> str:
        """A word as the content spells it ("persyaratn" -> "persyaratan"), else unchanged."""
        if token in self.vocab or token in self.lexicon.slang:
            return token
        return self._correct(token)

    def prepare(self, text: str) -> _Prepared:
        """Clean, find places, mask them, expand slang, correct typos."""
        tokens = split_digits(clean(text).split())
        found = self.places.find(tokens)
        masked: list[str] = []
        spans = found.spans
        i = 0
        for start, end in spans:
            masked.extend(tokens[i:start])
            masked.append(PLACE_TOKEN)
            i = end
        masked.extend(tokens[i:])
        lang = detect_language(masked, self.lexicon)
        words = [self.correct(w) if w != PLACE_TOKEN else w for w in expand_slang(masked, self.lexicon)]
        return _Prepared(" ".join(words), tuple(words), found, lang)

    # -- scoring ----------------------------------------------------------------------

    def understand(self, text: str) -> Understanding:
        """Read one message and decide whether MIA knows what is asked."""
        prep = self.prepare(text)
        title_hit = self._titles.get(clean(text))
        if title_hit is not None:
            return Understanding(prep.text, title_hit, 1.0, (Candidate(title_hit, 100.0),), prep.places,
                                 prep.lang, False, by_title=True)
        content = [w for w in prep.tokens if w != PLACE_TOKEN]
        if not content:
            return Understanding(prep.text, None, 0.0, (), prep.places, prep.lang, False)
        scores = self.score(prep)
        ranked = sorted(scores.items(), key=lambda kv: -kv[1])
        candidates = tuple(Candidate(k, v) for k, v in ranked if k != OUT_OF_SCOPE)
        best_any = ranked[0] if ranked else (None, 0.0)
        oos = best_any[0] == OUT_OF_SCOPE
        intent = None
        if candidates and not oos:
            best = candidates[0]
            second = candidates[1].score if len(candidates) > 1 else 0.0
            if best.score >= self.t.accept and best.score - second >= self.t.margin:
                intent = best.intent
        confidence = min(1.0, candidates[0].score / 100.0) if candidates else 0.0
        return Understanding(prep.text, intent, round(confidence, 3), candidates[:5], prep.places, prep.lang, oos)

    def score(self, prep: _Prepared) -> dict[str, float]:
        """Best example score per intent, plus keyword bonuses."""
        scores: dict[str, float] = {}
        hits = process.extract(prep.text, self._choices, scorer=fuzz.token_set_ratio, limit=40)
        for _, s, idx in hits:
            owner = self._owner[idx]
            if s > scores.get(owner, -1.0):
                scores[owner] = s
        padded = f" {prep.text} "
        token_set = set(prep.tokens)
        for intent_id, keywords in self._keywords.items():
            n = sum(1 for k in keywords if (k in token_set if " " not in k else f" {k} " in padded))
            if n:
                scores[intent_id] = scores.get(intent_id, 0.0) + self.t.keyword_bonus * min(n, 2)
        return scores
