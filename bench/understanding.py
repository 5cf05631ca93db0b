"""Understanding, measured on the messages the public wrote (tests/data/field.yaml), side by side.

Three systems read the same normalized text and go through the same decision (answer above a
probability, a menu of the best three otherwise, "not understood" for a likely out-of-scope
message):
- MIA: word pieces, words and the sentence vector in one logistic regression (what ships);
- MIA's lexical path: the same model without the sentence vector (MIA_SENTENCE_MODEL=none);
- the peer: Rasa's classic pipeline in scikit-learn (TF-IDF char_wb 1-4 + words, logistic
  regression) trained on the same examples.

Outcomes per message, for a citizen: right (answered with an intent that serves the message, or
an out-of-scope message not answered), offered (a menu holding a serving intent), wrong (answered
with one that does not), not served. Thresholds are chosen by 5-fold cross-validation on the field
set: on four fifths, among the settings with at most 10% wrong, the one worth most to the citizens
(a right answer 1, a menu holding it 0.5: it costs a tap, and a sure citizen wants the answer;
a wrong answer -1: it misleads), then scored on the fifth it never saw.
"""

from __future__ import annotations

import dataclasses
import random
import time
from collections import Counter
from pathlib import Path

import numpy as np
from tqdm import tqdm

from bot.core.assistant import Assistant
from bot.core.content import Content
from bot.content.evaluation import evaluate, load_cases, outcome_of
from bot.core.nlu import classifier
from bot.core.nlu.intents import Example, IntentSet, Source
from bot.core.nlu.matcher import IntentMatcher, Thresholds
from bot.store.base import ConversationState

ROOT = Path(__file__).resolve().parent.parent
LABELLED = ROOT / "tests" / "data" / "labelled.yaml"
FIELD = ROOT / "tests" / "data" / "field.yaml"
OUTCOMES = ("right", "offered", "wrong", "unserved")
MAX_WRONG = 0.10  # the bound on confidently wrong answers
classifier.FIT_IN_CHILD_PROCESS = False  # dozens of fits in one batch: scikit-learn imported once, here
WORTH = {"right": 1.0, "offered": 0.5, "unserved": 0.0, "wrong": -1.0}  # to the citizen, per message


class PeerClassifier:
    """Rasa's classic NLU pipeline with scikit-learn, behind MIA's classifier interface."""

    def __init__(self, texts: list[str], labels: list[str], max_iter: int = 3000):
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import FeatureUnion, make_pipeline

        self.pipeline = make_pipeline(
            FeatureUnion([("chars", TfidfVectorizer(analyzer="char_wb", ngram_range=(1, 4), sublinear_tf=True)),
                          ("words", TfidfVectorizer(analyzer="word", token_pattern=r"\S+"))]),
            LogisticRegression(C=20.0, max_iter=max_iter))
        self.pipeline.fit(texts, labels)
        self.classes = tuple(str(c) for c in self.pipeline.classes_)

    def probabilities(self, lexical, raw, semantic=None) -> np.ndarray:
        return self.pipeline.predict_proba(list(lexical))


class PeerMatcher(IntentMatcher):
    """MIA's reading of the text (places, slang, typos) and decision, with the peer's classifier."""

    def train(self, items, progress=None):
        return PeerClassifier([it.lexical for it in items], [it.label for it in items])


def matcher_for(content: Content, intents: IntentSet, kind: str, thresholds: Thresholds | None = None):
    """A matcher of `kind` ("mia", "lexical" or "peer") trained on `intents`."""
    m = content.matcher
    cls = PeerMatcher if kind == "peer" else IntentMatcher
    embedder = m.embedder if kind == "mia" else None
    return cls(intents, content.places, content.lexicon, thresholds or m.t, seat_names=m.seat_names,
               embedder=embedder, cache_dir=m.cache_dir)


def with_matcher(content: Content, matcher) -> Content:
    return dataclasses.replace(content, matcher=matcher)


class Memo:
    """Scores do not depend on the thresholds: each message is scored once while sweeping them."""

    def __init__(self, matcher):
        self.memo: dict[tuple, list] = {}
        original = matcher.score_many

        def score_many(preps, raws):
            key = tuple(raws)
            if key not in self.memo:
                self.memo[key] = original(preps, raws)
            return [dict(d) for d in self.memo[key]]

        matcher.score_many = score_many


def outcomes(content: Content, cases) -> list[str]:
    """What each message's writer got, as a fresh conversation."""
    assistant = Assistant(content, None)
    content.matcher.prefetch([c.text for c in cases])
    return [outcome_of(c, assistant.respond(c.text, ConversationState())) for c in cases]


def shares(outs: list[str]) -> dict[str, float]:
    n = len(outs) or 1
    counts = Counter(outs)
    return {k: counts[k] / n for k in OUTCOMES}


def grid(base: Thresholds, quick: bool) -> list[Thresholds]:
    accepts = (30, 40, 50) if quick else (20, 25, 30, 35, 40, 45, 50, 55, 60, 70)
    oos = (50,) if quick else (30, 50, 70, 101)
    return [dataclasses.replace(base, accept=a, margin=0, out_of_scope=o) for a in accepts for o in oos]


def worth(s: dict[str, float]) -> float:
    """What an outcome mix is worth to the citizens (WORTH per message)."""
    return sum(WORTH[k] * v for k, v in s.items())


def choose(by_setting: dict[Thresholds, list[str]], idx: list[int]) -> Thresholds:
    """At most 10% wrong, then the most worth to the citizens; then the most answered right."""
    def key(t):
        s = shares([by_setting[t][i] for i in idx])
        return (s["wrong"] <= MAX_WRONG, round(worth(s), 6), s["right"], -t.accept)
    return max(by_setting, key=key)


def field_protocol(content: Content, matcher, cases, quick: bool, folds: int = 5) -> dict:
    """Shipped thresholds, thresholds chosen on all of the field set, and chosen by k-fold CV."""
    Memo(matcher)
    base = matcher.t
    scored = with_matcher(content, matcher)
    shipped = shares(outcomes(scored, cases))
    by_setting = {}
    for t in grid(matcher.t, quick):
        matcher.t = t
        by_setting[t] = outcomes(scored, cases)
    idx = list(range(len(cases)))
    rnd = random.Random(5)
    rnd.shuffle(idx)
    parts = [idx[k::folds] for k in range(folds)]
    cv: list[str | None] = [None] * len(cases)
    chosen = []
    for k in range(folds):
        t = choose(by_setting, [i for j in range(folds) if j != k for i in parts[j]])
        chosen.append({"accept": t.accept, "out_of_scope": t.out_of_scope})
        for i in parts[k]:
            cv[i] = by_setting[t][i]
    best = choose(by_setting, idx)
    matcher.t = base
    return {"shipped": shipped, "cv": shares(cv), "cv_chosen": chosen,
            "best_on_all": {"accept": best.accept, "out_of_scope": best.out_of_scope, **shares(by_setting[best])}}


def with_examples(intents: IntentSet, extra: list) -> IntentSet:
    """The intents with field messages added as examples (a measurement only: never shipped)."""
    src = Source(Path("field"), None)
    added: dict[str | None, list[Example]] = {}
    for case in extra:
        added.setdefault(case.intent, []).append(Example(case.text, case.intent, src))
    return IntentSet(tuple(dataclasses.replace(it, examples=it.examples + tuple(added.get(it.id, ())))
                           for it in intents.intents), intents.negatives + tuple(added.get(None, ())))


def learning_curve(content: Content, cases, quick: bool, folds: int = 5) -> dict:
    """Examples only, then 20-80% of the other folds' messages added as reviewed traffic.

    A message is scored only by a model that never saw it; shipped thresholds throughout.
    """
    fractions = (0.0, 0.8) if quick else (0.0, 0.2, 0.4, 0.6, 0.8)
    idx = list(range(len(cases)))
    random.Random(9).shuffle(idx)
    parts = [idx[k::folds] for k in range(folds)]
    out = {}
    for frac in tqdm(fractions, desc="learning curve", leave=False):
        outs: list[str] = []
        for k in range(folds if not quick else 2):
            others = [i for j in range(folds) if j != k for i in parts[j]]
            extra = [cases[i] for i in others[:int(len(others) * frac)]]
            matcher = matcher_for(content, with_examples(content.intents, extra), "mia")
            outs += outcomes(with_matcher(content, matcher), [cases[i] for i in parts[k]])
        out[f"{int(frac * 100)}%"] = shares(outs)
    return out


def examples_cv(content: Content, kind: str, folds: int) -> float:
    """k-fold over the intents' examples: the share of held-out examples answered as their intent."""
    intents = content.intents
    items = [(e, it.id) for it in intents.intents for e in it.examples]
    random.Random(7).shuffle(items)
    right = total = 0
    for k in range(folds):
        held = {id(e) for i, (e, _) in enumerate(items) if i % folds == k}
        train = IntentSet(tuple(dataclasses.replace(it, examples=tuple(e for e in it.examples if id(e) not in held))
                                for it in intents.intents), intents.negatives)
        matcher = matcher_for(content, train, kind)
        tests = [(e.text, owner) for e, owner in items if id(e) in held]
        matcher.prefetch([t for t, _ in tests])
        right += sum(matcher.understand(t).intent == o for t, o in tests)
        total += len(tests)
    return right / total


def bench_understanding(content: Content, quick: bool) -> dict:
    field = load_cases(FIELD)
    labelled = load_cases(LABELLED)
    if quick:
        field = field[::4]
        labelled = labelled[::3]
    out: dict = {"field_messages": len(field), "labelled_messages": len(labelled)}
    for kind in tqdm(("mia", "lexical", "peer"), desc="understanding", leave=False):
        started = time.perf_counter()
        matcher = matcher_for(content, content.intents, kind)  # its own: the sweep below changes its thresholds
        train_seconds = time.perf_counter() - started
        lab = evaluate(Assistant(with_matcher(content, matcher), None), labelled)
        row = {"train_seconds": train_seconds,
               "labelled": {k: lab.share(k) for k in OUTCOMES}, "labelled_wrong_office": len(lab.wrong_office),
               "field": field_protocol(content, matcher, field, quick)}
        if not quick:
            row["examples_cv"] = examples_cv(content, kind, 5)
        out[kind] = row
    out["learning_curve"] = learning_curve(content, load_cases(FIELD), quick)
    return out


def summary(u: dict) -> str:
    """The markdown table of docs/benchmarks.md section 0."""
    lines = ["| | MIA | MIA, lexical path | peer |", "|---|---|---|---|"]

    def row(label, get):
        lines.append(f"| {label} | " + " | ".join(get(u[k]) for k in ("mia", "lexical", "peer")) + " |")

    for part, label in (("shipped", "shipped thresholds"), ("cv", "thresholds chosen by 5-fold CV")):
        for k in OUTCOMES:
            row(f"field set, {label}: {k}", lambda r, p=part, k=k: f"{r['field'][p][k]:.1%}")
        row(f"field set, {label}: worth to citizens", lambda r, p=part: f"{worth(r['field'][p]):.3f}")
    row("labelled set: right / wrong", lambda r: f"{r['labelled']['right']:.1%} / {r['labelled']['wrong']:.1%}")
    if "examples_cv" in u["mia"]:
        row("5-fold CV over the intents' examples", lambda r: f"{r['examples_cv']:.1%}")
    lines.append("")
    lines.append("| reviewed traffic added | right | offered | wrong | not served |")
    lines.append("|---|---|---|---|---|")
    for frac, s in u["learning_curve"].items():
        lines.append(f"| {frac} | " + " | ".join(f"{s[k]:.1%}" for k in OUTCOMES) + " |")
    return "\n".join(lines)
