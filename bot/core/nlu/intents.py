"""Loading and validating the operator-edited intent files (intents/*.yaml)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from bot.core.yamlfile import ContentError, ContentErrors, display_path, line_of, load_yaml, validate

INTENT_ID = r"^[a-z][a-z0-9_]*$"


class _Title(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str = Field(min_length=1, max_length=24)
    en: str = Field(min_length=1, max_length=24)


class _IntentSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str = Field(pattern=INTENT_ID)
    title: _Title
    examples: list[str] = Field(min_length=1)
    keywords: list[str] = []
    buttons: list[str] = []
    response: str | None = Field(default=None, pattern=INTENT_ID)
    place_bonus: float = Field(default=0.0, ge=0, le=30)
    small_talk: bool = False


class _IntentFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    intents: list[_IntentSpec] = []
    out_of_scope: list[str] = []


@dataclass(frozen=True, slots=True)
class Source:
    """Where a piece of content was written: file and 1-based line."""

    path: Path
    line: int | None

    def __str__(self) -> str:
        return display_path(self.path, self.line)


@dataclass(frozen=True, slots=True)
class Example:
    """One training phrase of an intent (intent None for an out-of-scope negative)."""

    text: str
    intent: str | None
    source: Source


@dataclass(frozen=True, slots=True)
class Intent:
    """What a citizen may want, with how MIA recognises it and answers it."""

    id: str
    title: dict[str, str]
    examples: tuple[Example, ...]
    keywords: tuple[str, ...]
    buttons: tuple[str, ...]
    response: str
    source: Source
    place_bonus: float = 0.0  # added when the message names a place that is not an office's town
    small_talk: bool = False  # greetings and thanks: around a question they never outrank it


@dataclass(frozen=True)
class IntentSet:
    """All intents and out-of-scope examples from intents/*.yaml."""

    intents: tuple[Intent, ...]
    negatives: tuple[Example, ...]

    def __post_init__(self) -> None:
        # Looked up several times per message: an index, not a scan of every intent.
        object.__setattr__(self, "_by_id", {i.id: i for i in self.intents})

    def get(self, intent_id: str) -> Intent | None:
        """The intent with this id, or None."""
        return self._by_id.get(intent_id)

    @property
    def ids(self) -> list[str]:
        return [i.id for i in self.intents]


def load_intents(intents_dir: Path) -> IntentSet:
    """Load every intents/*.yaml; raise ContentErrors naming file and line on any problem."""
    errors: list[ContentError] = []
    intents: list[Intent] = []
    negatives: list[Example] = []
    files = sorted(Path(intents_dir).glob("*.yaml"))
    if not files:
        raise ContentErrors([ContentError(Path(intents_dir), None, "no intent files (*.yaml) found")])
    for path in files:
        try:
            data, lines = load_yaml(path)
        except ContentError as exc:
            errors.append(exc)
            continue
        try:
            spec = validate(_IntentFile, data or {}, path, lines)
        except ContentErrors as exc:
            errors.extend(exc.errors)
            continue
        for i, it in enumerate(spec.intents):
            examples = tuple(
                Example(text, it.id, Source(path, line_of(lines, ("intents", i, "examples", j))))
                for j, text in enumerate(it.examples)
            )
            intents.append(
                Intent(
                    id=it.id,
                    title={"id": it.title.id, "en": it.title.en},
                    examples=examples,
                    keywords=tuple(k.lower() for k in it.keywords),
                    buttons=tuple(it.buttons),
                    response=it.response or it.id,
                    source=Source(path, line_of(lines, ("intents", i))),
                    place_bonus=it.place_bonus,
                    small_talk=it.small_talk,
                )
            )
        negatives.extend(
            Example(text, None, Source(path, line_of(lines, ("out_of_scope", j))))
            for j, text in enumerate(spec.out_of_scope)
        )
    seen: dict[str, Intent] = {}
    for it in intents:
        if it.id in seen:
            errors.append(ContentError(it.source.path, it.source.line, f"intent id '{it.id}' is used twice "
                                       f"(first at {seen[it.id].source})"))
        seen.setdefault(it.id, it)
    for it in intents:
        for b in it.buttons:
            if b not in seen:
                errors.append(ContentError(it.source.path, it.source.line,
                                           f"intent '{it.id}': button '{b}' is not an intent id"))
    if errors:
        raise ContentErrors(errors)
    return IntentSet(tuple(intents), tuple(negatives))

