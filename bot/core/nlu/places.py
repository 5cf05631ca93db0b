"""Finding South Sumatra's regencies, districts, villages and postal codes (and places elsewhere) in a message."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from rapidfuzz import fuzz, process

from bot.core.knowledge import Knowledge, OutsidePlace
from bot.core.nlu.normalize import clean, split_digits

# Words after which a name that is also an everyday word counts as a place.
CUE_WORDS = frozenset(
    "di dari dr dri ke kec kecamatan kab kabupaten kota daerah wilayah tinggal domisili asal alamat "
    "warga from in at near sekitar desa kel kelurahan kampung dusun".split()
)
# Words after which even a village named like a very common word ("dalam", "baru") counts as a place.
VILLAGE_CUES = frozenset("desa ds kel kelurahan lurah dusun dsn kampung kampong".split())
# Cue words for a village named like a common word: "ke" is where one goes ("jalan ke bukit").
VILLAGE_ANY_CUES = CUE_WORDS - {"ke"}
# A place right after these is where the citizen is going, not where they live: it does not
# decide which of several namesakes they mean ("sukarami, ke muara enim bisa?").
DESTINATION_WORDS = frozenset("ke kanim kantor imigrasi atau or to".split())
# ...unless the word before it names the level ("tanjung raja, kec. muara enim").
LEVEL_WORDS = frozenset("kec kecamatan kab kabupaten kota".split())
# Filler words that may surround a bare place name ("saya di lahat kak").
FILLER_WORDS = frozenset(
    "saya aku sy di dari dr ke kak min bang pak bu ya yg yang kec kecamatan kab kabupaten kota "
    "daerah wilayah tinggal domisili asal i im am from in at live the of".split()
)
_ROMAN = {"i": ("1", "satu"), "ii": ("2", "dua"), "iii": ("3", "tiga")}
_WORD_NUM = {"satu": ("i", "1"), "dua": ("ii", "2"), "tiga": ("iii", "3")}
MAX_NGRAM = 6
FUZZY_CUTOFF = 86.0
FUZZY_MARGIN = 4.0
SHORT_ALIAS = 4  # names this short or shorter only ever match exactly
# How common a one-word village name is in Indonesian (wordfreq's Zipf scale, generated into
# data/villages.json): from COMMON_ZIPF it needs a cue word ("di", "desa"), from EVERYDAY_ZIPF
# ("dalam", "baru", "sawah", "bukit") a village word ("desa", "kelurahan", "kel").
COMMON_ZIPF = 3.0
EVERYDAY_ZIPF = 4.0
ANY_CUE, VILLAGE_CUE = 1, 2  # what a village name needs before it (0: nothing)


@dataclass(frozen=True, slots=True)
class Place:
    """A name MIA knows, pointing at a regency (and a district or village when the name is one)."""

    name: str
    regency_code: str
    district_code: str | None = None
    village_code: str | None = None  # a desa/kelurahan: name is "Sukajadi, Kec. Talang Kelapa"


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
    preceded_by: str = ""  # the word just before, "" at the start ("di malaysia": the citizen is there)


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


@dataclass(slots=True)
class _Span:
    """Tokens [start, end) and the places they may name, before namesakes are settled."""

    start: int
    end: int
    key: str
    places: tuple[Place, ...]
    score: float = 100.0
    also_outside: OutsidePlace | None = None
    villages: tuple[Place, ...] = ()  # villages of the same name, behind a regency or district


class PlaceMatcher:
    """Finds places in cleaned text: exact names first (longest wins), then typo-tolerant long names.

    Regencies, districts and curated towns come first; then desa/kelurahan (data/villages.json)
    for the words still free, so a village never takes the words of a regency or district.
    After a village word ("desa sukarami", "kelurahan lawangkidul") a regency or district name
    also stands for the villages so named (spaces aside), so that namesakes under another office
    are not left out. Namesakes are settled by another place in the same message ("sukarami,
    kec. rambang").
    """

    def __init__(self, knowledge: Knowledge, known_words: frozenset[str] = frozenset()):
        self.knowledge = knowledge
        names: dict[str, set[Place]] = defaultdict(set)
        districts = {}
        for reg in knowledge.regencies:
            for n in {reg.name, reg.short_name, *reg.aliases}:
                for v in name_variants(n):
                    names[v].add(Place(reg.short_name, reg.code))
            for d in reg.districts:
                districts[d.code] = d
                spellings = {d.name, *knowledge.district_aliases.get(d.code, ())}
                for n in spellings:
                    for v in name_variants(n):
                        names[v].add(Place(d.name, reg.code, d.code))
        for town, code in knowledge.towns.items():
            for v in name_variants(town):
                names[v].add(Place(town, districts[code].regency_code, code))
        self.names: dict[str, tuple[Place, ...]] = {}
        for key, places in names.items():
            # A name that is both a regency and one of its districts stands for the regency.
            regency_level = [p for p in places if p.district_code is None]
            self.names[key] = tuple(sorted(regency_level or places, key=lambda p: (p.regency_code, p.name)))
        self.outside = {k: v for k, v in knowledge.outside.items() if k not in self.names}
        self.shadowed_outside = {k: v for k, v in knowledge.outside.items() if k in self.names}
        self.needs_cue = knowledge.needs_cue
        self.seat_keys = frozenset(clean(n) for o in knowledge.offices for n in o.seat_names)
        self._build_villages(knowledge, districts)
        self._build_fuzzy()
        self.known_words = known_words
        keys = (*self.names, *self.villages, *self.outside)
        self.max_ngram = max(MAX_NGRAM, max(len(k.split()) for k in keys))
        self._first_words = frozenset(k.split()[0] for k in keys)  # no name starts elsewhere: skip

    def _build_villages(self, knowledge: Knowledge, districts: dict) -> None:
        """Villages by name, postal codes, and which village names need a cue word."""
        keys: dict[str, set[Place]] = defaultdict(set)
        by_compact: dict[str, set[Place]] = defaultdict(set)  # "lawangkidul": Lawangkidul and Lawang Kidul
        postal: dict[str, set[str]] = defaultdict(set)
        for v in knowledge.villages:
            d = districts[v.district_code]
            place = Place(f"{v.name}, Kec. {d.name}", d.regency_code, d.code, v.code)
            for key in name_variants(v.name):
                keys[key].add(place)
                by_compact[key.replace(" ", "")].add(place)
            if v.postal_code:
                postal[v.postal_code].add(v.district_code)
        self._villages_by_compact = {k: tuple(sorted(ps, key=lambda p: p.village_code)) for k, ps in by_compact.items()}
        # A name stands for every village spelt with the same letters: "argo mulyo" is "Argomulyo" too,
        # after the villages spelt as the citizen did.
        self.villages = {k: tuple(sorted(self._villages_by_compact[k.replace(" ", "")],
                                         key=lambda p: (p not in exact, p.village_code)))
                         for k, exact in keys.items()}
        self.postal: dict[str, tuple[Place, ...]] = {}
        for code, district_codes in postal.items():
            by_regency: dict[str, list[str]] = defaultdict(list)
            for dc in sorted(district_codes):
                by_regency[districts[dc].regency_code].append(dc)
            # Keyed as the citizen's text reads after clean() (which keeps digits as written).
            self.postal[clean(code)] = tuple(
                Place(f"Kode pos {code}", reg, dcs[0] if len(dcs) == 1 else None)
                for reg, dcs in sorted(by_regency.items())
            )
        zipf = knowledge.word_zipf
        cue: dict[str, int] = {}
        for key in self.villages:
            if key in knowledge.outside or (" " not in key and zipf.get(key, 0.0) >= EVERYDAY_ZIPF):
                cue[key] = VILLAGE_CUE  # "desa padang": Padang in West Sumatra otherwise
            elif key in self.needs_cue or (" " not in key and zipf.get(key, 0.0) >= COMMON_ZIPF):
                cue[key] = ANY_CUE
        self._village_cue_by_data = cue

    def _build_fuzzy(self) -> None:
        """Long regency/district names by initial, and multi-word ones by their first and last word."""
        buckets: dict[str, list[str]] = defaultdict(list)
        by_first: dict[str, list[str]] = defaultdict(list)
        by_last: dict[str, list[str]] = defaultdict(list)
        for key in self.names:
            # 5-letter names ("lahat") only as one plain word: "it ii" is no typo of "it is".
            if key in self.needs_cue or len(key) <= SHORT_ALIAS or len(key) == SHORT_ALIAS + 1 and not key.isalpha():
                continue
            buckets[key[0]].append(key)
            words = key.split()
            if len(words) > 1:
                by_first[words[0]].append(key)
                by_last[words[-1]].append(key)
        self._fuzzy_buckets = dict(buckets)
        self._fuzzy_by_first = dict(by_first)
        self._fuzzy_by_last = dict(by_last)

    @property
    def known_words(self) -> frozenset[str]:
        """The content's own words (set by the intent matcher): no typo of a place, and a village
        named only with them ("kota baru") needs a cue word."""
        return self._known_words

    @known_words.setter
    def known_words(self, words: frozenset[str]) -> None:
        self._known_words = words
        cue = dict(self._village_cue_by_data)
        for key in self.villages:
            if key not in cue and all(w in words for w in key.split()):
                cue[key] = ANY_CUE
        self.village_cue = cue

    def find(self, tokens: list[str], acronyms: frozenset[str] = frozenset()) -> PlaceResult:
        """Find places among cleaned tokens (see normalize.clean and split_digits).

        `acronyms` are words the citizen wrote in capitals ("OI"): an abbreviation written so
        is a place even when the same letters are an everyday word.
        """
        n_tok = len(tokens)
        taken = [False] * n_tok
        spans: list[_Span] = []
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

        def village_cued(key: str, i: int, j: int) -> bool:
            need = self.village_cue.get(key, 0)
            before = tokens[i - 1] if i else ""
            if need and j < n_tok and tokens[j] in ("kec", "kecamatan"):
                return True  # "Dalam, Kec. Belimbing": how MIA's own buttons name a village
            if need == VILLAGE_CUE:
                return before in VILLAGE_CUES
            return need == 0 or before in VILLAGE_ANY_CUES or before != "ke" and cued(i, j)

        starts = [i for i, t in enumerate(tokens) if t in self._first_words or t in self.postal]
        for n in range(min(self.max_ngram, n_tok), 0, -1):
            for i in starts:  # regencies, districts, towns
                if i + n > n_tok or not free(i, i + n):
                    continue
                key = " ".join(tokens[i : i + n])
                places = self.names.get(key)
                if places is None or key in self.needs_cue and not cued(i, i + n):
                    continue
                take(i, i + n)
                villages = self.villages_named(key)
                if villages and i > 0 and tokens[i - 1] in VILLAGE_CUES:
                    places = self._with_villages(places, villages)  # "desa sukarami": the villages too
                spans.append(_Span(i, i + n, key, places, also_outside=self.shadowed_outside.get(key),
                                   villages=villages))
            for i in starts:  # villages and postal codes, then places elsewhere
                if i + n > n_tok or not free(i, i + n):
                    continue
                key = " ".join(tokens[i : i + n])
                places = self.villages.get(key) or (self.postal.get(key) if n == 1 else None)
                if places is not None and village_cued(key, i, i + n):
                    take(i, i + n)
                    spans.append(_Span(i, i + n, key, places, also_outside=self.knowledge.outside.get(key)))
                    continue
                other = self.outside.get(key)
                if other is not None:
                    take(i, i + n)
                    outside.append(OutsideMatch(other, i, i + n, tokens[i - 1] if i else ""))
        for i, j, place_key, score in self._fuzzy(tokens, taken):
            if free(i, j):
                take(i, j)
                places, villages = self.names[place_key], self.villages_named(place_key)
                if villages and i > 0 and tokens[i - 1] in VILLAGE_CUES:
                    places = self._with_villages(places, villages)  # "desa sukaramii"
                spans.append(_Span(i, j, " ".join(tokens[i:j]), places, score, villages=villages))
        self._settle_namesakes(spans, tokens)
        matches = [
            PlaceMatch(p, s.start, s.end, s.score, s.key, tokens[s.start - 1] if s.start else "", s.also_outside)
            for s in sorted(spans, key=lambda s: s.start)
            for p in s.places
        ]
        outside.sort(key=lambda m: m.start)
        return PlaceResult(tuple(matches), tuple(outside))

    def villages_named(self, key: str) -> tuple[Place, ...]:
        """The villages whose name is `key`, however it is split into words ("lawang kidul")."""
        return self._villages_by_compact.get(key.replace(" ", ""), ())

    @staticmethod
    def _with_villages(places: tuple[Place, ...], villages: tuple[Place, ...]) -> tuple[Place, ...]:
        """A regency or district name said after a village word: the places it may name, likeliest first.

        A village inside the regency or district of that name (Kelurahan Sukarami in Kecamatan
        Sukarami), then the regency or district itself, then the villages so named elsewhere.
        """
        def inside(v: Place) -> bool:
            return any(v.district_code == p.district_code if p.district_code else v.regency_code == p.regency_code
                       for p in places)

        within = tuple(v for v in villages if inside(v))
        return within + places + tuple(v for v in villages if v not in within)

    def _settle_namesakes(self, spans: list[_Span], tokens: list[str]) -> None:
        """Keep the namesakes that lie in a regency or district named elsewhere in the message.

        "desa sukarami kec rambang": of the places called Sukarami (a district of Palembang,
        villages in nine regencies) only the village in Rambang is left. A name the matcher
        read as a district gives way to a village of the same name only when the other place
        contains that village and not the district. Places the citizen is going to ("ke
        muara enim") and office towns named bare do not count: they are not where one lives;
        an office town right after another place does ("desa tanjung agung, muara enim").
        """
        if len(spans) < 2:
            return
        anchors = []
        ends = {s.end for s in spans}
        for idx, s in enumerate(spans):
            before = tokens[s.start - 1] if s.start else ""
            # An office town named right after another place qualifies it ("desa tanjung agung,
            # muara enim"); named bare elsewhere it may be the office ("kanim muara enim").
            qualifies = before in LEVEL_WORDS or s.start in ends
            if before in DESTINATION_WORDS or (s.key in self.seat_keys and not qualifies):
                continue
            regencies = {p.regency_code for p in s.places}
            if len(regencies) == 1:
                districts = {p.district_code for p in s.places}
                anchors.append((idx, regencies, districts - {None} if len(districts) == 1 else set()))
        for idx, s in enumerate(spans):
            level_named = s.start > 0 and tokens[s.start - 1] in LEVEL_WORDS  # "kec pagar gunung" is no village
            regencies = {r for j, rs, _ in anchors if j != idx for r in rs}
            if not regencies:
                continue
            districts = {d for j, _, ds in anchors if j != idx for d in ds}
            for level, codes in (("district_code", districts), ("regency_code", regencies)):
                pool = s.places
                inside = [p for p in pool if getattr(p, level) in codes]
                if not inside and not level_named:
                    pool = s.villages
                    inside = [p for p in pool if getattr(p, level) in codes]
                if inside:
                    s.places = tuple(inside)
                    if pool is s.villages:
                        s.also_outside = None
                    break

    def _fuzzy(self, tokens: list[str], taken: list[bool]):
        """Typo-tolerant matches of long names, best first, each clear of its runner-up.

        A word of the content's vocabulary at the edge of the words tried ("muara enimm") is
        kept as written: only names starting (ending) with that very word are candidates.
        """
        found = []
        n_tok = len(tokens)
        known = self.known_words
        for n in range(min(4, n_tok), 0, -1):
            for i in range(0, n_tok - n + 1):
                if any(taken[i : i + n]):
                    continue
                words = tokens[i : i + n]
                if all(w in known or w.isdigit() for w in words):
                    continue
                key = " ".join(words)
                if len(key) <= SHORT_ALIAS:
                    continue
                if words[0] in known:  # n > 1 here: a known word alone was skipped above
                    bucket = self._fuzzy_by_first.get(words[0])
                elif n > 1 and words[-1] in known:
                    bucket = self._fuzzy_by_last.get(words[-1])
                else:
                    bucket = self._fuzzy_buckets.get(key[0])
                if not bucket:
                    continue
                best = process.extract(key, bucket, scorer=fuzz.ratio, limit=4, score_cutoff=FUZZY_CUTOFF - FUZZY_MARGIN)
                if not best or best[0][1] < FUZZY_CUTOFF:
                    continue
                top_key, top_score, _ = best[0]
                if n > 1 and words[-1] in known and not top_key.endswith(" " + words[-1]):
                    continue
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
