"""Operators' reports: what citizens asked that MIA could not answer, grouped."""

from __future__ import annotations

import re
import time
from collections import Counter
from dataclasses import dataclass, field

from rapidfuzz import fuzz, process

GROUP_SIMILARITY = 80.0  # token_set_ratio above which two questions count as the same question...
SAME_MEANING = 0.90  # ...when their sentence vectors are this close too (shared words alone mislead:
#                      "sy mau bikin paspor" and "sy mau tanya jam buka" share three)
PARAPHRASE = 0.95  # sentence vectors this close: the same question in other words
_SPAN = re.compile(r"^\s*(\d+)\s*([mhdw])\s*$")
_UNIT = {"m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_since(text: str) -> float:
    """"7d", "24h", "30m", "2w" -> seconds; ValueError otherwise."""
    m = _SPAN.match(text.lower())
    if not m:
        raise ValueError(f"expected a span like 7d, 24h, 30m or 2w, got {text!r}")
    return int(m.group(1)) * _UNIT[m.group(2)]


@dataclass
class Group:
    """Similar unanswered questions: how often, an example, and the intent they lean to."""

    example: str
    texts: list[str] = field(default_factory=list)
    rows: list[dict] = field(default_factory=list)
    nearest: Counter = field(default_factory=Counter)
    offices: Counter = field(default_factory=Counter)

    @property
    def count(self) -> int:
        return len(self.texts)

    @property
    def nearest_intent(self) -> str | None:
        return self.nearest.most_common(1)[0][0] if self.nearest else None


def group_unanswered(rows: list[dict], normalize=None, embed=None) -> list[Group]:
    """Greedy grouping of similar questions, most frequent group first.

    Two questions are one when their words overlap (rapidfuzz token_set_ratio over normalized text)
    and, given `embed` (texts -> unit vectors), their meanings agree; or when their meanings are
    nearly the same whatever the words. A row's nearest intent is the one the citizen chose in a
    menu, else MIA's best guess.
    """
    from bot.core.nlu.normalize import clean

    normalize = normalize or clean
    groups: list[Group] = []
    keys: list[str] = []
    vectors = embed([r["text"] for r in rows]) if embed is not None and rows else None
    heads: list[int] = []  # the row that founded each group
    for i, row in enumerate(rows):
        text = row["text"]
        key = normalize(text)
        found = None
        if keys:
            words = process.cdist([key], keys, scorer=fuzz.token_set_ratio)[0]
            if vectors is None:
                best = int(words.argmax())
                found = best if words[best] >= GROUP_SIMILARITY else None
            else:
                meaning = vectors[heads] @ vectors[i]
                fits = (words >= GROUP_SIMILARITY) & (meaning >= SAME_MEANING) | (meaning >= PARAPHRASE)
                found = int((meaning * fits).argmax()) if fits.any() else None
        if found is None:
            groups.append(Group(example=text))
            keys.append(key)
            heads.append(i)
            group = groups[-1]
        else:
            group = groups[found]
        group.texts.append(text)
        group.rows.append(row)
        if row.get("chosen"):
            group.nearest[row["chosen"]] += 1
        elif row["candidates"]:
            group.nearest[row["candidates"][0][0]] += 1
        group.offices[row.get("office") or "-"] += 1
    return sorted(groups, key=lambda g: (-g.count, g.example))


def since_timestamp(span: str, now: float | None = None) -> float:
    return (time.time() if now is None else now) - parse_since(span)
