"""Abuse round 2 (issue 18), against a real `mia run` on loopback, figures printed for
docs/reliability.md:

- one address re-reads a large transcript in 32 loops for 20 s while another citizen asks a
  question every 1.5 s: the citizen's median reply stays under three times the idle median;
- distinct client addresses (through a trusted proxy's X-Forwarded-For) each ask for a page of
  transcript: `mia run` stays at or under 150 MB resident. 20,000 by default (twice what the
  limiters remember, so their cap is what is measured; a few minutes); MIA_ABUSE_ADDRESSES=100000
  runs the issue's figure (about ten minutes on a 2-core machine).
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
from tests.reliability.test_abuse_flood import QUESTIONS, ask, citizen
from tests.reliability.test_flood import free_port, memory_mb, wait_started

pytestmark = pytest.mark.reliability

LOOPS = 32
SECONDS = 20.0
ADDRESSES = int(os.environ.get("MIA_ABUSE_ADDRESSES", "20000"))
RSS_BUDGET_MB = 150.0


def start(tmp_path, **env_extra) -> tuple[subprocess.Popen, str, object]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TELEGRAM_", "WHATSAPP_"))}
    env.update(MIA_DB_PATH=str(tmp_path / "mia.db"), MIA_WEB_PORT=str(port), MIA_RELOAD_ENABLED="false", **env_extra)
    log = open(tmp_path / "mia.log", "w", encoding="utf-8")
    proc = subprocess.Popen(mia_command() + ["run"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    return proc, f"http://127.0.0.1:{port}", log


def stop(proc, log) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()


async def test_re_reading_a_large_transcript_does_not_slow_another_citizen(tmp_path):
    proc, base, log = start(tmp_path)
    try:
        async with citizen(base, "127.0.0.2") as idle, citizen(base, "127.0.0.3") as busy, \
                citizen(base, "127.0.0.4") as reader:
            await wait_started(idle)
            await ask(idle, "halo", 0)
            await ask(busy, "halo", 0)
            big = ("paspor saya hilang waktu perjalanan, bagaimana cara mengurusnya min " * 240)[:15_900]
            for n, text in enumerate(QUESTIONS):  # the sentence vectors of the questions are remembered by now
                await ask(idle, text, 100 + n)
                await ask(busy, text, 100 + n)
            for n in range(19):  # the reader's own transcript: 19 long messages and their answers
                r = await reader.post("/api/messages", json={"text": big, "message_id": f"big{n}"})
                assert r.status_code == 200
            unloaded = [await ask(idle, QUESTIONS[n % len(QUESTIONS)], n) for n in range(1, 13)]
            deadline = time.monotonic() + SECONDS
            codes: dict[int, int] = {}
            sent = [0]

            async def loop() -> None:
                while time.monotonic() < deadline:
                    try:
                        r = await reader.get("/api/messages")
                        codes[r.status_code] = codes.get(r.status_code, 0) + 1
                        sent[0] += len(r.content)
                    except httpx.HTTPError:
                        codes[0] = codes.get(0, 0) + 1

            async def meanwhile() -> list[float]:
                await asyncio.sleep(1.0)
                times, n = [], 0
                while time.monotonic() < deadline - 0.5:
                    n += 1
                    times.append(await ask(busy, QUESTIONS[n % len(QUESTIONS)], n))
                    await asyncio.sleep(1.5)
                return times

            results = await asyncio.gather(meanwhile(), *(loop() for _ in range(LOOPS)))
            loaded = results[0]
            base_median, loaded_median = statistics.median(unloaded), statistics.median(loaded)
            print(f"\ntranscript re-reads: {LOOPS} loops, {SECONDS:.0f} s: responses {dict(sorted(codes.items()))}, "
                  f"{sent[0] / SECONDS / 1e6:.2f} MB/s served; citizen reply median {base_median * 1000:.1f} ms idle, "
                  f"{loaded_median * 1000:.1f} ms meanwhile ({loaded_median / base_median:.2f}x)")
            assert codes.get(429, 0) > 0
            assert loaded_median < 3 * base_median, (unloaded, loaded)
            assert proc.poll() is None
    finally:
        stop(proc, log)


async def test_a_hundred_thousand_addresses_keep_mia_within_its_memory(tmp_path):
    proc, base, log = start(tmp_path, MIA_WEB_TRUSTED_PROXIES="127.0.0.1")
    try:
        limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
        async with httpx.AsyncClient(base_url=base, timeout=60, limits=limits) as http:
            await wait_started(http)
            await http.post("/api/messages", json={"text": "biaya paspor brp"})
            before = memory_mb(proc.pid)
            started = time.monotonic()
            queue = iter(range(ADDRESSES))

            async def worker() -> None:
                for n in queue:
                    address = f"10.{n >> 16}.{(n >> 8) & 255}.{n & 255}"
                    await http.get("/api/messages", headers={"X-Forwarded-For": address})

            await asyncio.gather(*(worker() for _ in range(48)))
            after = memory_mb(proc.pid)
            print(f"\n{ADDRESSES} addresses in {time.monotonic() - started:.0f} s: mia run RSS "
                  f"{before['VmRSS']:.0f} MB -> {after['VmRSS']:.0f} MB (peak {after['VmHWM']:.0f} MB)")
            assert after["VmRSS"] <= RSS_BUDGET_MB
            assert proc.poll() is None
    finally:
        stop(proc, log)
