"""Operators' reports: what citizens asked that MIA could not answer, grouped."""

from __future__ import annotations

import re
import time
from collections import Counter
from dataclasses import dataclass, field

from rapidfuzz import fuzz, process

GROUP_SIMILARITY = 80.0  # token_set_ratio above which two questions count as the same question
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
    nearest: Counter = field(default_factory=Counter)
    offices: Counter = field(default_factory=Counter)

    @property
    def count(self) -> int:
        return len(self.texts)

    @property
    def nearest_intent(self) -> str | None:
        return self.nearest.most_common(1)[0][0] if self.nearest else None


def group_unanswered(rows: list[dict], normalize=None) -> list[Group]:
    """Greedy grouping with rapidfuzz over normalized text, most frequent group first."""
    from bot.nlu.normalize import clean

    normalize = normalize or clean
    groups: list[Group] = []
    keys: list[str] = []
    for row in rows:
        text = row["text"]
        key = normalize(text)
        hit = process.extractOne(key, keys, scorer=fuzz.token_set_ratio, score_cutoff=GROUP_SIMILARITY) if keys else None
        if hit is None:
            groups.append(Group(example=text))
            keys.append(key)
            group = groups[-1]
        else:
            group = groups[hit[2]]
        group.texts.append(text)
        if row["candidates"]:
            group.nearest[row["candidates"][0][0]] += 1
        group.offices[row.get("office") or "-"] += 1
    return sorted(groups, key=lambda g: (-g.count, g.example))


def since_timestamp(span: str, now: float | None = None) -> float:
    return (time.time() if now is None else now) - parse_since(span)
