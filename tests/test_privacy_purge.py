"""Retention (issue 13, item 3): after the retention period `mia db purge` leaves no citizen's
name or phone number in any table, nor anywhere in the database files (mia.db, -wal, -shm)."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import subprocess
import time

import httpx
import pytest

from bot.app import MiaApp
from bot.runtime.staff import StaffEvent
from tests.conftest import ROOT, mia_command
from tests.fakes.recording import RecordingSender
from tests.test_whatsapp import graph  # noqa: F401 - the fake Graph API fixture
from tests.test_whatsapp import signed, text_message, update, whatsapp_settings

WA_FORM = "6281311112222"  # abandons a Lapor Rakit form on WhatsApp
WA_HANDOFF = "6281399998888"  # talks to an officer on WhatsApp
# What must be gone: WhatsApp ids and profile names, form answers as typed and as stored (E.164).
SECRETS = [WA_FORM, WA_HANDOFF, "Budi Santoso", "Yanti Marlina",
           "Ratna Kusumawati", "0813 5555 1212", "6281355551212",  # WhatsApp form, abandoned
           "Hendra Wijaya", "0857 7777 3434", "6285777773434",  # web form, abandoned
           "Dewi Lestari", "0821 4444 6565", "6282144446565",  # web form, confirmed (a request)
           "Jl. Kenanga Sebelas"]
TIME_COLUMNS = ("created_at", "updated_at", "received_at", "processed_at", "last_inbound_at", "recorded_at",
                "claimed_at", "done_at", "sent_at", "next_attempt_at")


@pytest.fixture
async def mia(graph, db_path):  # noqa: F811 - the fixture imported above
    settings = whatsapp_settings(db_path, graph.url).model_copy(update={"mia_web_enabled": True})
    app = MiaApp(settings)
    await app.start()
    app.staff_sender = RecordingSender()
    app.worker.senders["telegram"] = app.staff_sender
    yield app
    await app.stop()


async def whatsapp(mia, message: dict, name: str) -> None:
    raw, headers = signed(update(message, name=name))
    async with httpx.AsyncClient(base_url=mia.web_url) as http:
        assert (await http.post("/whatsapp/webhook", content=raw, headers=headers)).status_code == 200
    await asyncio.sleep(0.3)


async def web(browser: httpx.AsyncClient, text: str) -> str:
    r = await browser.post("/api/messages", json={"text": text})
    assert r.status_code == 200
    return "\n".join(m["text"] for m in r.json()["messages"] if m["role"] == "bot")


def stored_bytes(db_path) -> bytes:
    return b"".join(p.read_bytes() for p in db_path.parent.iterdir() if p.name.startswith(db_path.name))


def found(db_path) -> list[str]:
    data = stored_bytes(db_path)
    return [s for s in SECRETS if s.encode() in data]


def move_time(db_path, seconds: float) -> None:
    """Every timestamp of every table `seconds` into the past (as if that much time had gone by)."""
    with sqlite3.connect(db_path) as db:
        tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        for table in tables:
            columns = {r[1] for r in db.execute(f"PRAGMA table_info({table})")}
            for column in columns & set(TIME_COLUMNS):
                db.execute(f"UPDATE {table} SET {column} = {column} - ? WHERE {column} > 0", (seconds,))


async def test_purge_leaves_no_name_or_phone_in_the_database_files(mia, graph):
    # WhatsApp: a form abandoned after the phone number; a handoff with a staff reply and a status.
    await whatsapp(mia, text_message("tolong petugas datang ke rumah, ibu sy sakit stroke", sender=WA_FORM),
                   "Budi Santoso")
    for text in ("Ratna Kusumawati", "anak", "0813 5555 1212"):
        await whatsapp(mia, text_message(text, sender=WA_FORM), "Budi Santoso")
    await whatsapp(mia, text_message("saya mau bicara dengan petugas", sender=WA_HANDOFF), "Yanti Marlina")
    await whatsapp(mia, text_message("lahat", sender=WA_HANDOFF), "Yanti Marlina")
    for _ in range(100):
        if mia.staff_sender.sent:
            break
        await asyncio.sleep(0.05)
    await mia.desk.handle(StaffEvent("telegram", "-1002", "s1", "9001", "Petugas Rina", "reply", reply_to="1",
                                     text="Bawa KTP ya Bu"))
    await asyncio.sleep(0.5)
    status = {"id": "wamid.OUT1", "status": "delivered", "timestamp": str(int(time.time())),
              "recipient_id": WA_HANDOFF}
    raw, headers = signed(update(statuses=[status]))
    async with httpx.AsyncClient(base_url=mia.web_url) as http:
        assert (await http.post("/whatsapp/webhook", content=raw, headers=headers)).status_code == 200
    # The web: one form abandoned, one confirmed (an open request).
    async with httpx.AsyncClient(base_url=mia.web_url, timeout=30) as browser:
        await web(browser, "tolong petugas datang ke rumah, ibu sy sakit stroke")
        for text in ("Hendra Wijaya", "anak", "0857 7777 3434"):
            await web(browser, text)
    async with httpx.AsyncClient(base_url=mia.web_url, timeout=30) as browser:
        await web(browser, "tolong petugas datang ke rumah, ibu sy sakit stroke")
        for text in ("Dewi Lestari", "anak", "0821 4444 6565", "Jl. Kenanga Sebelas No. 5", "lahat", "stroke",
                     "Senin"):
            await web(browser, text)
        assert "RKT-" in await web(browser, "Ya, kirim")
    await asyncio.sleep(1.0)  # the staff notifications leave
    db_path = mia.settings.mia_db_path
    assert found(db_path) == SECRETS  # the scan sees them before the purge

    move_time(db_path, (mia.settings.mia_retention_days + 1) * 86400)
    env = dict(os.environ, MIA_DB_PATH=str(db_path))
    purge = subprocess.run(mia_command() + ["db", "purge"], capture_output=True, text=True, cwd=ROOT, env=env)
    assert purge.returncode == 0, purge.stdout + purge.stderr
    assert found(db_path) == []  # MIA still running, its files as they are
    with sqlite3.connect(db_path) as db:
        for table in ("conversations", "turns", "web_messages", "processed_messages", "whatsapp_contacts",
                      "whatsapp_statuses", "whatsapp_inbox", "staff_messages", "outbox"):
            assert db.execute(f"SELECT count(*) FROM {table}").fetchone()[0] == 0, table
        assert db.execute("SELECT fields, chat_id, office FROM callback_requests").fetchall() == [
            ("{}", "", "muaraenim")]  # the request stays counted, without the citizen
    await mia.stop()
    assert found(db_path) == []
