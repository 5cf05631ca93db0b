"""The Graph API and the Bot API unreachable for a minute: MIA waits without burning CPU, loses
nothing, and still stops promptly.

A real `mia run` process (web chat, WhatsApp webhook, Telegram polling) talks to the local fake
Graph API and Bot API through gates (tests/fakes/gate.py): closed, nothing listens on the port,
so every connection is refused, as when a peer is down. With both gates closed, WhatsApp
citizens are answered, a WhatsApp and a web citizen ask for an officer (staff notifications for
the Telegram staff chats) and a Telegram citizen's reply is already waiting for a retry. Then:

- for MIA_PEER_DOWN_SECONDS (default 60) the process's CPU time (utime + stime from
  /proc/PID/stat) stays under 5% of one core, retries going on all the while;
- once the gates open, every reply and notification arrives, each exactly once;
- the peers down again with replies and a notification pending, SIGTERM ends MIA within 5 s,
  and the next start delivers what was pending.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import ROOT, mia_command
from tests.fakes.botapi import BOT, BotApiServer
from tests.fakes.gate import Gate, free_port
from tests.fakes.graphapi import GraphApiServer
from tests.test_whatsapp import SECRET, VERIFY, signed, text_message, update

pytestmark = pytest.mark.reliability

DOWN_SECONDS = float(os.environ.get("MIA_PEER_DOWN_SECONDS", "60"))
CPU_BUDGET = 0.05  # share of one core while the peers are down
STOP_BUDGET = 5.0  # seconds from SIGTERM to exit
CLK_TCK = os.sysconf("SC_CLK_TCK")
STAFF = {"palembang": -1001, "muaraenim": -1002}
TG_CITIZEN = 901
WA_CITIZENS = [f"62812000001{i:02d}" for i in range(5)]
WA_HANDOFF = "6281200000200"
WA_LATER = [f"62812000003{i:02d}" for i in range(3)]


def cpu_ticks(pid: int) -> int:
    """utime + stime of a process, in clock ticks."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def pending_outbox(db: Path) -> int:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        return conn.execute("SELECT count(*) FROM outbox WHERE status = 'pending'").fetchone()[0]


class Mia:
    """`mia run` as a process, with its web port and log."""

    def __init__(self, tmp: Path, botapi: Gate, graph: Gate):
        self.port = free_port()
        self.db = tmp / "mia.db"
        self.log_path = tmp / "mia.log"
        self.env = dict(
            os.environ,
            TELEGRAM_BOT_TOKEN="123456:PEER-DOWN-TEST",
            TELEGRAM_API_BASE_URL=f"{botapi.url}/bot",
            TELEGRAM_POLL_TIMEOUT_SECONDS="1",
            MIA_STAFF_TELEGRAM_CHATS=",".join(f"{o}:{c}" for o, c in STAFF.items()),
            MIA_DB_PATH=str(self.db),
            MIA_WEB_PORT=str(self.port),
            MIA_OUTBOX_MAX_BACKOFF_SECONDS="5",  # retries every few seconds: the worker keeps working
            WHATSAPP_VERIFY_TOKEN=VERIFY,
            WHATSAPP_APP_SECRET=SECRET,
            WHATSAPP_ACCESS_TOKEN="EAAG-peer-down-token",
            WHATSAPP_PHONE_NUMBER_ID="1098765",
            WHATSAPP_API_BASE_URL=graph.url,
        )
        self.proc: subprocess.Popen | None = None
        self.http = httpx.AsyncClient(base_url=f"http://127.0.0.1:{self.port}", timeout=30)

    async def start(self) -> None:
        with open(self.log_path, "a", encoding="utf-8") as log:
            self.proc = subprocess.Popen(mia_command() + ["run"], cwd=ROOT, env=self.env, stdout=log,
                                         stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while True:
            try:
                if (await self.http.get("/healthz")).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            assert self.proc.poll() is None and time.monotonic() < deadline, "mia run did not start"
            await asyncio.sleep(0.1)

    async def whatsapp(self, sender: str, text: str) -> None:
        raw, headers = signed(update(text_message(text, sender=sender)))
        assert (await self.http.post("/whatsapp/webhook", content=raw, headers=headers)).status_code == 200

    async def web(self, session: httpx.AsyncClient, text: str) -> str:
        r = await session.post("/api/messages", json={"text": text})
        assert r.status_code == 200, r.text
        return "\n".join(m["text"] for m in r.json()["messages"] if m["role"] == "bot")

    async def terminate(self) -> tuple[float, int]:
        """SIGTERM; (seconds until the process ended, exit code)."""
        started = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        while self.proc.poll() is None and time.monotonic() - started < 30:
            await asyncio.sleep(0.02)
        took = time.monotonic() - started
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        return took, self.proc.returncode

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8")


async def handoff_on_the_web(mia: Mia, region: str) -> None:
    async with httpx.AsyncClient(base_url=str(mia.http.base_url), timeout=30) as session:
        await mia.web(session, "saya mau bicara dengan petugas")
        assert "diteruskan ke petugas" in await mia.web(session, region)


async def wait_for(what: str, check, timeout: float) -> float:
    """Poll an async check until it is true; the seconds it took."""
    started = time.monotonic()
    while not await check():
        assert time.monotonic() - started < timeout, f"{what}: not within {timeout:.0f} s"
        await asyncio.sleep(0.1)
    return time.monotonic() - started


async def test_peers_down_for_a_minute(tmp_path):
    botapi, graph = BotApiServer().start(), GraphApiServer().start()
    bot_gate, graph_gate = await Gate(botapi.port).open(), await Gate(graph.port).open()
    control = httpx.AsyncClient(base_url=botapi.url, timeout=30)
    mia = Mia(tmp_path, bot_gate, graph_gate)

    async def bot_messages(chat_id: int) -> list[dict]:
        messages = (await control.get("/_test/messages", params={"chat_id": chat_id})).json()
        return [m for m in messages if m.get("from", {}).get("id") == BOT["id"]]

    def sent_to(number: str) -> list[dict]:
        return [b for b in graph.sent if b["to"] == number]

    try:
        await mia.start()
        # Telegram works, then one citizen's reply fails (502) and waits for a retry.
        await control.post("/_test/send", json={"chat_id": TG_CITIZEN + 1, "text": "halo"})
        await wait_for("warm-up answer", lambda: _nonempty(bot_messages(TG_CITIZEN + 1)), 20)
        await control.post("/_test/fail", json={"chat_id": TG_CITIZEN, "code": 502})
        await control.post("/_test/send", json={"chat_id": TG_CITIZEN, "text": "biaya paspor brp"})
        await wait_for("the failing send", lambda: _nonempty(
            control.get("/_test/attempts", params={"chat_id": TG_CITIZEN}), json=True), 20)

        # Both peers down; replies and staff notifications are queued.
        await bot_gate.close()
        await graph_gate.close()
        for number in WA_CITIZENS:
            await mia.whatsapp(number, "biaya paspor brp")
        await mia.whatsapp(WA_HANDOFF, "saya mau bicara dengan petugas")
        await mia.whatsapp(WA_HANDOFF, "lahat")
        await handoff_on_the_web(mia, "palembang")
        await wait_for("replies handed to the outbox", lambda: _true(pending_outbox(mia.db) >= 10), 20)
        await asyncio.sleep(1.0)  # the channels' own first sends have failed

        before = cpu_ticks(mia.proc.pid)
        await asyncio.sleep(DOWN_SECONDS)
        ticks = cpu_ticks(mia.proc.pid) - before
        share = ticks / CLK_TCK / DOWN_SECONDS
        pending = pending_outbox(mia.db)
        retries = mia.log().count("; retry in ")

        # The peers are back: everything arrives, once.
        await control.post("/_test/fail", json={"chat_id": TG_CITIZEN})
        await bot_gate.open()
        await graph_gate.open()

        async def all_delivered() -> bool:
            return (all(sent_to(n) for n in WA_CITIZENS) and len(sent_to(WA_HANDOFF)) >= 2
                    and all([await bot_messages(c) for c in (*STAFF.values(), TG_CITIZEN)]))

        delivered_in = await wait_for("delivery after the peers came back", all_delivered, 60)
        await wait_for("an empty outbox", lambda: _true(pending_outbox(mia.db) == 0), 30)
        await asyncio.sleep(2.0)  # a second copy would arrive by now
        assert all(len(sent_to(n)) == 1 and "Rp" in str(sent_to(n)) for n in WA_CITIZENS)
        assert len(sent_to(WA_HANDOFF)) == 2
        assert [len(await bot_messages(c)) for c in (*STAFF.values(), TG_CITIZEN)] == [1, 1, 1]
        assert "Rp" in (await bot_messages(TG_CITIZEN))[0]["text"]

        # Down again with three replies and a notification pending: SIGTERM ends MIA promptly.
        await bot_gate.close()
        await graph_gate.close()
        for number in WA_LATER:
            await mia.whatsapp(number, "syarat bikin paspor apa aja")
        await handoff_on_the_web(mia, "lahat")
        await asyncio.sleep(3.0)  # the sends have failed and wait for their retries
        assert pending_outbox(mia.db) >= 4
        stop_seconds, code = await mia.terminate()
        assert stop_seconds < STOP_BUDGET and code == 0, (stop_seconds, code)

        # The next start, with the peers back, delivers what was pending.
        await bot_gate.open()
        await graph_gate.open()
        await mia.start()
        await wait_for("delivery after the restart", lambda: _true(
            all(sent_to(n) for n in WA_LATER) and pending_outbox(mia.db) == 0), 60)
        assert len(await bot_messages(STAFF["muaraenim"])) == 2
        final_stop, code = await mia.terminate()
        assert code == 0
    finally:
        if mia.proc is not None and mia.proc.poll() is None:
            mia.proc.kill()
        await mia.http.aclose()
        await control.aclose()
        await bot_gate.close()
        await graph_gate.close()
        botapi.stop()
        graph.stop()

    log = mia.log()
    print(f"\npeers down {DOWN_SECONDS:.0f} s with {pending} messages pending: MIA used {ticks} CPU ticks "
          f"({share:.1%} of a core), {retries} failed sends logged; all delivered {delivered_in:.1f} s after the "
          f"peers came back, each once; SIGTERM with {len(WA_LATER)} replies and a notification pending: exited "
          f"in {stop_seconds:.2f} s; the next start delivered them; SIGTERM with the peers up: {final_stop:.2f} s",
          flush=True)
    assert share < CPU_BUDGET, f"{ticks} ticks in {DOWN_SECONDS:.0f} s"
    assert "is not started" not in log
    assert "PEER-DOWN-TEST" not in log and "EAAG-peer-down-token" not in log


async def _nonempty(awaitable, json: bool = False) -> bool:
    result = await awaitable
    return bool(result.json() if json else result)


async def _true(value: bool) -> bool:
    return value
