"""Normalization of Indonesian chat text: case, punctuation, emoji, repeated letters, slang."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

# Understanding never looks past this many characters or tokens: the cost of reading a
# message must not grow with the length of garbage a citizen (or an attacker) sends.
MAX_CHARS = 400
MAX_TOKENS = 48

_NON_WORD = re.compile(r"[^\w]+", re.UNICODE)
_REPEAT3 = re.compile(r"(?!\b[ivx]+\b)([^\W\d])\1{2,}", re.UNICODE)  # letters only: "30111" is a postal code
_REDUP_HYPHEN = re.compile(r"\b(\w{2,})-\1\b", re.UNICODE)
_REDUP_TWO = re.compile(r"\b([a-z]{3,})2\b")
_DIGIT_WORD = re.compile(r"(?<=[a-z])(?=\d)|(?<=\d)(?=[a-z])")


@dataclass(frozen=True, slots=True)
class Lexicon:
    """Chat slang expansions and language marker words, loaded from data/lexicon.yaml."""

    slang: dict[str, tuple[str, ...]]
    english: frozenset[str]
    indonesian: frozenset[str]
    preamble: re.Pattern | None = None  # openers that carry no question ("halo min, mau tanya")

    @classmethod
    def from_mapping(cls, data: dict) -> "Lexicon":
        """Build from the parsed YAML mapping."""
        slang = {
            str(k).lower(): tuple(str(v or "").lower().split()) for k, v in (data.get("slang") or {}).items()
        }
        phrases = sorted({" ".join(str(p).lower().split()) for p in data.get("preamble") or ()} - {""},
                         key=len, reverse=True)
        preamble = None
        if phrases:
            words = "|".join(r"\s+".join(map(re.escape, p.split())) for p in phrases)
            preamble = re.compile(rf"^(?:[\W_]*(?:{words})(?![\w])[\W_]*)+", re.IGNORECASE)
        return cls(
            slang=slang,
            english=frozenset(str(w).lower() for w in data.get("english_words") or ()),
            indonesian=frozenset(str(w).lower() for w in data.get("indonesian_words") or ()),
            preamble=preamble,
        )

    def past_preamble(self, text: str) -> str:
        """The message after its openers ("Halo min, mau tanya syarat paspor?" -> "syarat paspor?")."""
        if self.preamble is None:
            return text
        m = self.preamble.match(text[:MAX_CHARS])
        return text[m.end():] if m else text


def clean(text: str) -> str:
    """Lower-case, strip emoji, punctuation and control characters, squeeze letters and spaces.

    The result keeps letters and digits of any script, single-spaced: "Halooo kak!!! 🙏"
    becomes "haloo kak". Reduplication ("syarat-syarat", "syarat2") collapses to one word.
    """
    text = unicodedata.normalize("NFKC", text[:MAX_CHARS]).lower()
    text = _REDUP_HYPHEN.sub(r"\1", text)
    text = text.replace("'", "").replace("\u2019", "")
    text = _NON_WORD.sub(" ", text).replace("_", " ")
    text = _REPEAT3.sub(r"\1\1", text)
    text = _REDUP_TWO.sub(r"\1", text)
    return " ".join(text.split()[:MAX_TOKENS])


def split_digits(tokens: list[str]) -> list[str]:
    """Split tokens where letters meet digits ("it2" -> "it 2"), keeping pure words intact."""
    out: list[str] = []
    for tok in tokens:
        out.extend(_DIGIT_WORD.sub(" ", tok).split())
    return out


def expand_slang(tokens: list[str], lexicon: Lexicon) -> list[str]:
    """Replace chat abbreviations with the words they stand for; drop filler words."""
    out: list[str] = []
    for tok in tokens:
        repl = lexicon.slang.get(tok)
        if repl is None and len(tok) > 3 and tok[-1] == tok[-2]:
            # "haloo" -> "halo" when only the squeezed form is known.
            repl = lexicon.slang.get(tok[:-1])
        if repl is None:
            out.append(tok)
        else:
            out.extend(repl)
    return out


# Words both languages' writers use: they tell no language ("ok" after an English answer is English).
EITHER_LANGUAGE = frozenset("ok oke okay okey sip".split())


def detect_language(tokens: list[str], lexicon: Lexicon) -> str | None:
    """Return "en" or "id" when the words say so, None when they do not tell."""
    tokens = [t for t in tokens if t not in EITHER_LANGUAGE]
    en = sum(1 for t in tokens if t in lexicon.english)
    idn = sum(1 for t in tokens if t not in lexicon.english and (t in lexicon.indonesian or t in lexicon.slang))
    # One English word among others ("cek status RKT-2026-...") is a loanword, not a switch of language.
    if en > idn and (en >= 2 or en == len(tokens)):
        return "en"
    if idn > en:
        return "id"
    return None
