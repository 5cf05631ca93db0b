"""A cookie-less flood cannot fill the disk or slow a citizen down (issue 13, item 1).

A real `mia run` serves the web chat on loopback. 16 clients from 127.0.0.1 drop their cookie
before every request and post 16 KB messages as fast as MIA answers, for 20 s. Meanwhile a
citizen on 127.0.0.3 (loopback has the whole 127/8) keeps one session and asks a question every
1.5 s. The store (mia.db and its WAL) must grow by less than 5 MB and the citizen's median reply
stay under three times the median another citizen (127.0.0.2) saw with MIA idle just before.

MIA_ABUSE_LIMITS_OFF=1 runs the same flood with the per-address limits off (the figures of the
code as it was, printed, not asserted).
"""

from __future__ import annotations

import asyncio
import os
import statistics
import subprocess
import time

import httpx
import pytest

from tests.conftest import ROOT, mia_command
from tests.reliability.test_flood import free_port, wait_started

pytestmark = pytest.mark.reliability

ATTACKERS = 16
SECONDS = 20.0
GROWTH_BUDGET = 5 * 1024 * 1024
QUESTIONS = ["biaya paspor brp", "syarat bikin paspor apa aja", "sy dr lahat bikin paspor dmn", "lapor rakit itu apa",
             "kantor imigrasi utk oki dimana", "paspor hilang gmn"]
LIMITS_OFF = os.environ.get("MIA_ABUSE_LIMITS_OFF") == "1"


def store_bytes(db) -> int:
    return sum(os.path.getsize(p) for p in (str(db), f"{db}-wal") if os.path.exists(p))


def citizen(base: str, address: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=base, timeout=30,
                             transport=httpx.AsyncHTTPTransport(local_address=address))


async def ask(client: httpx.AsyncClient, text: str, n: int) -> float:
    started = time.perf_counter()
    r = await client.post("/api/messages", json={"text": text, "message_id": f"q{n}"})
    elapsed = time.perf_counter() - started
    assert r.status_code == 200, r.text
    assert any(m["role"] == "bot" for m in r.json()["messages"]), r.text
    return elapsed


async def test_a_cookieless_flood_cannot_fill_the_store_or_slow_a_citizen(tmp_path):
    port = free_port()
    db = tmp_path / "mia.db"
    env = dict(os.environ, MIA_DB_PATH=str(db), MIA_WEB_PORT=str(port), MIA_RELOAD_ENABLED="false")
    for name in ("TELEGRAM_BOT_TOKEN", "WHATSAPP_ACCESS_TOKEN", "WHATSAPP_VERIFY_TOKEN", "WHATSAPP_APP_SECRET",
                 "WHATSAPP_PHONE_NUMBER_ID"):
        env.pop(name, None)
    if LIMITS_OFF:
        env.update(MIA_WEB_NEW_SESSIONS_PER_MINUTE="0", MIA_WEB_MESSAGES_PER_MINUTE="0")
    log = open(tmp_path / "mia.log", "w", encoding="utf-8")
    proc = subprocess.Popen(mia_command() + ["run"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        async with citizen(base, "127.0.0.2") as idle_citizen, citizen(base, "127.0.0.3") as busy_citizen:
            await wait_started(idle_citizen)
            await ask(idle_citizen, "halo", 0)  # warm up: session, templates, the first write
            await ask(busy_citizen, "halo", 0)
            unloaded = [await ask(idle_citizen, QUESTIONS[n % len(QUESTIONS)], n) for n in range(1, 13)]
            size_before = store_bytes(db)

            stop = time.monotonic() + SECONDS
            statuses: dict[int, int] = {}
            body_text = ("sy mau tanya soal paspor dan syaratnya apa saja ya min " * 300)[:15_900]

            async def attacker(i: int) -> None:
                async with httpx.AsyncClient(base_url=base, timeout=30) as client:
                    n = 0
                    while time.monotonic() < stop:
                        client.cookies.clear()  # a fresh session every time, if MIA would give one
                        n += 1
                        try:
                            r = await client.post("/api/messages", json={"text": body_text, "message_id": f"a{i}-{n}"})
                            statuses[r.status_code] = statuses.get(r.status_code, 0) + 1
                        except httpx.HTTPError:
                            statuses[0] = statuses.get(0, 0) + 1

            async def citizen_meanwhile() -> list[float]:
                await asyncio.sleep(1.0)
                times = []
                n = 0
                while time.monotonic() < stop - 0.5:
                    n += 1
                    times.append(await ask(busy_citizen, QUESTIONS[n % len(QUESTIONS)], n))
                    await asyncio.sleep(1.5)
                return times

            results = await asyncio.gather(citizen_meanwhile(), *(attacker(i) for i in range(ATTACKERS)))
            loaded = results[0]
            await asyncio.sleep(1.5)  # MIA settles; the WAL is what it is
            growth = store_bytes(db) - size_before
            base_median, loaded_median = statistics.median(unloaded), statistics.median(loaded)
            print(f"\nabuse flood ({'limits OFF' if LIMITS_OFF else 'limits on'}): {ATTACKERS} cookie-less clients, "
                  f"{SECONDS:.0f} s, 16 KB messages: responses {dict(sorted(statuses.items()))} "
                  f"({sum(statuses.values()) / SECONDS:.0f}/s); store grew {growth / 1e6:.2f} MB; citizen reply "
                  f"median {base_median * 1000:.1f} ms idle, {loaded_median * 1000:.1f} ms under the flood "
                  f"({loaded_median / base_median:.2f}x, {len(loaded)} questions, worst "
                  f"{max(loaded) * 1000:.0f} ms)")
            if not LIMITS_OFF:
                assert statuses.get(429, 0) > 0 and statuses.get(0, 0) == 0
                assert growth < GROWTH_BUDGET, f"store grew {growth} bytes"
                assert loaded_median < 3 * base_median, (unloaded, loaded)
            assert proc.poll() is None, "mia run died"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
