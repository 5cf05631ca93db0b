"""Understanding one message: normalize, find places, score intents with rapidfuzz, decide."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from rapidfuzz import fuzz, process

from bot.nlu.intents import Example, IntentSet
from bot.nlu.normalize import MAX_CHARS, Lexicon, clean, detect_language, expand_slang, split_digits
from bot.nlu.places import CUE_WORDS, FILLER_WORDS, PlaceMatcher, PlaceResult

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


def sentences(text: str) -> list[str]:
    """The last sentences of a message of several, each of two words or more; [] for one sentence.

    Citizens tell a story and ask at the end; a greeting or thanks wraps the question. Scoring
    those sentences on their own finds the question that the whole message dilutes.
    """
    parts = [p for p in _SENTENCE_END.split(text[: 4 * MAX_CHARS]) if p.strip()]
    if len(parts) < 2:
        return []
    return [p for p in parts if len(p.split()) >= 2][-MAX_SEGMENTS:]  # "makasih" alone tells nothing


def acronyms_in(text: str) -> frozenset[str]:
    """Words written in capitals ("OI", "OKU") in a message that is not all capitals."""
    head = text[:MAX_CHARS]
    letters = [c for c in head if c.isalpha()]
    if not letters or sum(c.isupper() for c in letters) > len(letters) / 2:
        return frozenset()
    return frozenset(w.lower() for w in _CAPS_WORD.findall(head))


@dataclass(frozen=True, slots=True)
class Thresholds:
    """When MIA trusts its best guess. Tuned with `mia intents test`, never by hand-picking."""

    accept: float = 32.0  # best score needed to answer
    margin: float = 1.0  # lead over the runner-up needed to answer
    clarify: float = 29.0  # below this, no "Maksud Anda ...?" question: plain fallback
    keyword_bonus: float = 12.0  # added per distinct keyword found (at most two count); 5-fold CV: 8 -> 12 = 84.9% -> 86.5%
    set_weight: float = 0.7  # token_set_ratio's share of the example score; token_sort_ratio has the rest
    set_candidates: int = 48  # examples per message that get the exact token_set_ratio
    coverage_weight: float = 0.2  # share of the score from word coverage; the best example has the rest
    unseen_weight: float = 1.0  # a word no example uses weighs this many times a word of one intent only
    correction_cutoff: float = 80.0  # typo correction against the content's vocabulary
    learned_weight: float = 0.5  # share of the score from the learned (Naive Bayes) posterior
    nb_alpha: float = 0.1  # additive smoothing of the word counts
    nb_temperature: float = 40.0  # log-likelihoods are divided by this before the softmax
    nb_char_min: int = 3  # word pieces of this many characters...
    nb_char_max: int = 5  # ...up to this many (0: no pieces)


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
    """Scores messages against intent examples and keywords; threshold plus margin decide."""

    def __init__(
        self,
        intents: IntentSet,
        places: PlaceMatcher,
        lexicon: Lexicon,
        thresholds: Thresholds = Thresholds(),
        seat_names: frozenset[str] = frozenset(),
    ):
        self.intents = intents
        self.places = places
        self.lexicon = lexicon
        self.t = thresholds
        self.seat_names = seat_names
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
        self._word_features = lru_cache(maxsize=50000)(self._word_features_uncached)

        self._choices: list[str] = []
        self._owner: list[str] = []
        # Examples grouped by owner, so one reduceat gives every intent's best score.
        self._group_ids: list[str] = []
        starts: list[int] = []
        groups = [(it.id, it.examples) for it in intents.intents] + [(OUT_OF_SCOPE, intents.negatives)]
        self._examples: list[Example] = []
        for owner, examples in groups:
            kept = [(self.prepare(e.text).text, e) for e in examples]
            kept = [(t, e) for t, e in kept if not set(t.split()) <= MARKERS]  # a place alone: no intent
            if kept:
                self._group_ids.append(owner)
                starts.append(len(self._choices))
                self._choices.extend(t for t, _ in kept)
                self._examples.extend(e for _, e in kept)
                self._owner.extend([owner] * len(kept))
        self._starts = np.array(starts, dtype=np.intp)
        # token_sort_ratio is ratio() of sorted tokens: sort the examples once, not per message.
        self._sorted = [" ".join(sorted(c.split())) for c in self._choices]
        postings: dict[str, list[int]] = {}
        for idx, text in enumerate(self._choices):
            for tok in set(text.split()):
                postings.setdefault(tok, []).append(idx)
        n = max(len(self._choices), 1)
        self._postings = {t: np.array(ids, dtype=np.intp) for t, ids in postings.items()}
        self._idf = {t: float(np.log(1.0 + n / len(ids))) for t, ids in postings.items()}
        # A keyword is worth as much as it is specific to its intent: the share of the
        # examples using it that belong to that intent (1.0 when no example uses it).
        self._keywords: dict[str, tuple[tuple[str, float], ...]] = {}
        padded_examples = [f" {t} " for t in self._choices]
        for it in intents.intents:
            weighted = []
            for k in it.keywords:
                kw = " ".join(self.prepare(k).tokens)
                if not kw:
                    continue
                owners = [o for o, t in zip(self._owner, padded_examples) if f" {kw} " in t]
                own = sum(1 for o in owners if o == it.id)
                weighted.append((kw, own / len(owners) if owners else 1.0))
            self._keywords[it.id] = tuple(weighted)
        # Keywords by their first word: a message only looks up the keywords its words can start.
        self._keywords_by_first: dict[str, list[tuple[str, str, float]]] = {}
        for intent_id, weighted in self._keywords.items():
            for kw, weight in weighted:
                self._keywords_by_first.setdefault(kw.split()[0], []).append((intent_id, kw, weight))
        self._build_coverage()
        self._build_learned()
        self._place_bonus = {it.id: it.place_bonus for it in intents.intents if it.place_bonus}
        self._small_talk = frozenset(it.id for it in intents.intents if it.small_talk)
        self._titles: dict[str, str] = {}
        for it in intents.intents:
            for title in it.title.values():
                self._titles.setdefault(clean(title), it.id)

    def _build_coverage(self) -> None:
        """Which intents use each word, and how specific the word is (IDF over intents)."""
        ends = np.append(self._starts[1:], len(self._choices))
        uses: dict[str, dict[int, int]] = {}  # word -> {group index: examples of the group using it}
        self._example_words: list[frozenset[str]] = []
        for g, (start, end) in enumerate(zip(self._starts.tolist(), ends.tolist())):
            for i in range(start, end):
                words = frozenset(self._choices[i].split()) - MARKERS
                self._example_words.append(words)
                for word in words:
                    counts = uses.setdefault(word, {})
                    counts[g] = counts.get(g, 0) + 1
        self._group_of = np.repeat(np.arange(len(self._starts)), ends - self._starts)
        n_groups = max(len(self._starts), 1)
        # A word MIA has never seen counts as if it were specific to one intent: the more of
        # the message nothing covers, the lower every intent scores.
        self._unseen_idf = self.t.unseen_weight * float(np.log(1.0 + n_groups))
        self._word_groups = {w: (np.fromiter(c, dtype=np.intp, count=len(c)), c) for w, c in uses.items()}
        self._word_idf = {w: float(np.log(1.0 + n_groups / len(c))) for w, c in uses.items()}
        self._n_groups = n_groups

    def features(self, tokens) -> list[str]:
        """What the learned signal reads: words, pairs of neighbouring words, and pieces of words.

        Pieces (character n-grams inside " word ") carry what a word shares with its relatives:
        "perekaman" with "rekam", "dukcapil" with "capil", "diperpanjang" with "perpanjangan".
        """
        words = list(tokens)
        feats = [f"{a}_{b}" for a, b in zip(words, words[1:])]
        for w in set(words):
            feats.extend(self._word_features(w))
        return feats

    def _word_features_uncached(self, word: str) -> tuple[str, ...]:
        lo, hi = int(self.t.nb_char_min), int(self.t.nb_char_max)
        padded = f" {word} "
        pieces = {"#" + padded[i:i + n] for n in range(lo, hi + 1) for i in range(len(padded) - n + 1)} if hi else ()
        return (word, *sorted(pieces))

    def _build_learned(self) -> None:
        """Multinomial Naive Bayes over words, word pairs and word pieces, counted from the examples.

        Fuzzy scores reward an example that shares many common words ("syarat paspor baru");
        the learned posterior weighs each word by how much it tells one intent from the others
        ("anak", "kitas"), which carries over to phrasings no example has. Training is counting,
        so it costs milliseconds at load time, and leaving one example out is exact. The counts
        are kept sparse (feature -> the intents using it), so memory grows with the examples,
        not with features x intents.
        """
        index: dict[str, int] = {}
        rows: list[np.ndarray] = []
        for text in self._choices:
            rows.append(np.array(sorted({index.setdefault(f, len(index)) for f in self.features(text.split())}),
                                 dtype=np.int64))
        n_groups = max(len(self._starts), 1)
        lengths = np.array([len(r) for r in rows], dtype=np.int64)
        feats = np.concatenate(rows) if rows else np.zeros(0, dtype=np.int64)
        groups = np.repeat(self._group_of.astype(np.int64), lengths) if rows else np.zeros(0, dtype=np.int64)
        keys, counts = np.unique(feats * n_groups + groups, return_counts=True)
        self._nb_group = (keys % n_groups).astype(np.intp)  # per (feature, intent) pair, sorted by feature
        self._nb_count = counts.astype(np.float64)
        self._nb_indptr = np.searchsorted(keys // n_groups, np.arange(len(index) + 1))
        self._nb_totals = np.bincount(groups, minlength=n_groups).astype(np.float64)
        self._nb_index = index
        self._nb_rows = (feats, np.concatenate([[0], np.cumsum(lengths)]))  # each example's features
        a = self.t.nb_alpha
        self._nb_gain = np.log1p(self._nb_count / a)  # log(count + a) - log(a): zero where unused
        self._nb_norm = np.log(self._nb_totals + a * len(index))
        self._word_ids = lru_cache(maxsize=50000)(self._word_ids_uncached)

    def _word_ids_uncached(self, word: str) -> tuple[int, ...]:
        return tuple(j for f in self._word_features(word) if (j := self._nb_index.get(f)) is not None)

    def learned(self, tokens, exclude: int | None = None) -> np.ndarray:
        """Per intent: the Naive Bayes posterior of the message (0..1); unknown words are skipped."""
        words = list(tokens)
        found = {j for a, b in zip(words, words[1:]) if (j := self._nb_index.get(f"{a}_{b}")) is not None}
        for w in set(words):
            found.update(self._word_ids(w))
        if not found:
            return np.zeros(self._n_groups)
        ids = np.fromiter(sorted(found), dtype=np.int64, count=len(found))
        starts, ends = self._nb_indptr[ids], self._nb_indptr[ids + 1]
        lengths = ends - starts
        offsets = np.cumsum(lengths) - lengths
        pairs = np.arange(lengths.sum()) - np.repeat(offsets, lengths) + np.repeat(starts, lengths)
        a = self.t.nb_alpha
        n = len(ids)
        loglik = n * np.log(a) + np.bincount(self._nb_group[pairs], weights=self._nb_gain[pairs],
                                             minlength=self._n_groups) - n * self._nb_norm
        if exclude is not None:  # leave-one-out: recount the example's intent without it
            g = int(self._group_of[exclude])
            feats, bounds = self._nb_rows
            own = feats[bounds[exclude]:bounds[exclude + 1]]
            counts = np.zeros(n)
            mine = self._nb_group[pairs] == g
            counts[np.repeat(np.arange(n), lengths)[mine]] = self._nb_count[pairs][mine]
            counts -= np.isin(ids, own)
            total = self._nb_totals[g] - len(own)
            loglik[g] = float(np.sum(np.log(counts + a)) - n * np.log(total + a * len(self._nb_index)))
        z = loglik / self.t.nb_temperature
        z = np.exp(z - z.max())
        return z / z.sum()

    def coverage(self, tokens, exclude: int | None = None) -> np.ndarray:
        """Per intent: the IDF-weighted share of the message's words its examples use (0..1).

        Fuzzy scores weigh every character alike; coverage makes a rare, telling word
        ("siduk") count more than "itu gratis gak". `exclude` leaves one example out.
        """
        words = set(tokens) - MARKERS
        out = np.zeros(self._n_groups)
        if not words:
            return out
        left_out = self._example_words[exclude] if exclude is not None else frozenset()
        excluded_group = int(self._group_of[exclude]) if exclude is not None else -1
        total = 0.0
        for word in words:
            entry = self._word_groups.get(word)
            if entry is None:
                total += self._unseen_idf
                continue
            groups, counts = entry
            if word in left_out and counts.get(excluded_group) == 1:  # only the left-out example has it
                groups = groups[groups != excluded_group]
                if not len(groups):
                    total += self._unseen_idf
                    continue
                idf = float(np.log(1.0 + self._n_groups / len(groups)))
            else:
                idf = self._word_idf[word]
            total += idf
            out[groups] += idf
        return out / total

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
        """Read one message and decide whether MIA knows what is asked."""
        prep = self.prepare(text)
        title_hit = self._titles.get(clean(text))
        if title_hit is not None:
            return Understanding(prep.text, title_hit, 1.0, (Candidate(title_hit, 100.0),), prep.places,
                                 prep.lang, False, by_title=True)
        content = [w for w in prep.tokens if w not in MARKERS]
        if not content:
            return Understanding(prep.text, None, 0.0, (), prep.places, prep.lang, False)
        scores = self.score(prep)
        places = prep.places
        asked: list[str] = []  # what each sentence asks on its own, in order
        for sentence in sentences(text):
            part = self.prepare(sentence)
            if not any(w not in MARKERS for w in part.tokens):
                continue
            part_scores = self.score(part)
            for k, v in part_scores.items():
                if k not in self._small_talk:  # "halo min" or "makasih" alone never outranks the question
                    scores[k] = max(scores.get(k, 0.0), v)
            if not places.matches and not places.outside and (part.places.matches or part.places.outside):
                places = part.places
            part_intent, _ = self._decide(part_scores)
            if part_intent is not None and part_intent not in asked and part_intent not in self._small_talk:
                asked.append(part_intent)
        intent, ranked = self._decide(scores)
        if intent in self._small_talk and asked:  # "halo min, ... syarat paspor apa? makasih"
            intent = asked[0]
        candidates = tuple(Candidate(k, v) for k, v in ranked if k != OUT_OF_SCOPE)
        oos = bool(ranked) and ranked[0][0] == OUT_OF_SCOPE
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
        return None, ranked

    def example_at(self, index: int) -> Example:
        """The example behind scoring row `index`."""
        return self._examples[index]

    def score(self, prep: _Prepared, exclude: int | None = None) -> dict[str, float]:
        """Best example score per intent blended with word coverage, plus keyword bonuses.

        An example's score mixes token_set_ratio and token_sort_ratio. token_sort_ratio is
        cheap against pre-sorted examples; the costlier token_set_ratio is computed only for
        the examples that share the rarest words with the message or sort closest to it.
        For every other example it is replaced by token_sort_ratio, its lower bound, which it
        equals whenever the two texts share no word.
        """
        w = self.t.set_weight
        n = len(self._choices)
        query_sorted = " ".join(sorted(prep.tokens))
        by_sort = process.cdist([query_sorted], self._sorted, scorer=fuzz.ratio, dtype=np.float32)[0]
        by_set = by_sort.copy()
        shared = [t for t in set(prep.tokens) if t in self._postings]
        k = self.t.set_candidates
        if shared:
            weights = np.concatenate([np.full(len(self._postings[t]), self._idf[t]) for t in shared])
            overlap = np.bincount(np.concatenate([self._postings[t] for t in shared]), weights=weights, minlength=n)
            picks = np.argpartition(-overlap, k)[:k] if n > k else np.arange(n)
            picks = picks[overlap[picks] > 0]
            close = np.argpartition(-by_sort, k)[:k] if n > k else np.arange(n)
            picks = np.union1d(picks, close)
            subset = [self._choices[i] for i in picks]
            by_set[picks] = process.cdist([prep.text], subset, scorer=fuzz.token_set_ratio, dtype=np.float32)[0]
        combined = w * by_set + (1.0 - w) * by_sort
        if exclude is not None:  # leave-one-out, for `mia intents check`
            combined[exclude] = 0.0
        best = np.maximum.reduceat(combined, self._starts)
        c = self.t.coverage_weight
        if c:
            best = (1.0 - c) * best + (100.0 * c) * self.coverage(prep.tokens, exclude)
        lw = self.t.learned_weight
        if lw:
            best = (1.0 - lw) * best + (100.0 * lw) * self.learned(prep.written or prep.tokens, exclude)
        scores = dict(zip(self._group_ids, best.tolist()))
        padded = f" {prep.text} "
        found: dict[str, dict[str, float]] = {}
        for token in set(prep.tokens):
            for intent_id, kw, weight in self._keywords_by_first.get(token, ()):
                if " " not in kw or f" {kw} " in padded:
                    found.setdefault(intent_id, {})[kw] = weight
        for intent_id, weights in found.items():
            best_two = sorted(weights.values(), reverse=True)[:2]
            scores[intent_id] = scores.get(intent_id, 0.0) + self.t.keyword_bonus * sum(best_two)
        if self._place_bonus and self._names_home_place(prep):
            for intent_id, bonus in self._place_bonus.items():
                scores[intent_id] = scores.get(intent_id, 0.0) + bonus
        return scores

    def _names_home_place(self, prep: _Prepared) -> bool:
        """True when the message names a place other than an office's own town."""
        if prep.places.outside:
            return True
        return any(m.text not in self.seat_names for m in prep.places.matches)
