"""Scale-out: SQLite with one worker beside PostgreSQL with 1, 2 and 3 workers, in one run.

Each worker is a real `mia run` process (the web chat, abuse limits off, one sentence-model
thread); the load generator (this process) keeps CONVERSATIONS chats going, each message sent to
the next worker in turn as a round-robin balancer would. Measured per configuration: messages
per second, p50/p99 latency, and CPU milliseconds per message in the workers, in the PostgreSQL
server (all its processes) and in the load generator, read from /proc. Workers, server and load
generator share this machine's cores, so the cost per message is what carries over: N workers
on N cores of their own reach N x 1000 / (worker CPU ms per message) messages per second if the
cost per message stays flat as workers are added, which the 2-worker run checks (its measured
rate against what the cost model gives for everything sharing 2 cores).

Apart from the workers: the store's own CPU per message (the units of work a web message costs,
without understanding) on SQLite and PostgreSQL, and one worker on PostgreSQL with the message
read before its transaction and without (bot.core.assistant.UNDERSTAND_AHEAD).
"""

from __future__ import annotations

import asyncio
import os
import secrets
import socket
import subprocess
import sys
import time
from contextlib import asynccontextmanager
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
SERVER = "postgresql://postgres@127.0.0.1:5432/postgres"
CONVERSATIONS = 16
TICK = os.sysconf("SC_CLK_TCK")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _cpu_seconds(pid: int) -> float:
    """User + system CPU of a process (all its threads) so far."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICK


def _postgres_cpu() -> float:
    """CPU so far of every PostgreSQL server process on this machine."""
    total = 0.0
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() == "postgres":
                    total += _cpu_seconds(int(entry.name))
            except OSError:
                continue
    return total


async def _database(name: str) -> str:
    import asyncpg

    conn = await asyncpg.connect(SERVER)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return f"postgresql://postgres@127.0.0.1:5432/{name}"


async def _drop(name: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(SERVER)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


def _start_workers(n: int, database: dict, tmp: Path) -> list[tuple[subprocess.Popen, int]]:
    exe = Path(sys.executable).parent / "mia"
    command = [str(exe)] if exe.exists() else [sys.executable, "-m", "bot"]
    workers = []
    for i in range(n):
        port = _free_port()
        env = dict(os.environ, MIA_WEB_PORT=str(port), MIA_WORKER_ID=f"bench{i + 1}", MIA_WEB_ENABLED="true",
                   MIA_WEB_NEW_SESSIONS_PER_MINUTE="0", MIA_WEB_MESSAGES_PER_MINUTE="0",
                   MIA_WEB_READS_PER_MINUTE="0", MIA_RATE_LIMIT="0", MIA_RELOAD_ENABLED="false",
                   MIA_LOG_LEVEL="WARNING", MIA_SENTENCE_MODEL_THREADS="1", OMP_NUM_THREADS="1", **database)
        for key in ("TELEGRAM_BOT_TOKEN", "WHATSAPP_ACCESS_TOKEN"):
            env.pop(key, None)
        log = open(tmp / f"worker{i + 1}.log", "a", encoding="utf-8")
        workers.append((subprocess.Popen(command + ["run"], cwd=ROOT, env=env, stdout=log,
                                         stderr=subprocess.STDOUT), port))
    return workers


async def _ready(workers, timeout: float = 180.0) -> None:
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient(timeout=2) as http:
        for proc, port in workers:
            while True:
                try:
                    if (await http.get(f"http://127.0.0.1:{port}/healthz")).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"a bench worker did not start (exit {proc.poll()})")
                await asyncio.sleep(0.2)


async def _load(ports: list[int], texts: list[str], per_chat: int, salt: int = 1) -> tuple[list[float], int]:
    """CONVERSATIONS chats, each message to the next worker in turn; (latencies in ms, answered)."""
    turn = iter(range(10**9))
    latencies: list[float] = []
    answered = 0
    limits = httpx.Limits(max_connections=4 * CONVERSATIONS, max_keepalive_connections=4 * CONVERSATIONS)

    async def chat(i: int, http: httpx.AsyncClient) -> None:
        nonlocal answered
        cookies = httpx.Cookies()
        for j in range(per_chat):
            port = ports[next(turn) % len(ports)]
            start = time.perf_counter()
            n = i * per_chat + j
            r = await http.post(f"http://127.0.0.1:{port}/api/messages", cookies=cookies,
                                json={"text": _variant(texts[n % len(texts)], salt + n // len(texts)),
                                      "message_id": str(j)})
            latencies.append((time.perf_counter() - start) * 1000)
            cookies.update(r.cookies)
            answered += r.status_code == 200 and any(m["role"] == "bot" for m in r.json()["messages"])

    async with httpx.AsyncClient(limits=limits, timeout=120) as http:
        await asyncio.gather(*(chat(i, http) for i in range(CONVERSATIONS)))
    return latencies, answered


def _variant(text: str, n: int) -> str:
    """The n-th way of writing a text: the same words for the lexical signals (they read it lower-
    cased, without punctuation), a sentence the sentence model has not seen (it reads case), so no
    worker's vector cache answers for it and every message costs what a new message costs."""
    chars = list(text)
    letters = [k for k, c in enumerate(chars) if c.isalpha()][:24]
    for bit, k in enumerate(letters):
        if n >> bit & 1:
            chars[k] = chars[k].swapcase()
    return "".join(chars) + "." * (n >> len(letters))


def _pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))] if values else 0.0


async def _configuration(label: str, n: int, postgres: bool, texts: list[str], per_chat: int, tmp: Path) -> dict:
    name = f"mia_bench_{secrets.token_hex(4)}"
    database = {"MIA_DATABASE_URL": await _database(name)} if postgres else \
        {"MIA_DB_PATH": str(tmp / f"{name}.db"), "MIA_DATABASE_URL": ""}
    workers = _start_workers(n, database, tmp)
    try:
        await _ready(workers)
        ports = [p for _, p in workers]
        await _load(ports, texts, 2)  # warm: sessions, connections, the first sentence vectors
        mia0 = sum(_cpu_seconds(p.pid) for p, _ in workers)
        pg0, gen0, t0 = _postgres_cpu(), time.process_time(), time.perf_counter()
        latencies, answered = await _load(ports, texts, per_chat, salt=7)
        elapsed = time.perf_counter() - t0
        mia = sum(_cpu_seconds(p.pid) for p, _ in workers) - mia0
        pg, gen = _postgres_cpu() - pg0, time.process_time() - gen0
    finally:
        for proc, _ in workers:
            proc.terminate()
        for proc, _ in workers:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
        if postgres:
            await _drop(name)
    sent = len(latencies)
    per = 1000.0 / sent
    return {"label": label, "workers": n, "messages": sent, "answered": answered, "msg_per_s": sent / elapsed,
            "p50_ms": _pct(latencies, .5), "p99_ms": _pct(latencies, .99), "mia_cpu_ms_per_msg": mia * per,
            "postgres_cpu_ms_per_msg": pg * per, "loadgen_cpu_ms_per_msg": gen * per}


async def _store_cost(postgres: bool, messages: int, tmp: Path) -> dict:
    """CPU per message of the store alone: the units of work one web message costs (claim and load,
    transcript, state, turn log), no understanding. Client side (this process, its threads) and
    server side (PostgreSQL's processes)."""
    from bot.store.open import store_for
    from bot.store.base import ConversationState

    name = f"mia_bench_{secrets.token_hex(4)}"
    store = store_for(await _database(name) if postgres else tmp / f"{name}.db")
    await store.open()
    try:
        async def chat(i: int, round_: str) -> None:
            for j in range(messages // CONVERSATIONS):
                async with store.unit() as u:
                    state = await u.claim_and_load("web", f"{i}:{round_}{j}", f"chat{i}")
                    await u.add_web_message(f"chat{i}", "user", "syarat paspor baru apa saja", [])
                    await u.add_web_message(f"chat{i}", "bot", "Syarat paspor baru: KTP, KK ..." * 4, [])
                    await u.save_state("web", f"chat{i}", ConversationState(state.lang, None, {"n": j}))
                    await u.log_turn("web", f"chat{i}", "syarat paspor baru apa saja", "passport_requirements",
                                     0.9, None, None, "Syarat paspor baru ...")

        await asyncio.gather(*(chat(i, "w") for i in range(CONVERSATIONS)))  # warm
        pg0, c0, t0 = _postgres_cpu(), time.process_time(), time.perf_counter()
        await asyncio.gather(*(chat(i, "m") for i in range(CONVERSATIONS)))
        elapsed = time.perf_counter() - t0
        client, server = time.process_time() - c0, _postgres_cpu() - pg0
    finally:
        await store.close()
        if postgres:
            await _drop(name)
    n = messages // CONVERSATIONS * CONVERSATIONS
    return {"client_cpu_ms_per_msg": client * 1000 / n, "server_cpu_ms_per_msg": server * 1000 / n,
            "store_cpu_ms_per_msg": (client + server) * 1000 / n, "msg_per_s": n / elapsed}


async def _ahead(on: bool, texts: list[str], messages: int) -> dict:
    """One in-process assistant on PostgreSQL, CONVERSATIONS chats at once, the message read ahead
    of its transaction or inside it."""
    import bot.core.assistant as assistant_module
    from bot.core.assistant import Assistant
    from bot.core.content import Content
    from bot.core.messages import Incoming
    from bot.store.open import store_for

    name = f"mia_bench_{secrets.token_hex(4)}"
    store = store_for(await _database(name))
    await store.open()
    assistant_module.UNDERSTAND_AHEAD = on
    held: list[float] = []  # how long each message's transaction (its conversation's lock) was held
    unit = store.unit

    @asynccontextmanager
    async def timed_unit():
        async with unit() as u:
            t = time.perf_counter()
            yield u
            held.append((time.perf_counter() - t) * 1000)

    store.unit = timed_unit
    try:
        assistant = Assistant(Content.load(ROOT), store)
        salt = 1 + 8 * secrets.randbelow(1000)  # ways of writing the texts not seen in this process
        per_chat = messages // CONVERSATIONS

        async def chat(i: int) -> None:
            for j in range(per_chat):
                n = i * per_chat + j
                text = _variant(texts[n % len(texts)], salt + n // len(texts))
                await assistant.handle(Incoming("web", f"c{i}", text, f"{i}-{j}"))

        t0 = time.perf_counter()
        await asyncio.gather(*(chat(i) for i in range(CONVERSATIONS)))
        elapsed = time.perf_counter() - t0
    finally:
        assistant_module.UNDERSTAND_AHEAD = True
        await store.close()
        await _drop(name)
    return {"msg_per_s": messages // CONVERSATIONS * CONVERSATIONS / elapsed, "held_p50_ms": _pct(held, .5),
            "held_p99_ms": _pct(held, .99)}


def _postgres_up() -> bool:
    async def probe() -> bool:
        import asyncpg

        try:
            await (await asyncpg.connect(SERVER, timeout=5)).close()
            return True
        except (OSError, asyncio.TimeoutError, asyncpg.PostgresError):
            return False

    return asyncio.run(probe())


def bench_scaleout(quick: bool, tmp: Path) -> dict:
    from bot.content.evaluation import load_cases

    if not _postgres_up():
        print(f"scale-out skipped: no PostgreSQL at {SERVER} (start it with `pg_ctlcluster "
              "--skip-systemctl-redirect $(ls /etc/postgresql) main start`)")
        return {"skipped": "no PostgreSQL server"}

    texts = [c.text for c in load_cases(ROOT / "tests" / "data" / "labelled.yaml")]
    per_chat = 6 if quick else 40
    out: dict = {"conversations": CONVERSATIONS, "configurations": []}

    async def run() -> None:
        for label, n, postgres in [("SQLite, 1 worker", 1, False), ("PostgreSQL, 1 worker", 1, True),
                                   ("PostgreSQL, 2 workers", 2, True), ("PostgreSQL, 3 workers", 3, True)]:
            out["configurations"].append(await _configuration(label, n, postgres, texts, per_chat, tmp))
        store_messages = 320 if quick else 3200
        out["store"] = {"sqlite": await _store_cost(False, store_messages, tmp),
                        "postgres": await _store_cost(True, store_messages, tmp)}
        ahead_messages = 64 if quick else 480
        # Alternating, twice each after a warm-up run (the first run of a process fills its caches):
        # this machine's noise is of the size of the effect measured.
        await _ahead(True, texts, ahead_messages // 4)
        runs = [(on, await _ahead(on, texts, ahead_messages)) for on in (True, False, True, False)]
        out["read_ahead"] = {"on" if flag else "off": {key: [r[key] for on, r in runs if on == flag]
                                                       for key in ("msg_per_s", "held_p50_ms", "held_p99_ms")}
                             for flag in (True, False)}

    asyncio.run(run())
    one = next(c for c in out["configurations"] if c["label"] == "PostgreSQL, 1 worker")
    two = next(c for c in out["configurations"] if c["label"] == "PostgreSQL, 2 workers")
    cores = os.cpu_count() or 1
    # Everything shares the machine's cores: the cost model's rate for the 2-worker run, against what it did.
    cost = two["mia_cpu_ms_per_msg"] + two["postgres_cpu_ms_per_msg"] + two["loadgen_cpu_ms_per_msg"]
    out["model"] = {
        "cores": cores,
        "two_workers_predicted_msg_per_s": cores * 1000 / cost,
        "two_workers_measured_msg_per_s": two["msg_per_s"],
        "worker_cpu_ms_per_msg_growth_1_to_2": two["mia_cpu_ms_per_msg"] / one["mia_cpu_ms_per_msg"],
        # N workers on N cores of their own (the database and the balancer elsewhere).
        "per_core_msg_per_s": 1000 / two["mia_cpu_ms_per_msg"],
        "scaling_efficiency": one["mia_cpu_ms_per_msg"] / two["mia_cpu_ms_per_msg"],
    }
    out["store"]["postgres_to_sqlite"] = (out["store"]["postgres"]["store_cpu_ms_per_msg"]
                                          / out["store"]["sqlite"]["store_cpu_ms_per_msg"])
    return out
