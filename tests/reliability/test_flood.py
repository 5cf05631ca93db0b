"""1,000 chats at once on the web API and on Telegram: every message answered, memory bounded.

Two deployments, each as a user runs it: one `mia run` on SQLite polling the local Bot API
server, and two workers on one PostgreSQL behind a round-robin balancer, Telegram on a webhook.
1,000 web chats (each its own session cookie and address, forwarded by a trusted proxy) and 1,000
Telegram chats each send two messages, all at once. Every message must be answered exactly once;
each worker's peak memory (VmHWM) must stay within the budget below; p50/p99 reply latency is
printed (recorded in docs/reliability.md), not asserted: timing is the benchmarks' job.
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest

from tests.fakes.balancer import Balancer
from tests.fakes.botapi import BOT, BotApiServer
from tests.fakes.process import MiaProcess
from tests.test_store_contract import postgres_database

pytestmark = pytest.mark.reliability

CHATS = int(os.environ.get("MIA_FLOOD_CHATS", "1000"))
PER_CHAT = 2
# mia run holds the multilingual sentence model (about 135 MB resident before any chat, docs/benchmarks.md):
# the whole process stays within the 200 MB that start-up is held to, and the flood itself adds at most 50 MB.
MEMORY_BUDGET_MB = 200
FLOOD_GROWTH_MB = 50
TEXTS = ["biaya paspor brp", "syarat bikin paspor apa aja", "sy dr lahat bikin paspor dmn", "lapor rakit itu apa",
         "halo min", "kantor imigrasi utk oki dimana", "paspor hilang gmn", "makasih ya"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def memory_mb(pid: int) -> dict[str, float]:
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = int(value.split()[0]) / 1024
    return fields


async def wait_started(client: httpx.AsyncClient, timeout: float = 30) -> None:
    """Until `mia run` answers /healthz."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if (await client.get("/healthz")).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, "mia run did not start"
        await asyncio.sleep(0.1)


async def retrying(call, tries: int = 3):
    """A request again if the server closed a pooled keep-alive connection just as it was reused,
    as browsers do; MIA de-duplicates by message id, so a retried message is never answered twice."""
    for attempt in range(tries):
        try:
            return await call()
        except (httpx.RemoteProtocolError, httpx.ConnectError, httpx.ReadError):
            if attempt == tries - 1:
                raise
            await asyncio.sleep(0.2)


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]


@asynccontextmanager
async def deployment(setup: str, tmp_path: Path, botapi: BotApiServer):
    """MIA as deployed: one `mia run` on SQLite polling Telegram, or two workers on one PostgreSQL
    behind a round-robin balancer with Telegram's webhook. Yields (web base URL, worker pids)."""
    env = dict(os.environ, TELEGRAM_BOT_TOKEN="123456:FLOOD-TEST", TELEGRAM_API_BASE_URL=f"{botapi.url}/bot",
               TELEGRAM_POLL_TIMEOUT_SECONDS="1", MIA_STAFF_TELEGRAM_CHATS="palembang:-1001,muaraenim:-1002",
               MIA_WEB_TRUSTED_PROXIES="127.0.0.1")  # each browser its own address, as a proxy tells
    if setup == "sqlite":
        port = free_port()
        proc = MiaProcess(dict(env, MIA_DB_PATH=str(tmp_path / "mia.db"), MIA_WEB_PORT=str(port)),
                          tmp_path / "mia.log")
        proc.start()
        try:
            await proc.ready(port)
            yield f"http://127.0.0.1:{port}", [proc.proc.pid]
        finally:
            proc.stop()
        return
    async with postgres_database() as url:
        ports = [free_port(), free_port()]
        balancer = Balancer([f"http://127.0.0.1:{p}" for p in ports]).start()
        env.update(MIA_DATABASE_URL=url, TELEGRAM_WEBHOOK_URL=f"{balancer.url}/telegram",
                   TELEGRAM_WEBHOOK_SECRET="flood-Secret")
        env.pop("MIA_DB_PATH", None)
        workers = [MiaProcess(dict(env, MIA_WORKER_ID=f"w{n}", MIA_WEB_PORT=str(p)), tmp_path / f"w{n}.log")
                   for n, p in enumerate(ports, 1)]
        for w in workers:
            w.start()
        try:
            for w, p in zip(workers, ports):
                await w.ready(p)
            yield balancer.url, [w.proc.pid for w in workers]
        finally:
            for w in workers:
                w.stop()
            balancer.stop()


@pytest.mark.parametrize("setup", ["sqlite", "postgres-2-workers"])
async def test_a_thousand_chats_at_once(tmp_path, setup):
    botapi = BotApiServer().start()
    limits = httpx.Limits(max_connections=CHATS + 10, max_keepalive_connections=CHATS + 10)
    try:
        async with deployment(setup, tmp_path, botapi) as (base, pids), \
                httpx.AsyncClient(base_url=base, timeout=120, limits=limits) as web, \
                httpx.AsyncClient(base_url=botapi.url, timeout=120, limits=limits) as tg:
            for _ in pids:  # warm every worker up
                await web.post("/api/messages", json={"text": "halo", "message_id": "warm"})
            before = {pid: memory_mb(pid) for pid in pids}

            # The web: 1,000 browsers, each its own session, two messages each.
            web_latency: list[float] = []
            web_answers = 0

            # Each browser its own cookie jar, all sharing one connection pool.
            transport = httpx.AsyncHTTPTransport(limits=limits)

            async def browser(i: int) -> None:
                nonlocal web_answers
                client = httpx.AsyncClient(base_url=base, timeout=120, transport=transport,
                                           headers={"X-Forwarded-For": f"198.18.{i // 256}.{i % 256}"})
                for j in range(PER_CHAT):
                    started = time.perf_counter()
                    r = await retrying(lambda: client.post(
                        "/api/messages", json={"text": TEXTS[(i + j) % len(TEXTS)], "message_id": f"m{j}"}))
                    web_latency.append(time.perf_counter() - started)
                    assert r.status_code == 200, r.text
                    body = r.json()
                    if body["duplicate"]:  # a retry of a message MIA had handled: its answer is in the transcript
                        body = (await client.get("/api/messages")).json()
                    web_answers += sum(1 for m in body["messages"][-3:] if m["role"] == "bot") > 0

            started = time.monotonic()
            await asyncio.gather(*(browser(i) for i in range(CHATS)))
            web_seconds = time.monotonic() - started
            await transport.aclose()
            after_web = {pid: memory_mb(pid) for pid in pids}

            # Telegram: 1,000 private chats, two messages each, the second after the first's answer.
            tg_latency: list[float] = []

            async def bot_messages(chat_id: int) -> list[dict]:
                messages = (await retrying(lambda: tg.get("/_test/messages", params={"chat_id": chat_id}))).json()
                return [m for m in messages if m.get("from", {}).get("id") == BOT["id"]]

            async def telegram_chat(i: int) -> None:
                chat_id = 10_000 + i
                for j in range(PER_CHAT):
                    have = len(await bot_messages(chat_id))
                    sent = time.time()
                    await tg.post("/_test/send", json={"chat_id": chat_id, "text": TEXTS[(i + j) % len(TEXTS)]})
                    wait = await retrying(lambda: tg.get("/_test/wait", params={"chat_id": chat_id, "count": have + 1,
                                                                                 "timeout": 120}))
                    assert wait.json()["count"] >= have + 1, f"chat {chat_id}: message {j} not answered"
                    first = (await bot_messages(chat_id))[have]
                    tg_latency.append(first["_sent_at"] - sent)

            started = time.monotonic()
            await asyncio.gather(*(telegram_chat(i) for i in range(CHATS)))
            tg_seconds = time.monotonic() - started
            await asyncio.sleep(1.0)
            after = {pid: memory_mb(pid) for pid in pids}
            # Exactly one answer per message: no chat got more bot messages than a second look shows.
            counts = await asyncio.gather(*(bot_messages(10_000 + i) for i in range(CHATS)))
    finally:
        botapi.stop()

    assert web_answers == CHATS * PER_CHAT
    assert len(tg_latency) == CHATS * PER_CHAT
    for pid in pids:  # each worker within the budget
        assert after[pid]["VmHWM"] < MEMORY_BUDGET_MB, after
        assert after[pid]["VmHWM"] - before[pid]["VmRSS"] < FLOOD_GROWTH_MB, (before, after)

    def mb(m: dict, key: str) -> str:
        return " / ".join(f"{m[pid][key]:.0f}" for pid in pids)

    print(f"\n{setup}: {CHATS} web chats x {PER_CHAT}: all answered in {web_seconds:.1f} s, p50 "
          f"{pct(web_latency, .5):.2f} s, p99 {pct(web_latency, .99):.2f} s; {CHATS} Telegram chats x {PER_CHAT}: all "
          f"answered in {tg_seconds:.1f} s, p50 {pct(tg_latency, .5):.2f} s, p99 {pct(tg_latency, .99):.2f} s; "
          f"memory per worker: RSS {mb(before, 'VmRSS')} MB before, {mb(after_web, 'VmRSS')} MB after the web flood, "
          f"{mb(after, 'VmRSS')} MB after both, peak {mb(after, 'VmHWM')} MB (budget {MEMORY_BUDGET_MB} MB, "
          f"{FLOOD_GROWTH_MB} MB for the flood); bot messages per Telegram chat "
          f"{min(len(c) for c in counts)}-{max(len(c) for c in counts)}", flush=True)
