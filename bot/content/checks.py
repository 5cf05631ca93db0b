"""`mia intents check`: everything that can be wrong in operator-edited content, with file and line."""

from __future__ import annotations

import re
import sys
import traceback
from dataclasses import dataclass
from pathlib import Path

from jinja2 import TemplateError, TemplateSyntaxError

from bot.core.content import Content
from bot.core.nlu.matcher import MARKERS, OUT_OF_SCOPE
from bot.core.nlu.normalize import clean
from bot.core.responses import LANGUAGES, SYSTEM_TEMPLATES
from bot.core.yamlfile import ContentError, ContentErrors, display_path

# Templates MIA only renders with an office, a region or a request at hand.
NEEDS_SUBJECT = frozenset({"form_done", "citizen_request_claimed", "citizen_request_done", "staff_request",
                           "staff_handoff", "staff_handoff_closed", "staff_citizen_message", "region_ambiguous",
                           "outside_region"})


@dataclass(frozen=True, slots=True)
class Problem:
    """One finding: an error blocks the content, a warning is advice."""

    severity: str  # "error" | "warning"
    path: Path
    line: int | None
    message: str

    def __str__(self) -> str:
        return f"{display_path(self.path, self.line)}: {self.severity}: {self.message}"


@dataclass
class CheckReport:
    """All findings, and the content when it could be loaded."""

    problems: list[Problem]
    content: Content | None

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "warning"]


FIELD_FILE = Path("tests/data/field.yaml")  # messages the public wrote: test data, never examples
NEAR_DUPLICATE = 90.0  # rapidfuzz ratio at which an example copies a field message


def check_content(root: Path, progress=None, cross_validate: bool = True) -> CheckReport:
    """Validate intents, templates and data under root; never raises for content problems.

    `cross_validate` also retrains the model five times to find examples that sit with another
    intent (seconds, cached): `mia intents check` does it; a live reload, which must be quick, does not.
    """
    try:
        content = Content.load(root)
    except ContentErrors as exc:
        return CheckReport([Problem("error", e.path, e.line, e.message) for e in exc.errors], None)
    problems: list[Problem] = []
    problems += _duplicates(content)
    problems += _titles(content)
    problems += _templates(content)
    problems += _field_set(content, Path(root) / FIELD_FILE)
    if cross_validate:
        problems += _conflicts(content, progress)
    return CheckReport(problems, content)


def _field_set(content: Content, field_path: Path) -> list[Problem]:
    """Field-set labels that are not intents, and examples that (nearly) copy a field message.

    A mistyped label would count every answer to its message as wrong; a copied message would
    stop the set measuring how MIA understands the public.
    """
    if not field_path.exists():
        return []
    from rapidfuzz import fuzz, process

    from bot.core.yamlfile import ContentError, load_yaml

    try:
        data, lines = load_yaml(field_path)
    except ContentError as exc:
        return [Problem("error", exc.path, exc.line, exc.message)]
    field = [(clean(str(d.get("text", ""))), lines.get((i,))) for i, d in enumerate(data or []) if isinstance(d, dict)]
    if not field:
        return []
    problems = []
    known = {it.id for it in content.intents.intents}
    for i, d in enumerate(data):
        if not isinstance(d, dict):
            continue
        labels = [d.get("intent")] + list(d.get("also") or [])
        for label in labels:
            if label is not None and label not in known:
                problems.append(Problem("error", field_path, lines.get((i,)),
                                        f"field message labelled with '{label}', which is not an intent"))
    examples = [e for it in content.intents.intents for e in it.examples] + list(content.intents.negatives)
    scores = process.cdist([clean(e.text) for e in examples], [t for t, _ in field], scorer=fuzz.ratio,
                           score_cutoff=NEAR_DUPLICATE, workers=1)
    for i, j in zip(*scores.nonzero()):
        ex = examples[i]
        problems.append(Problem("error", ex.source.path, ex.source.line,
                                f"example '{ex.text}' copies the field message at "
                                f"{display_path(field_path, field[j][1])} (similarity {scores[i, j]:.0f}): "
                                "field messages measure how MIA understands the public and never become examples"))
    return problems


def _duplicates(content: Content) -> list[Problem]:
    problems = []
    seen: dict[str, tuple[str | None, object]] = {}
    everything = [e for it in content.intents.intents for e in it.examples] + list(content.intents.negatives)
    for ex in everything:
        prepared = content.matcher.prepare(ex.text)
        key = prepared.text
        if set(key.split()) <= MARKERS:
            problems.append(Problem("warning", ex.source.path, ex.source.line,
                                    f"example '{ex.text}' is only a place name: it teaches nothing and is ignored"))
            continue
        if key in seen:
            other_intent, other_src = seen[key]
            owner = ex.intent or "out_of_scope"
            other = other_intent or "out_of_scope"
            where = f"'{owner}'" if other == owner else f"'{owner}' and in '{other}'"
            problems.append(Problem("error", ex.source.path, ex.source.line,
                                    f"example '{ex.text}' reads the same as the one at {other_src} once "
                                    f"normalized ('{key}'): twice in {where}"))
        else:
            seen[key] = (ex.intent, ex.source)
    return problems


def _titles(content: Content) -> list[Problem]:
    problems = []
    for lang in LANGUAGES:
        seen: dict[str, str] = {}
        for it in content.intents.intents:
            key = clean(it.title[lang])
            if key in seen:
                problems.append(Problem("error", it.source.path, it.source.line,
                                        f"title '{it.title[lang]}' ({lang}) is also the title of '{seen[key]}'"))
            seen.setdefault(key, it.id)
    return problems


def _sample_contexts(content: Content) -> list[dict]:
    kb = content.knowledge
    office = kb.offices[0]
    region = kb.regencies_of(office)[0]
    outside = next(iter(kb.outside.values()))
    from bot.core.flows import forms
    from bot.core.flows.lapor_rakit import LABELS
    from bot.store.base import CallbackRequest

    fields = {"applicant_name": "Siti Aminah", "relation": "anak", "phone": "+6281234567890",
              "address": "Jl. Merdeka No. 5", "place": region.short_name, "condition": "stroke",
              "preferred_day": "Senin"}
    request = CallbackRequest("RKT-2026-000001", "telegram", "1", office.id, region.code, fields, "claimed", 0.0,
                              claimed_by="Petugas A (1)", claimed_at=0.0)
    base = dict(kb=kb, user_name=None, service=None, service_offices=[], also_outside=None, abroad=None,
                outside=outside, places=[{"name": r.short_name, "office": kb.office_for(r.code)}
                                         for r in kb.regencies[:2]],
                candidates=[it.title["id"] for it in content.intents.intents[:2]],
                staff_available=True, ref="RKT-2026-000001", request=request, staff_name="Petugas A", asked=False,
                media="foto", held={"count": 2, "texts": ["halo"]},
                text="<b>teks warga</b>", channel="telegram", chat_id="1",
                history=[{"text": "halo", "reply": "Halo!"}], step=forms.CONFIRM, error=None, wrong=0,
                max_wrong=forms.MAX_WRONG, labels=LABELS["id"], shown=dict(fields, region=region.short_name),
                fields=forms.FIELDS, from_address=None)
    return [
        dict(base, office=None, region=None, place=None, request=None, staff_available=False, ref=""),
        dict(base, office=office, region=region, place=region.short_name, user_name="Budi",
             also_outside=outside, abroad=outside.name, step=forms.FIELDS[0], error="too_short", wrong=forms.MAX_WRONG,
             from_address=region.short_name),
    ]


def template_errors(content: Content) -> list[ContentError]:
    """The templates that cannot be rendered for every office and language (a mistyped variable,
    a missing template): what `mia run` refuses to start with, as a live reload refuses them."""
    found = dict.fromkeys((p.path, p.line, p.message) for p in _templates(content) if p.severity == "error")
    return [ContentError(*problem) for problem in found]  # a partial's error once, not once per template


def _templates(content: Content) -> list[Problem]:
    problems: list[Problem] = []
    responses = content.responses
    kb = content.knowledge
    wanted = {it.response: it for it in content.intents.intents}
    for lang in LANGUAGES:
        folder = responses.root / lang
        present = responses.names(lang)
        for name, it in wanted.items():
            if name not in present:
                problems.append(Problem("error", it.source.path, it.source.line,
                                        f"intent '{it.id}' has no template {folder / (name + '.j2')}"))
        for name in SYSTEM_TEMPLATES:
            if name not in present:
                problems.append(Problem("error", folder / f"{name}.j2", None,
                                        "missing: MIA needs this template"))
        for name in sorted(present - set(wanted) - set(SYSTEM_TEMPLATES)):
            if not name.startswith("_"):
                problems.append(Problem("error", folder / f"{name}.j2", None,
                                        "unused: no intent uses this template (rename it to _name.j2 if it "
                                        "is included by others, or set `response:` in an intent)"))
        for name in sorted(present & (set(wanted) | set(SYSTEM_TEMPLATES))):
            service = kb.services.get(name)
            contexts = _sample_contexts(content)
            if name in NEEDS_SUBJECT:
                contexts = contexts[1:]
            for ctx in contexts:
                ctx = dict(ctx, service=service,
                           service_offices=[kb.office(o) for o in (service.offices if service else ())])
                try:
                    text = responses.render(lang, name, **ctx)
                except TemplateSyntaxError as exc:
                    problems.append(Problem("error", folder / (exc.name or f"{name}.j2"), exc.lineno,
                                            f"template syntax: {exc.message}"))
                    break
                except (TemplateError, Exception) as exc:  # noqa: BLE001 - report any render failure
                    path, line = _template_frame(exc, folder, name)
                    problems.append(Problem("error", path, line, f"cannot render: {exc}"))
                    break
                if not text.strip() and name not in ("office_for_region",):
                    problems.append(Problem("error", folder / f"{name}.j2", None, "renders to an empty answer"))
                    break
                if "None" in re.findall(r"\bNone\b", text):
                    problems.append(Problem("error", folder / f"{name}.j2", None,
                                            "renders the word 'None': an unknown fact printed as is"))
                    break
    return problems


def _template_frame(exc: BaseException, folder: Path, name: str) -> tuple[Path, int | None]:
    """The template file and line where rendering failed (from Jinja's rewritten traceback)."""
    for frame in reversed(traceback.extract_tb(exc.__traceback__)):
        if frame.filename.endswith(".j2"):
            return folder / Path(frame.filename).name, frame.lineno
    return folder / f"{name}.j2", None


# A model that never saw an example and is this sure it belongs elsewhere, while giving its own
# intent this little, points at an example filed under the wrong intent: an error. Anything
# milder is a warning: such examples sit between two intents, and the menu covers them.
SURE_ELSEWHERE = 80.0
OWN_AT_MOST = 5.0


def _conflicts(content: Content, progress=None) -> list[Problem]:
    """Examples that a model trained without them (5-fold cross-validation) answers as another
    intent (error) or leans to another (warning)."""
    problems = []
    matcher = content.matcher
    held_out = matcher.cross_validated(progress=progress)
    for item, ex, scores in zip(matcher.items, matcher.item_examples, held_out):
        owner = item.label
        if ex is None or scores is None or owner == OUT_OF_SCOPE:
            continue
        scores = {k: v for k, v in scores.items() if k != OUT_OF_SCOPE}
        ranked = sorted(scores.items(), key=lambda kv: -kv[1])
        if not ranked or ranked[0][0] == owner:
            continue
        best, best_score = ranked[0]
        own = scores.get(owner, 0.0)
        severity = "error" if best_score >= SURE_ELSEWHERE and own <= OWN_AT_MOST else "warning"
        problems.append(Problem(
            severity, ex.source.path, ex.source.line,
            f"example '{ex.text}' of '{owner}' scores closer to '{best}' ({best_score:.0f} vs {own:.0f})"))
    return problems


def print_report(report: CheckReport, out=sys.stdout, show_warnings: bool = True) -> None:
    """Human-readable summary, errors first."""
    for p in report.errors + (report.warnings if show_warnings else []):
        print(p, file=out)
    c = report.content
    if c is not None:
        n_ex = sum(len(i.examples) for i in c.intents.intents)
        print(f"{len(c.intents.intents)} intents, {n_ex} examples, {len(c.intents.negatives)} out-of-scope "
              f"examples, {len(c.knowledge.offices)} offices, {len(c.knowledge.regencies)} regencies "
              f"(loaded in {c.load_seconds * 1000:.0f} ms)", file=out)
    status = "OK" if not report.errors else "FAILED"
    print(f"{status}: {len(report.errors)} error(s), {len(report.warnings)} warning(s)", file=out)
