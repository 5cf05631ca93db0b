"""MIA's benchmarks, measured side by side in one run: `make bench` (full) or `make bench-quick`.

1. accuracy against a classic Rasa-style NLU pipeline (TF-IDF char_wb 1-4 + words, logistic
   regression) on the labelled set, and 5-fold cross-validation over the intent examples;
2. understanding latency at the shipped content and at synthetic sizes, next to the floor
   (one rapidfuzz cdist against every example) and the peer's predict;
3. throughput of the whole pipeline (Assistant.handle with SQLite) at 1/10/100 conversations;
4. end to end: concurrent chats through the web API and the Telegram channel (local Bot API);
5. start-up time to the first answer and peak memory.

Results: bench/results/results.json, plots in bench/results/*.png, and docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from rapidfuzz import fuzz, process
from tqdm import tqdm

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bot.assistant import Assistant  # noqa: E402
from bot.content import Content  # noqa: E402
from bot.evaluation import evaluate, load_cases  # noqa: E402
from bot.messages import Incoming  # noqa: E402
from bot.nlu.intents import Example, Intent, IntentSet, Source  # noqa: E402
from bot.nlu.matcher import IntentMatcher, Thresholds  # noqa: E402
from bot.store.sqlite import SQLiteStore  # noqa: E402

RESULTS = ROOT / "bench" / "results"
LABELLED = ROOT / "tests" / "data" / "labelled.yaml"
FIELD = ROOT / "tests" / "data" / "field.yaml"  # messages the public wrote: the measure of generalisation


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]


# -- the peer --------------------------------------------------------------------------------


class PeerMatcher(IntentMatcher):
    """The classic pipeline behind MIA's own decision rule: TF-IDF features, a linear model.

    It reads the same normalized text as MIA (places masked, slang expanded) and is trained on
    the same examples, out-of-scope negatives included as a class; its confidence (probability
    x 100) goes through the same threshold-and-margin decision, tuned the same way.
    """

    def __init__(self, base: IntentMatcher, thresholds: Thresholds, max_iter: int | None = None):
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import FeatureUnion, make_pipeline

        self.__dict__.update(base.__dict__)
        self.t = thresholds
        self.pipeline = make_pipeline(
            FeatureUnion([("chars", TfidfVectorizer(analyzer="char_wb", ngram_range=(1, 4), sublinear_tf=True)),
                          ("words", TfidfVectorizer(analyzer="word", token_pattern=r"\S+"))]),
            # Prediction cost does not depend on how long it trained: synthetic sizes train briefly.
            LogisticRegression(C=20.0, max_iter=max_iter or 3000),
        )
        self.pipeline.fit(self._choices, self._owner)
        self.classes = list(self.pipeline.classes_)

    def score(self, prep, exclude=None) -> dict[str, float]:
        probs = self.pipeline.predict_proba([prep.text])[0]
        return {c: float(p) * 100.0 for c, p in zip(self.classes, probs)}


def with_matcher(content: Content, matcher) -> Content:
    return dataclasses.replace(content, matcher=matcher)


def tune(content: Content, make, cases, grid) -> tuple[Thresholds, object]:
    """Best (accept, margin) on the labelled set, as MIA's were chosen; accuracy first, then OOS."""
    best = None
    for accept, margin in grid:
        t = Thresholds(accept=accept, margin=margin, clarify=accept)
        matcher = make(t)
        r = evaluate(Assistant(with_matcher(content, matcher), None), cases)
        key = (r.accuracy, r.out_of_scope_rate)
        if best is None or key > best[0]:
            best = (key, t, r)
    return best[1], best[2]


def field_figures(result) -> dict:
    p, r = oos_precision_recall(result)
    return {"accuracy": result.accuracy, "served": result.served_rate, "oos_precision": p, "oos_recall": r,
            "wrong_office": len(result.wrong_office), "office_accuracy": result.office_accuracy}


def oos_precision_recall(result) -> tuple[float, float]:
    """Out-of-scope as a class: precision of falling back, recall of out-of-scope messages."""
    m = result.per_intent.get("(none)", {"precision": 0.0, "recall": 0.0})
    return m["precision"], m["recall"]


def bench_accuracy(content: Content, quick: bool) -> dict:
    cases = load_cases(LABELLED)
    mia = evaluate(Assistant(content, None), cases)
    grid = [(a, m) for a in (20, 30, 40, 50, 60) for m in (0, 5, 10)]
    if quick:
        grid = [(30, 5), (40, 5)]
    peer_t, peer = tune(content, lambda t: PeerMatcher(content.matcher, t), cases, grid)
    mia_p, mia_r = oos_precision_recall(mia)
    peer_p, peer_r = oos_precision_recall(peer)
    field = load_cases(FIELD)
    mia_field = evaluate(Assistant(content, None), field)
    peer_field = evaluate(Assistant(with_matcher(content, PeerMatcher(content.matcher, peer_t)), None), field)
    out = {
        "labelled_messages": len(cases),
        "mia": {"accuracy": mia.accuracy, "oos_precision": mia_p, "oos_recall": mia_r,
                "wrong_office": len(mia.wrong_office), "office_accuracy": mia.office_accuracy},
        "peer": {"accuracy": peer.accuracy, "oos_precision": peer_p, "oos_recall": peer_r,
                 "wrong_office": len(peer.wrong_office), "office_accuracy": peer.office_accuracy,
                 "accept": peer_t.accept, "margin": peer_t.margin},
        "field": {"messages": len(field), "mia": field_figures(mia_field), "peer": field_figures(peer_field)},
    }
    out["cv"] = cross_validate(content, folds=5 if not quick else 2, peer_t=peer_t)
    out["cv_tuned"] = tuned_by_cv(content, folds=5 if not quick else 2, quick=quick)
    return out


def cross_validate(content: Content, folds: int, peer_t: Thresholds) -> dict:
    """k-fold over the intent examples: train on k-1 folds, ask the held-out examples.

    `mean` uses each system's thresholds from the labelled set; `top1` is the best-ranked
    intent alone (no threshold), which shows ranking apart from calibration.
    """
    intents = content.intents
    rnd = random.Random(7)
    labelled = [(e, it.id) for it in intents.intents for e in it.examples]
    rnd.shuffle(labelled)
    scores = {"mia": [], "peer": []}
    top1 = {"mia": [], "peer": []}
    for k in tqdm(range(folds), desc="cross-validation", leave=False):
        held = {id(e) for i, (e, _) in enumerate(labelled) if i % folds == k}
        train = IntentSet(tuple(dataclasses.replace(it, examples=tuple(e for e in it.examples if id(e) not in held))
                                for it in intents.intents), intents.negatives)
        mia = IntentMatcher(train, content.places, content.lexicon, content.matcher.t,
                            seat_names=content.matcher.seat_names)
        peer = PeerMatcher(mia, peer_t)
        tests = [(e.text, owner) for e, owner in labelled if id(e) in held]
        for name, matcher in (("mia", mia), ("peer", peer)):
            got = [matcher.understand(t) for t, _ in tests]
            scores[name].append(sum(u.intent == o for u, (_, o) in zip(got, tests)) / len(tests))
            top1[name].append(sum(bool(u.candidates) and u.candidates[0].intent == o
                                  for u, (_, o) in zip(got, tests)) / len(tests))
    return {name: {"mean": statistics.mean(v), "folds": v, "top1": statistics.mean(top1[name])}
            for name, v in scores.items()}


class Cached:
    """Scores are independent of accept/margin: compute each text's once while sweeping thresholds."""

    def __init__(self, matcher):
        self.matcher = matcher
        self.memo: dict[str, dict[str, float]] = {}
        original = matcher.score

        def score(prep, exclude=None):
            if prep.text not in self.memo:
                self.memo[prep.text] = original(prep)
            return dict(self.memo[prep.text])

        matcher.score = score


def tuned_by_cv(content: Content, folds: int, quick: bool) -> dict:
    """Second protocol: thresholds tuned by k-fold CV over the intent files, negatives included
    (a held-out out-of-scope example must fall back); the labelled set is then a pure test set
    that neither system's thresholds saw."""
    intents = content.intents
    rnd = random.Random(11)
    items = [(e, it.id) for it in intents.intents for e in it.examples] + [(e, None) for e in intents.negatives]
    rnd.shuffle(items)
    grids = {"mia": [(a, m) for a in range(20, 50, 2) for m in (0, 1, 2, 3)],
             "peer": [(a, m) for a in (10, 15, 20, 25, 30, 40, 50, 60) for m in (0, 2, 5, 10)]}
    if quick:
        grids = {"mia": [(30, 1), (32, 0)], "peer": [(20, 0), (30, 5)]}
    fold_matchers: dict[str, list] = {"mia": [], "peer": []}
    for k in tqdm(range(folds), desc="CV-tuned thresholds", leave=False):
        held = {id(e) for i, (e, _) in enumerate(items) if i % folds == k}
        train = IntentSet(tuple(dataclasses.replace(it, examples=tuple(e for e in it.examples if id(e) not in held))
                                for it in intents.intents), tuple(e for e in intents.negatives if id(e) not in held))
        mia = IntentMatcher(train, content.places, content.lexicon, content.matcher.t,
                            seat_names=content.matcher.seat_names)
        tests = [(e.text, owner) for e, owner in items if id(e) in held]
        peer = PeerMatcher(mia, content.matcher.t)
        Cached(mia), Cached(peer)
        fold_matchers["mia"].append((mia, tests))
        fold_matchers["peer"].append((peer, tests))
    cases = load_cases(LABELLED)
    out = {}
    for name, grid in grids.items():
        best = None
        for accept, margin in grid:
            t = dataclasses.replace(content.matcher.t, accept=accept, margin=margin, clarify=min(accept, 58.0))
            right = total = oos_right = oos_total = 0
            for matcher, tests in fold_matchers[name]:
                matcher.t = t
                for text, owner in tests:
                    got = matcher.understand(text).intent
                    right += got == owner
                    total += 1
                    if owner is None:
                        oos_right += got is None
                        oos_total += 1
            key = (right / total, -accept)
            if best is None or key > best[0]:
                best = (key, t, oos_right / oos_total)
        (cv_acc, _), t, cv_oos = best
        if name == "mia":
            full = IntentMatcher(intents, content.places, content.lexicon, t, seat_names=content.matcher.seat_names)
        else:
            full = PeerMatcher(content.matcher, t)
        r = evaluate(Assistant(with_matcher(content, full), None), cases)
        p, rec = oos_precision_recall(r)
        f = field_figures(evaluate(Assistant(with_matcher(content, full), None), load_cases(FIELD)))
        out[name] = {"accept": t.accept, "margin": t.margin, "cv_accuracy": cv_acc, "cv_oos_fallback": cv_oos,
                     "labelled_accuracy": r.accuracy, "labelled_oos_precision": p, "labelled_oos_recall": rec,
                     "labelled_wrong_office": len(r.wrong_office),
                     **{f"field_{k}": v for k, v in f.items()}}
    return out


# -- latency ---------------------------------------------------------------------------------


def synthetic_intents(content: Content, n_intents: int, per_intent: int = 20, seed: int = 1) -> IntentSet:
    """Intents built from the content's vocabulary: realistic word statistics, many classes."""
    words = sorted(w for w in content.matcher.vocab if w.isalpha() and len(w) > 2)
    rnd = random.Random(seed)
    src = Source(Path("synthetic"), None)
    intents = []
    for i in range(n_intents):
        core = rnd.sample(words, 3)
        examples = tuple(Example(" ".join(rnd.sample(core, rnd.randint(1, 3)) + rnd.sample(words, rnd.randint(2, 5))),
                                 f"s{i}", src) for _ in range(per_intent))
        intents.append(Intent(f"s{i}", {"id": f"t{i}", "en": f"t{i}"}, examples, (core[0],), (), f"s{i}", src))
    return IntentSet(tuple(intents), ())


def time_calls(fn, inputs, repeat: int) -> list[float]:
    for x in inputs[:20]:
        fn(x)  # warm caches
    times = []
    for _ in range(repeat):
        for x in inputs:
            start = time.perf_counter()
            fn(x)
            times.append((time.perf_counter() - start) * 1000)
    return times


def bench_latency(content: Content, quick: bool) -> dict:
    messages = [c.text for c in load_cases(LABELLED)]
    sizes = [("shipped", None), ("100x20", 100), ("1000x20", 1000)] + ([] if quick else [("5000x20", 5000)])
    if quick:
        sizes = sizes[:2]
        messages = messages[:120]
    rows = {}
    for label, n in tqdm(sizes, desc="latency", leave=False):
        started = time.perf_counter()
        matcher = content.matcher if n is None else IntentMatcher(
            synthetic_intents(content, n), content.places, content.lexicon, content.matcher.t,
            seat_names=content.matcher.seat_names)
        build = time.perf_counter() - started
        batch = messages if (n or 0) <= 1000 else messages[:120]
        prepared = [matcher.prepare(m).text for m in batch]
        choices = matcher._choices
        repeat = 3 if (n or 0) <= 1000 else 1
        mia = time_calls(matcher.understand, batch, repeat)
        floor = time_calls(lambda q: process.cdist([q], choices, scorer=fuzz.token_set_ratio, dtype=np.float32),
                           prepared, repeat)
        row = {"examples": len(choices), "index_seconds": build,
               "mia_p50": pct(mia, .5), "mia_p99": pct(mia, .99), "floor_p50": pct(floor, .5),
               "floor_p99": pct(floor, .99)}
        if (n or 0) <= 1000:
            peer = PeerMatcher(matcher, Thresholds(accept=40, margin=5), max_iter=None if n is None else 20)
            times = time_calls(lambda q: peer.pipeline.predict_proba([q]), prepared, repeat)
            row.update(peer_p50=pct(times, .5), peer_p99=pct(times, .99))
        row["ratio_p99"] = row["mia_p99"] / row["floor_p99"]
        if n is None:  # the public's messages are longer (stories, several sentences): timed apart
            field = [c.text for c in load_cases(FIELD)][: 120 if quick else None]
            times = time_calls(matcher.understand, field, repeat)
            row.update(field_p50=pct(times, .5), field_p99=pct(times, .99))
        rows[label] = row
    return rows


# -- throughput and end to end ---------------------------------------------------------------


async def _throughput(content: Content, path: Path, conversations: int, messages: int) -> float:
    store = SQLiteStore(path)
    await store.open()
    assistant = Assistant(content, store)
    texts = [c.text for c in load_cases(LABELLED)]
    per = max(1, messages // conversations)

    async def chat(i: int) -> None:
        for j in range(per):
            await assistant.handle(Incoming("bench", f"c{i}", texts[(i * per + j) % len(texts)], f"{i}-{j}"))

    started = time.perf_counter()
    await asyncio.gather(*(chat(i) for i in range(conversations)))
    elapsed = time.perf_counter() - started
    await store.close()
    return per * conversations / elapsed


def bench_throughput(content: Content, quick: bool, tmp: Path) -> dict:
    total = 600 if quick else 3000
    out = {}
    for n in tqdm((1, 10, 100), desc="throughput", leave=False):
        out[str(n)] = asyncio.run(_throughput(content, tmp / f"tp{n}.db", n, total))
    return out


async def _e2e_web(settings_kw: dict, chats: int, per_chat: int) -> dict:
    import httpx

    from bot.app import MiaApp
    from bot.config import Settings

    # Every chat comes from 127.0.0.1: the per-address abuse limits would refuse the load measured here.
    app = MiaApp(Settings(_env_file=None, mia_web_port=0, mia_reload_enabled=False, mia_web_new_sessions_per_minute=0,
                          mia_web_messages_per_minute=0, **settings_kw))
    await app.start()
    texts = [c.text for c in load_cases(LABELLED)]
    latencies, answered, duplicates = [], 0, 0
    limits = httpx.Limits(max_connections=4 * chats + 20, max_keepalive_connections=4 * chats + 20)

    async def chat(i: int, http: httpx.AsyncClient) -> None:
        nonlocal answered, duplicates
        cookies = httpx.Cookies()
        for j in range(per_chat):
            start = time.perf_counter()
            r = await http.post("/api/messages", json={"text": texts[(i * 7 + j) % len(texts)], "message_id": f"{j}"},
                                cookies=cookies)
            latencies.append((time.perf_counter() - start) * 1000)
            cookies.update(r.cookies)
            body = r.json()
            answered += any(m["role"] == "bot" for m in body["messages"])
            duplicates += body.get("duplicate", False)

    try:
        async with httpx.AsyncClient(base_url=app.web_url, limits=limits, timeout=60) as http:
            await asyncio.gather(*(chat(i, http) for i in range(chats)))
    finally:
        await app.stop()
    sent = chats * per_chat
    return {"messages": sent, "answered": answered, "lost": sent - answered, "duplicated": duplicates,
            "p50_ms": pct(latencies, .5), "p99_ms": pct(latencies, .99)}


async def _e2e_telegram(settings_kw: dict, chats: int, per_chat: int) -> dict:
    import httpx

    from bot.app import MiaApp
    from bot.config import Settings
    from tests.fakes.botapi import BotApiServer

    server = BotApiServer().start()
    app = MiaApp(Settings(_env_file=None, telegram_bot_token="1:BENCH", telegram_api_base_url=f"{server.url}/bot",
                          mia_web_enabled=False, telegram_poll_timeout_seconds=1, mia_reload_enabled=False,
                          **settings_kw))
    await app.start()
    texts = [c.text for c in load_cases(LABELLED)]
    latencies = []
    try:
        # Every chat holds a long-poll while waiting for its answer: the pool must not run dry.
        limits = httpx.Limits(max_connections=4 * chats + 20, max_keepalive_connections=4 * chats + 20)
        async with httpx.AsyncClient(base_url=server.url, timeout=90, limits=limits) as http:
            async def count(chat_id: int, at_least: int = 0, timeout: float = 0) -> int:
                r = await http.get("/_test/wait", params={"chat_id": chat_id, "count": at_least, "timeout": timeout})
                return r.json()["count"]

            async def chat(i: int) -> None:
                chat_id = 10_000 + i
                for j in range(per_chat):
                    before = await count(chat_id)
                    start = time.perf_counter()
                    await http.post("/_test/send", json={"chat_id": chat_id, "text": texts[(i * 7 + j) % len(texts)]})
                    if await count(chat_id, before + 1, timeout=60) <= before:
                        return  # lost: no answer within a minute
                    latencies.append((time.perf_counter() - start) * 1000)

            await asyncio.gather(*(chat(i) for i in range(chats)))
            await asyncio.sleep(1.0)
            got = [await count(10_000 + i) for i in range(chats)]
    finally:
        await app.stop()
        server.stop()
    sent = chats * per_chat
    answered_turns = len(latencies)
    return {"messages": sent, "answered": answered_turns, "lost": sent - answered_turns,
            "bot_messages": sum(got), "p50_ms": pct(latencies, .5) if latencies else None,
            "p99_ms": pct(latencies, .99) if latencies else None}


def bench_e2e(quick: bool, tmp: Path) -> dict:
    chats, per = (20, 3) if quick else (200, 10)
    web = asyncio.run(_e2e_web({"mia_db_path": tmp / "e2e-web.db"}, chats, per))
    tg = asyncio.run(_e2e_telegram({"mia_db_path": tmp / "e2e-tg.db"}, chats, per))
    return {"chats": chats, "messages_per_chat": per, "web": web, "telegram": tg}


def bench_startup() -> dict:
    """A fresh process: import, load and index the content, answer one message; its peak RSS (VmHWM, kB)."""
    code = ("import time; t=time.perf_counter(); from pathlib import Path; from bot.content import Content; "
            "from bot.assistant import Assistant; from bot.store.base import ConversationState; "
            "c=Content.load(Path('.')); a=Assistant(c, None); a.respond('biaya paspor brp', ConversationState()); "
            # VmHWM (peak resident set of this process image): ru_maxrss would carry the forking parent's peak.
            "hwm=[l for l in open('/proc/self/status') if l.startswith('VmHWM')][0].split()[1]; "
            "print(time.perf_counter()-t, hwm)")
    runs = []
    for _ in range(3):
        out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
        seconds, rss_kb = out.stdout.split()
        runs.append((float(seconds), int(rss_kb) / 1024))
    return {"first_answer_seconds": statistics.median(r[0] for r in runs),
            "peak_rss_mb": statistics.median(r[1] for r in runs)}


# -- report ----------------------------------------------------------------------------------


def plot(latency: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = list(latency)
    xs = [latency[k]["examples"] for k in labels]
    fig, ax = plt.subplots(figsize=(6.5, 4))
    ax.plot(xs, [latency[k]["mia_p99"] for k in labels], "o-", label="MIA understand (p99)")
    ax.plot(xs, [latency[k]["floor_p99"] for k in labels], "s--", label="floor: one cdist, token_set_ratio (p99)")
    peer = [(latency[k]["examples"], latency[k]["peer_p99"]) for k in labels if "peer_p99" in latency[k]]
    if peer:
        ax.plot(*zip(*peer), "^:", label="peer predict_proba (p99)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("examples in the content")
    ax.set_ylabel("ms per message")
    ax.axhline(2, color="grey", lw=0.8)
    ax.grid(True, which="both", alpha=.3)
    ax.legend(fontsize=8)
    ax.set_title("Understanding latency vs content size (one core)")
    fig.tight_layout()
    fig.savefig(RESULTS / "latency.png", dpi=110)


def summary(results: dict) -> str:
    a = results["accuracy"]
    lines = ["| | MIA | peer (TF-IDF + logistic regression) |", "|---|---|---|"]
    for key, label in (("accuracy", "intent accuracy"), ("oos_precision", "out-of-scope precision"),
                       ("oos_recall", "out-of-scope recall"), ("office_accuracy", "correct office")):
        lines.append(f"| {label} | {a['mia'][key]:.1%} | {a['peer'][key]:.1%} |")
    lines.append(f"| wrong offices | {a['mia']['wrong_office']} | {a['peer']['wrong_office']} |")
    f = a["field"]
    for key, label in (("accuracy", "intent accuracy"), ("served", "answer serves the message (label or 'also')"),
                       ("oos_precision", "out-of-scope precision"), ("oos_recall", "out-of-scope recall")):
        lines.append(f"| **field set** ({f['messages']} public messages): {label} | {f['mia'][key]:.1%} | "
                     f"{f['peer'][key]:.1%} |")
    lines.append(f"| field set: wrong offices | {f['mia']['wrong_office']} | {f['peer']['wrong_office']} |")
    lines.append(f"| {len(a['cv']['mia']['folds'])}-fold CV over intent examples | {a['cv']['mia']['mean']:.1%} | "
                 f"{a['cv']['peer']['mean']:.1%} |")
    lines.append(f"| same CV, best-ranked intent (no threshold) | {a['cv']['mia']['top1']:.1%} | "
                 f"{a['cv']['peer']['top1']:.1%} |")
    c = a["cv_tuned"]
    lines.append(f"| thresholds tuned by CV (negatives held out too): CV accuracy | {c['mia']['cv_accuracy']:.1%} | "
                 f"{c['peer']['cv_accuracy']:.1%} |")
    lines.append(f"| ... then the labelled set as a pure test: accuracy | {c['mia']['labelled_accuracy']:.1%} | "
                 f"{c['peer']['labelled_accuracy']:.1%} |")
    lines.append(f"| ... out-of-scope recall / wrong offices | {c['mia']['labelled_oos_recall']:.1%} / "
                 f"{c['mia']['labelled_wrong_office']} | {c['peer']['labelled_oos_recall']:.1%} / "
                 f"{c['peer']['labelled_wrong_office']} |")
    lines.append(f"| ... and the field set: accuracy | {c['mia']['field_accuracy']:.1%} | "
                 f"{c['peer']['field_accuracy']:.1%} |")
    lines.append(f"| ... field set out-of-scope precision / recall | {c['mia']['field_oos_precision']:.1%} / "
                 f"{c['mia']['field_oos_recall']:.1%} | {c['peer']['field_oos_precision']:.1%} / "
                 f"{c['peer']['field_oos_recall']:.1%} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a small version (CI runs it so benchmarks never rot)")
    parser.add_argument("--out", type=Path, default=None, help="results file (default bench/results/results.json)")
    parser.add_argument("--only", nargs="*", default=None, help="run only these parts (e.g. e2e startup)")
    args = parser.parse_args()
    os.chdir(ROOT)
    RESULTS.mkdir(parents=True, exist_ok=True)
    tmp = Path(os.environ.get("TMPDIR", "/tmp")) / f"mia-bench-{os.getpid()}"
    tmp.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    content = Content.load(ROOT)
    results = {"machine": {"python": platform.python_version(), "cpus": os.cpu_count(), "platform": platform.platform()},
               "quick": args.quick, "date": time.strftime("%Y-%m-%d %H:%M")}
    steps = [("accuracy", lambda: bench_accuracy(content, args.quick)),
             ("latency", lambda: bench_latency(content, args.quick)),
             ("throughput", lambda: bench_throughput(content, args.quick, tmp)),
             ("e2e", lambda: bench_e2e(args.quick, tmp)),
             ("startup", bench_startup)]
    if args.only:
        steps = [(name, step) for name, step in steps if name in args.only]
    for name, step in tqdm(steps, desc="benchmarks"):
        t0 = time.perf_counter()
        results[name] = step()
        results[name + "_seconds"] = time.perf_counter() - t0
    results["total_seconds"] = time.perf_counter() - started
    out = args.out or (RESULTS / ("results-quick.json" if args.quick else "results.json"))
    out.parent.mkdir(parents=True, exist_ok=True)
    if args.only and out.exists():  # a partial run updates the parts it ran
        merged = json.loads(out.read_text(encoding="utf-8"))
        merged.update({k: v for k, v in results.items() if k not in ("total_seconds",)})
        results = merged
    out.write_text(json.dumps(results, indent=1, default=float) + "\n", encoding="utf-8")
    if not args.quick:
        plot(results["latency"])
    print()
    print(summary(results))
    print()
    print(f"{'content':<10} {'examples':>8} {'MIA p50':>8} {'MIA p99':>8} {'floor p99':>9} {'ratio':>6} {'peer p99':>8}")
    for label, row in results["latency"].items():
        peer = f"{row['peer_p99']:.2f}" if "peer_p99" in row else "-"
        print(f"{label:<10} {row['examples']:>8} {row['mia_p50']:>8.2f} {row['mia_p99']:>8.2f} {row['floor_p99']:>9.2f} "
              f"{row['ratio_p99']:>6.2f} {peer:>8}")
    print("throughput msg/s:", {k: round(v) for k, v in results["throughput"].items()})
    e = results["e2e"]
    print(f"e2e web: {e['web']}\ne2e telegram: {e['telegram']}")
    print(f"start-up: {results['startup']}")
    print(f"total {results['total_seconds']:.0f} s -> {out}")


if __name__ == "__main__":
    main()
