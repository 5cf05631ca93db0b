"""Answer templates: Jinja2 over responses/<lang>/*.j2, sandboxed, with StrictUndefined."""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path
from typing import Any

from jinja2 import BaseLoader, StrictUndefined, TemplateError, TemplateNotFound
from jinja2.sandbox import ImmutableSandboxedEnvironment

LANGUAGES = ("id", "en")
# Templates the assistant itself uses besides one per intent.
SYSTEM_TEMPLATES = (
    "fallback",
    "clarify",
    "ask_region",
    "region_ambiguous",
    "outside_region",
    "place_only",
    "bad_input",
    "nothing_to_cancel",
    "location_unsupported",
    "request_status",
    "slow_down",
    "feedback_thanks",
    "not_helpful",
    "media_in_handoff",
    "relay_held",
    # the Lapor Rakit form
    "form_question",
    "form_done",
    "form_cancelled",
    "form_expired",
    # staff and handoff (staff_* are HTML: every value is escaped)
    "handoff_ended",
    "citizen_request_claimed",
    "citizen_request_done",
    "staff_reply_to_citizen",
    "staff_request",
    "staff_handoff",
    "staff_handoff_closed",
    "staff_citizen_message",
)


def rupiah(value: int | float) -> str:
    """350000 -> "Rp350.000" (Indonesian thousands separator)."""
    return "Rp" + f"{int(value):,}".replace(",", ".")


def join_names(items: list[str], lang: str = "id") -> str:
    """["a", "b", "c"] -> "a, b dan c" (or "a, b and c")."""
    items = [str(i) for i in items]
    if len(items) <= 1:
        return "".join(items)
    word = " dan " if lang == "id" else " and "
    return ", ".join(items[:-1]) + word + items[-1]


MONTHS = {
    "id": "Januari Februari Maret April Mei Juni Juli Agustus September Oktober November Desember".split(),
    "en": "January February March April May June July August September October November December".split(),
}
STALE_DAYS = 183  # a changeable fact older than this is stated with its date ("per Desember 2024")


def dated(fact: Any, lang: str = "id", today: date | None = None) -> str:
    """"per Desember 2024" for a changeable fact older than six months, else ""."""
    as_of = getattr(fact, "as_of", None)
    if as_of is None or not getattr(fact, "changes", True):
        return ""
    if ((today or date.today()) - as_of).days <= STALE_DAYS:
        return ""
    month = f"{MONTHS[lang][as_of.month - 1]} {as_of.year}"
    return f"per {month}" if lang == "id" else f"as of {month}"


def cite(facts: Any, lang: str = "id", today: date | None = None) -> str:
    """The short sources of one or more facts, each dated when old: "PP 45/2024 (per Desember 2024)"."""
    items = facts if isinstance(facts, (list, tuple)) else [facts]
    newest: dict[str, Any] = {}  # one source named once, with its newest date
    for fact in items:
        if fact is not None and (fact.cite not in newest or fact.as_of > newest[fact.cite].as_of):
            newest[fact.cite] = fact
    out: list[str] = []
    for fact in newest.values():
        when = dated(fact, lang, today)
        # A cite that already names the month ("Republika, Agustus 2022") needs no date after it.
        said = when and any(f"{MONTHS[m][fact.as_of.month - 1]} {fact.as_of.year}" in fact.cite for m in MONTHS)
        out.append(_months_in(fact.cite if not when or said else f"{fact.cite} ({when})", lang))
    return "; ".join(out)


_MONTH_WORD = re.compile(r"\b(" + "|".join(MONTHS["id"]) + r")\b")
# The common words of the data's cites, for readers of English (a newspaper's name stays as it is).
CITE_WORDS = {"en": {"laporan media": "media reports", "situs kantor imigrasi": "immigration office website",
                     "berita": "news reports"}}
_CITE_WORD = re.compile(r"\b(" + "|".join(sorted(CITE_WORDS["en"], key=len, reverse=True)) + r")\b")


def _months_in(text: str, lang: str) -> str:
    """A cite in the reader's language: month names ("Agustus 2022" -> "August 2022") and the
    common words ("berita 2023-2024" -> "news reports 2023-2024")."""
    if lang == "id":
        return text
    text = _CITE_WORD.sub(lambda m: CITE_WORDS[lang][m.group(1)], text) if lang in CITE_WORDS else text
    return _MONTH_WORD.sub(lambda m: MONTHS[lang][MONTHS["id"].index(m.group(1))], text)


class SnapshotLoader(BaseLoader):
    """Templates read once into memory, still named by their files (errors show file and line)."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.sources = {p.name: p.read_text(encoding="utf-8") for p in sorted(folder.glob("*.j2"))}

    def get_source(self, environment, template):
        if template not in self.sources:
            raise TemplateNotFound(template)
        return self.sources[template], str(self.folder / template), lambda: True

    def list_templates(self):
        return sorted(self.sources)


class Responses:
    """Renders templates per language; operators' templates cannot reach Python internals."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.envs = {}
        self.sources: dict[str, dict[str, str]] = {}
        for lang in LANGUAGES:
            # Read every template now: a snapshot never depends on files that may change later.
            loader = SnapshotLoader(self.root / lang)
            self.sources[lang] = loader.sources
            env = ImmutableSandboxedEnvironment(
                loader=loader,
                undefined=StrictUndefined,
                # Staff notifications are Telegram HTML: whatever a citizen typed is escaped.
                autoescape=lambda name: bool(name) and name.startswith("staff_") and name != "staff_reply_to_citizen.j2",
                trim_blocks=True,
                lstrip_blocks=True,
                keep_trailing_newline=False,
            )
            env.filters["rupiah"] = rupiah
            env.filters["join_names"] = lambda items, _lang=lang: join_names(items, _lang)
            env.filters["cite"] = lambda facts, _lang=lang: cite(facts, _lang)
            env.filters["dated"] = lambda fact, _lang=lang: dated(fact, _lang)
            self.envs[lang] = env
        self._cache: dict[tuple[str, str], Any] = {}

    def names(self, lang: str) -> set[str]:
        """Template names present for a language (file stem)."""
        return {name[: -len(".j2")] for name in self.sources.get(lang, {})}

    def preload(self, names: list[str]) -> None:
        """Compile the given templates in every language now, so errors show at load time."""
        for lang in LANGUAGES:
            for name in names:
                self._template(lang, name)

    def _template(self, lang: str, name: str):
        key = (lang, name)
        tpl = self._cache.get(key)
        if tpl is None:
            tpl = self.envs[lang].get_template(f"{name}.j2")
            self._cache[key] = tpl
        return tpl

    def render(self, lang: str, name: str, **context: Any) -> str:
        """Render template `name` in `lang` (falling back to Indonesian), trimmed."""
        if lang not in self.envs:
            lang = "id"
        text = self._template(lang, name).render(lang=lang, **context)
        lines = [line.rstrip() for line in text.strip().splitlines()]
        out: list[str] = []
        for line in lines:  # at most one blank line in a row
            if line or (out and out[-1]):
                out.append(line)
        return "\n".join(out)


__all__ = ["Responses", "TemplateError", "TemplateNotFound", "SYSTEM_TEMPLATES", "LANGUAGES", "rupiah"]
