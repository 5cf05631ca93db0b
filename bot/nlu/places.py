"""Finding South Sumatra's regencies and districts (and places elsewhere) in a message."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from rapidfuzz import fuzz, process

from bot.knowledge import Knowledge, OutsidePlace
from bot.nlu.normalize import clean, split_digits

# Words after which a name that is also an everyday word counts as a place.
CUE_WORDS = frozenset(
    "di dari dr dri ke kec kecamatan kab kabupaten kota daerah wilayah tinggal domisili asal alamat "
    "warga from in at near sekitar desa kel kelurahan kampung dusun".split()
)
# Filler words that may surround a bare place name ("saya di lahat kak").
FILLER_WORDS = frozenset(
    "saya aku sy di dari dr ke kak min bang pak bu ya yg yang kec kecamatan kab kabupaten kota "
    "daerah wilayah tinggal domisili asal i im am from in at live the of".split()
)
_ROMAN = {"i": ("1", "satu"), "ii": ("2", "dua"), "iii": ("3", "tiga")}
_WORD_NUM = {"satu": ("i", "1"), "dua": ("ii", "2"), "tiga": ("iii", "3")}
MAX_NGRAM = 6
FUZZY_MIN_CHARS = 6
FUZZY_CUTOFF = 86.0
FUZZY_MARGIN = 4.0
SHORT_ALIAS = 4  # names this short or shorter only ever match exactly


@dataclass(frozen=True, slots=True)
class Place:
    """A name MIA knows, pointing at a regency (and a district when the name is one)."""

    name: str
    regency_code: str
    district_code: str | None = None


@dataclass(frozen=True, slots=True)
class PlaceMatch:
    """A place found in a message: tokens [start, end) of the cleaned text."""

    place: Place
    start: int
    end: int
    score: float
    text: str = ""  # the words as the citizen wrote them (cleaned)
    preceded_by: str = ""  # the word just before, "" at the start
    also_outside: OutsidePlace | None = None


@dataclass(frozen=True, slots=True)
class OutsideMatch:
    """A place outside South Sumatra found in a message."""

    place: OutsidePlace
    start: int
    end: int


@dataclass(frozen=True, slots=True)
class PlaceResult:
    """All places found in one message."""

    matches: tuple[PlaceMatch, ...]
    outside: tuple[OutsideMatch, ...]

    @property
    def regency_codes(self) -> tuple[str, ...]:
        """Distinct regencies mentioned, in order of appearance."""
        seen: dict[str, None] = {}
        for m in sorted(self.matches, key=lambda m: m.start):
            seen.setdefault(m.place.regency_code, None)
        return tuple(seen)

    @property
    def spans(self) -> list[tuple[int, int]]:
        """Token spans taken by places, for masking them out of intent scoring."""
        return sorted([(m.start, m.end) for m in self.matches] + [(o.start, o.end) for o in self.outside])


def name_variants(name: str) -> set[str]:
    """Cleaned spellings of a name: "Banyuasin I" -> {"banyuasin i", "banyuasin 1", ...}."""
    base = clean(name)
    variants = {base, base.replace(" ", "")} if len(base.split()) == 2 else {base}
    words = base.split()
    if words:
        last = words[-1]
        for table in (_ROMAN, _WORD_NUM):
            for alt in table.get(last, ()):
                variants.add(" ".join(words[:-1] + [alt]))
    return {v for v in variants if v}


class PlaceMatcher:
    """Finds places in cleaned text: exact names first (longest wins), then typo-tolerant long names."""

    def __init__(self, knowledge: Knowledge, known_words: frozenset[str] = frozenset()):
        self.knowledge = knowledge
        self.known_words = known_words
        names: dict[str, set[Place]] = defaultdict(set)
        for reg in knowledge.regencies:
            for n in {reg.name, reg.short_name, *reg.aliases}:
                for v in name_variants(n):
                    names[v].add(Place(reg.short_name, reg.code))
            for d in reg.districts:
                spellings = {d.name, *knowledge.district_aliases.get(d.code, ())}
                for n in spellings:
                    for v in name_variants(n):
                        names[v].add(Place(d.name, reg.code, d.code))
        self.names: dict[str, tuple[Place, ...]] = {}
        for key, places in names.items():
            # A name that is both a regency and one of its districts stands for the regency.
            regency_level = [p for p in places if p.district_code is None]
            self.names[key] = tuple(sorted(regency_level or places, key=lambda p: (p.regency_code, p.name)))
        self.outside = {k: v for k, v in knowledge.outside.items() if k not in self.names}
        self.shadowed_outside = {k: v for k, v in knowledge.outside.items() if k in self.names}
        self.needs_cue = knowledge.needs_cue
        buckets: dict[str, list[str]] = defaultdict(list)
        for key in self.names:
            if len(key) >= FUZZY_MIN_CHARS and key not in self.needs_cue:
                buckets[key[0]].append(key)
        self._fuzzy_buckets = dict(buckets)
        self.max_ngram = max(MAX_NGRAM, max(len(k.split()) for k in self.names))

    def find(self, tokens: list[str], acronyms: frozenset[str] = frozenset()) -> PlaceResult:
        """Find places among cleaned tokens (see normalize.clean and split_digits).

        `acronyms` are words the citizen wrote in capitals ("OI"): an abbreviation written so
        is a place even when the same letters are an everyday word.
        """
        n_tok = len(tokens)
        taken = [False] * n_tok
        matches: list[PlaceMatch] = []
        outside: list[OutsideMatch] = []

        def free(i: int, j: int) -> bool:
            return not any(taken[i:j])

        def take(i: int, j: int) -> None:
            for k in range(i, j):
                taken[k] = True

        def cued(i: int, j: int) -> bool:
            if i > 0 and tokens[i - 1] in CUE_WORDS or (j - i == 1 and tokens[i] in acronyms):
                return True
            rest = tokens[:i] + tokens[j:]
            return all(t in FILLER_WORDS for t in rest)

        for n in range(min(self.max_ngram, n_tok), 0, -1):
            for i in range(0, n_tok - n + 1):
                if not free(i, i + n):
                    continue
                key = " ".join(tokens[i : i + n])
                places = self.names.get(key)
                if places is not None:
                    if key in self.needs_cue and not cued(i, i + n):
                        continue
                    take(i, i + n)
                    before = tokens[i - 1] if i else ""
                    also = self.shadowed_outside.get(key)
                    for p in places:
                        matches.append(PlaceMatch(p, i, i + n, 100.0, key, before, also))
                    continue
                other = self.outside.get(key)
                if other is not None:
                    take(i, i + n)
                    outside.append(OutsideMatch(other, i, i + n))
        for i, j, place_key, score in self._fuzzy(tokens, taken):
            if free(i, j):
                take(i, j)
                before = tokens[i - 1] if i else ""
                for p in self.names[place_key]:
                    matches.append(PlaceMatch(p, i, j, score, " ".join(tokens[i:j]), before))
        matches.sort(key=lambda m: m.start)
        outside.sort(key=lambda m: m.start)
        return PlaceResult(tuple(matches), tuple(outside))

    def _fuzzy(self, tokens: list[str], taken: list[bool]):
        """Typo-tolerant matches of long names, best first, each clear of its runner-up."""
        found = []
        n_tok = len(tokens)
        for n in range(min(4, n_tok), 0, -1):
            for i in range(0, n_tok - n + 1):
                if any(taken[i : i + n]):
                    continue
                words = tokens[i : i + n]
                if all(w in self.known_words or w.isdigit() for w in words):
                    continue
                if words[0] in self.known_words or words[-1] in self.known_words and n > 1:
                    continue
                key = " ".join(words)
                if len(key) < FUZZY_MIN_CHARS:
                    continue
                bucket = self._fuzzy_buckets.get(key[0])
                if not bucket:
                    continue
                best = process.extract(key, bucket, scorer=fuzz.ratio, limit=4, score_cutoff=FUZZY_CUTOFF - FUZZY_MARGIN)
                if not best or best[0][1] < FUZZY_CUTOFF:
                    continue
                top_key, top_score, _ = best[0]
                top_regencies = {p.regency_code for p in self.names[top_key]}
                rival = next(
                    (s for k, s, _ in best[1:] if {p.regency_code for p in self.names[k]} != top_regencies), None
                )
                if rival is not None and top_score - rival < FUZZY_MARGIN:
                    continue
                found.append((top_score, n, i, i + n, top_key))
        found.sort(key=lambda f: (-f[1], -f[0]))
        return [(i, j, key, score) for score, _, i, j, key in found]


def tokens_of(text: str) -> list[str]:
    """Cleaned tokens of a message, as the place matcher reads them."""
    return split_digits(clean(text).split())
