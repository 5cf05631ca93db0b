"""Everything operators edit (intents, responses, data), loaded and indexed as one snapshot."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from bot.knowledge import Knowledge, load_knowledge
from bot.nlu.intents import IntentSet, load_intents
from bot.nlu.matcher import IntentMatcher, Thresholds
from bot.nlu.normalize import Lexicon
from bot.nlu.places import PlaceMatcher
from bot.responses import Responses
from bot.yamlfile import ContentError, ContentErrors, load_yaml


@dataclass(frozen=True)
class Content:
    """An immutable snapshot of the content; swapping it whole keeps every answer consistent."""

    root: Path
    knowledge: Knowledge
    intents: IntentSet
    lexicon: Lexicon
    places: PlaceMatcher
    matcher: IntentMatcher
    responses: Responses
    load_seconds: float

    @classmethod
    def load(cls, root: Path, thresholds: Thresholds | None = None) -> "Content":
        """Load intents/, responses/ and data/ under root; raise ContentErrors on problems."""
        started = time.perf_counter()
        root = Path(root)
        errors: list[ContentError] = []
        knowledge = intents = lexicon = None
        try:
            knowledge = load_knowledge(root / "data")
        except ContentErrors as exc:
            errors.extend(exc.errors)
        try:
            intents = load_intents(root / "intents")
        except ContentErrors as exc:
            errors.extend(exc.errors)
        try:
            data, _ = load_yaml(root / "data" / "lexicon.yaml")
            lexicon = Lexicon.from_mapping(data or {})
        except ContentError as exc:
            errors.append(exc)
        if errors:
            raise ContentErrors(errors)
        places = PlaceMatcher(knowledge)
        seats = frozenset(name for office in knowledge.offices for name in office.seat_names)
        matcher = IntentMatcher(intents, places, lexicon, thresholds or Thresholds(), seat_names=seats)
        responses = Responses(root / "responses")
        return cls(
            root=root,
            knowledge=knowledge,
            intents=intents,
            lexicon=lexicon,
            places=places,
            matcher=matcher,
            responses=responses,
            load_seconds=time.perf_counter() - started,
        )
