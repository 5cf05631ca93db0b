"""`mia intents test`: accuracy of MIA on a labelled file, like `rasa test nlu`."""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from bot.core.assistant import Assistant
from bot.core.turn import Outcome
from bot.store.base import ConversationState

NULL = "(none)"
OUTCOMES = ("right", "offered", "wrong", "unserved")


class LabelledFileError(ValueError):
    """The labelled file cannot be read; the message says where."""


@dataclass(frozen=True, slots=True)
class Case:
    """One labelled message."""

    text: str
    intent: str | None
    has_office: bool = False
    office: str | None = None
    region: str | None = None
    line: int | None = None
    also: tuple[str, ...] = ()  # other intents whose answer also serves the message (field set)
    kind: str | None = None  # where the message was written (field set: news, faq, complaint, forum, social)


@dataclass
class Result:
    """Figures of one evaluation run."""

    total: int = 0
    correct: int = 0
    served: int = 0  # the label or one of the accepted alternatives (`also`)
    # What the citizen got: an answer that serves the message (or, out of scope, no answer), a
    # menu holding a serving answer, an answer that does not serve it (the worst), or neither.
    outcomes: dict[str, int] = field(default_factory=lambda: dict.fromkeys(OUTCOMES, 0))
    by_kind: dict[str, list[int]] = field(default_factory=dict)  # kind -> [correct, total]
    per_intent: dict[str, dict[str, float]] = field(default_factory=dict)
    out_of_scope_total: int = 0
    out_of_scope_fallback: int = 0
    confusions: list[dict] = field(default_factory=list)
    office_total: int = 0
    office_correct: int = 0
    wrong_office: list[dict] = field(default_factory=list)
    missing_office: list[dict] = field(default_factory=list)

    @property
    def accuracy(self) -> float:
        return self.correct / self.total if self.total else 0.0

    @property
    def served_rate(self) -> float:
        return self.served / self.total if self.total else 0.0

    def share(self, outcome: str) -> float:
        """Share of the messages with this outcome (right, offered, wrong, unserved)."""
        return self.outcomes[outcome] / self.total if self.total else 0.0

    @property
    def out_of_scope_rate(self) -> float:
        """Share of out-of-scope messages that fell back (higher is better)."""
        return self.out_of_scope_fallback / self.out_of_scope_total if self.out_of_scope_total else 1.0

    @property
    def office_accuracy(self) -> float:
        return self.office_correct / self.office_total if self.office_total else 1.0

    def as_dict(self) -> dict:
        return {
            "total": self.total,
            "accuracy": round(self.accuracy, 4),
            "served": round(self.served_rate, 4),
            "outcomes": {k: round(self.share(k), 4) for k in OUTCOMES},
            "by_kind": {k: {"correct": c, "total": n} for k, (c, n) in sorted(self.by_kind.items())},
            "out_of_scope": {"total": self.out_of_scope_total, "fallback": self.out_of_scope_fallback,
                             "rate": round(self.out_of_scope_rate, 4)},
            "office": {"total": self.office_total, "correct": self.office_correct,
                       "accuracy": round(self.office_accuracy, 4), "wrong": self.wrong_office,
                       "missing": self.missing_office},
            "per_intent": self.per_intent,
            "confusions": self.confusions,
        }


def load_cases(path: Path) -> list[Case]:
    """Read a labelled YAML file: a list of {text, intent (id or null), region?, office?, also?, kind?}."""
    from bot.core.yamlfile import ContentError, load_yaml

    try:
        data, lines = load_yaml(Path(path))
    except ContentError as exc:
        raise LabelledFileError(str(exc)) from None
    if not isinstance(data, list):
        raise LabelledFileError(f"{path}: expected a list of cases, each with 'text' and 'intent'")
    cases = []
    for i, item in enumerate(data):
        line = lines.get((i,))
        if not isinstance(item, dict) or not isinstance(item.get("text"), str) or "intent" not in item:
            raise LabelledFileError(f"{path}:{line}: each case needs 'text' (a string) and 'intent' (an id or null)")
        also = item.get("also") or []
        if not isinstance(also, list) or not all(isinstance(a, str) for a in also):
            raise LabelledFileError(f"{path}:{line}: 'also' is a list of intent ids whose answer also serves the message")
        cases.append(Case(item["text"], item["intent"], "office" in item, item.get("office"),
                          item.get("region"), line, tuple(also), item.get("kind")))
    return cases


def outcome_of(case: Case, outcome: Outcome) -> str:
    """right, offered, wrong or unserved: what this answer means for the citizen who wrote `case`."""
    got = outcome.intent
    if case.intent is None:  # out of scope: anything but an answer is right
        return "right" if got is None else "wrong"
    serving = {case.intent, *case.also}
    if got is not None:
        return "right" if got in serving else "wrong"
    return "offered" if serving & set(outcome.offered) else "unserved"


def evaluate(assistant: Assistant, cases: list[Case], progress=None) -> Result:
    """Run every case as a fresh conversation through the assistant's decision and tally."""
    result = Result()
    tp: Counter = Counter()
    fp: Counter = Counter()
    fn: Counter = Counter()
    support: Counter = Counter()
    confusions: dict[tuple[str, str], list[str]] = defaultdict(list)
    assistant.content.matcher.prefetch([case.text for case in cases])
    for n, case in enumerate(cases, 1):
        if progress:
            progress(n, len(cases))
        outcome: Outcome = assistant.respond(case.text, ConversationState())
        got, want = outcome.intent, case.intent
        result.total += 1
        support[want or NULL] += 1
        result.served += got == want or (got is not None and got in case.also)
        result.outcomes[outcome_of(case, outcome)] += 1
        if case.kind:
            tally = result.by_kind.setdefault(case.kind, [0, 0])
            tally[0] += got == want
            tally[1] += 1
        if got == want:
            result.correct += 1
            tp[want or NULL] += 1
        else:
            fp[got or NULL] += 1
            fn[want or NULL] += 1
            confusions[(want or NULL, got or NULL)].append(case.text)
        if want is None:
            result.out_of_scope_total += 1
            result.out_of_scope_fallback += got is None
        if case.has_office:  # only cases labelled with an office (null included) are judged
            expected = case.office
            result.office_total += 1
            row = {"text": case.text, "line": case.line, "expected": expected, "got": outcome.office}
            if outcome.office == expected:
                result.office_correct += 1
            elif outcome.office is None:
                result.missing_office.append(row)
            else:
                result.wrong_office.append(row)
    for label in sorted(set(support) | set(fp)):
        p_den = tp[label] + fp[label]
        r_den = tp[label] + fn[label]
        precision = tp[label] / p_den if p_den else 0.0
        recall = tp[label] / r_den if r_den else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        result.per_intent[label] = {"precision": round(precision, 3), "recall": round(recall, 3),
                                    "f1": round(f1, 3), "support": support[label]}
    result.confusions = sorted(
        ({"expected": w, "got": g, "count": len(texts), "examples": texts[:3]} for (w, g), texts in confusions.items()),
        key=lambda c: -c["count"],
    )
    return result


def format_result(result: Result) -> str:
    """A readable report: summary, per-intent table, confusions, office mistakes."""
    lines = [f"Right {result.share('right'):.1%}, offered in a menu {result.share('offered'):.1%}, "
             f"wrong {result.share('wrong'):.1%}, not served {result.share('unserved'):.1%} "
             f"({result.total} messages)",
             f"Intent accuracy: {result.accuracy:.1%} ({result.correct}/{result.total})"]
    if result.served != result.correct:
        lines.append(f"Answer serves the message (its label or an accepted 'also'): {result.served_rate:.1%} "
                     f"({result.served}/{result.total})")
    if result.by_kind:
        lines.append("By kind: " + ", ".join(f"{k} {c / n:.1%} ({c}/{n})" for k, (c, n) in sorted(result.by_kind.items())))
    lines += [
        f"Out of scope that fell back: {result.out_of_scope_rate:.1%} "
        f"({result.out_of_scope_fallback}/{result.out_of_scope_total})",
        f"Correct office: {result.office_accuracy:.1%} ({result.office_correct}/{result.office_total}); "
        f"wrong office: {len(result.wrong_office)}; office not given: {len(result.missing_office)}",
        "",
        f"{'intent':<28} {'precision':>9} {'recall':>7} {'f1':>6} {'support':>8}",
    ]
    for label, m in result.per_intent.items():
        lines.append(f"{label:<28} {m['precision']:>9.2f} {m['recall']:>7.2f} {m['f1']:>6.2f} {m['support']:>8}")
    if result.confusions:
        lines += ["", "Confusions (expected -> got):"]
        for c in result.confusions:
            lines.append(f"  {c['expected']} -> {c['got']}: {c['count']}  e.g. \"{c['examples'][0]}\"")
    for title, rows in (("Wrong office", result.wrong_office), ("Office not given", result.missing_office)):
        if rows:
            lines += ["", f"{title}:"]
            lines += [f"  line {r['line']}: \"{r['text']}\" expected {r['expected']}, got {r['got']}" for r in rows]
    return "\n".join(lines)


__all__ = ["Case", "Result", "load_cases", "evaluate", "format_result", "LabelledFileError", "yaml"]
