"""Hostile requests and platform quirks (issue 13's low findings): security headers, clean 4xx
answers instead of 500s, malformed and replayed WhatsApp updates, the rate limit's message."""

from __future__ import annotations

import asyncio
import re
import sqlite3
import time

import httpx
import pytest

from bot.app import MiaApp
from tests.fakes.recording import RecordingSender
from tests.test_whatsapp import graph  # noqa: F401 - the fake Graph API fixture
from tests.test_whatsapp import CITIZEN, VERIFY, shown_text, signed, text_message, update, whatsapp_settings


@pytest.fixture
async def mia(graph, db_path):
    """MIA with the web chat and the WhatsApp webhook on one server, a low rate limit."""
    settings = whatsapp_settings(db_path, graph.url).model_copy(update={"mia_web_enabled": True,
                                                                         "mia_rate_limit": 3})
    app = MiaApp(settings)
    await app.start()
    app.worker.senders["telegram"] = RecordingSender()
    async with httpx.AsyncClient(base_url=app.web_url, timeout=30) as http:
        app.http = http
        yield app
    await app.stop()


async def post_whatsapp(mia, body: dict) -> httpx.Response:
    raw, headers = signed(body)
    return await mia.http.post("/whatsapp/webhook", content=raw, headers=headers)


async def settle(graph, timeout: float = 5.0, quiet: float = 0.5) -> list[dict]:
    """What the Graph API received once nothing more has arrived for `quiet` seconds."""
    deadline = time.monotonic() + timeout
    seen = -1
    while len(graph.sent) != seen and time.monotonic() < deadline:
        seen = len(graph.sent)
        await asyncio.sleep(quiet)
    return graph.sent



# -- the web page and API ---------------------------------------------------------------------


async def test_page_and_api_send_security_headers(mia):
    for path in ("/", "/api/messages", "/static/app.js"):
        headers = (await mia.http.get(path)).headers
        csp = headers.get("content-security-policy", "")
        assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp, (path, csp)
        assert headers.get("x-content-type-options") == "nosniff"
        assert headers.get("x-frame-options") == "DENY"


async def test_hostile_requests_get_a_clean_4xx(mia):
    http = mia.http
    assert (await http.post("/api/messages", json={"text": "halo"})).status_code == 200  # a session to read from
    deep = b'{"text": ' + b"[" * 5000 + b"]" * 5000 + b"}"
    cases = {
        "nested JSON": await http.post("/api/messages", content=deep, headers={"content-type": "application/json"}),
        "huge after": await http.get("/api/messages", params={"after": "99999999999999999999999"}),
        "huge negative after": await http.get("/api/messages", params={"after": "-99999999999999999999999"}),
        "lone surrogate": await http.post("/api/messages", content=b'{"text": "halo \\ud800"}',
                                          headers={"content-type": "application/json"}),
        "lone surrogate id": await http.post("/api/messages", content=b'{"text": "halo", "message_id": "\\udfff"}',
                                             headers={"content-type": "application/json"}),
        "non-ASCII signature": await http.post("/whatsapp/webhook", content=b"{}", headers={
            "X-Hub-Signature-256": "sha256=é".encode(), "content-type": "application/json"}),
        "non-ASCII verify token": await http.get("/whatsapp/webhook", params={
            "hub.mode": "subscribe", "hub.verify_token": "é" + VERIFY, "hub.challenge": "1"}),
    }
    assert {name: r.status_code for name, r in cases.items()} == {
        "nested JSON": 400, "huge after": 400, "huge negative after": 400, "lone surrogate": 400,
        "lone surrogate id": 400, "non-ASCII signature": 403, "non-ASCII verify token": 403}
    assert (await http.get("/api/messages")).status_code == 200  # and MIA carries on


# -- WhatsApp -------------------------------------------------------------------------------


async def test_a_message_without_id_does_not_cost_the_others_their_answer(mia, graph):
    body = update(text_message("biaya paspor brp", sender="6281200000001"))
    broken = text_message("halo", sender="6281200000002")
    del broken["id"]
    body["entry"][0]["changes"][0]["value"]["messages"] += [broken, text_message("biaya paspor brp",
                                                                                 sender="6281200000003")]
    assert (await post_whatsapp(mia, body)).status_code == 200
    sent = await settle(graph)
    assert sorted(b["to"] for b in sent) == ["6281200000001", "6281200000003"]


async def test_a_replayed_status_is_stored_once_and_cannot_close_a_fresh_window(mia, graph):
    failed = {"id": "wamid.OUT9", "status": "failed", "timestamp": str(int(time.time())), "recipient_id": CITIZEN,
              "errors": [{"code": 131047, "title": "Re-engagement message"}]}
    assert (await post_whatsapp(mia, update(statuses=[failed]))).status_code == 200
    await asyncio.sleep(0.3)
    assert (await post_whatsapp(mia, update(text_message("halo")))).status_code == 200  # the citizen writes again
    await settle(graph)
    assert (await post_whatsapp(mia, update(statuses=[failed]))).status_code == 200  # an attacker's replay
    await asyncio.sleep(0.5)
    with sqlite3.connect(mia.settings.mia_db_path) as db:
        assert db.execute("SELECT count(*) FROM whatsapp_statuses").fetchone()[0] == 1
    contact = await mia.store.whatsapp_contact(CITIZEN)
    assert time.time() - contact["last_inbound_at"] < 60  # the window the citizen opened stays open


async def test_a_timestamp_in_the_future_does_not_hold_the_window_open(mia, graph):
    message = text_message("halo")
    message["timestamp"] = str(int(time.time()) + 10 * 365 * 86400)
    assert (await post_whatsapp(mia, update(message))).status_code == 200
    await settle(graph)
    contact = await mia.store.whatsapp_contact(CITIZEN)
    assert contact["last_inbound_at"] <= time.time()


# -- the rate limit ---------------------------------------------------------------------------


async def test_the_slow_down_message_reaches_a_web_citizen_once(mia):
    bot_texts = []
    for n in range(6):
        r = await mia.http.post("/api/messages", json={"text": "biaya paspor brp", "message_id": f"m{n}"})
        bot_texts.append([m["text"] for m in r.json()["messages"] if m["role"] == "bot"])
    assert all("Rp350.000" in t[0] for t in bot_texts[:3])
    assert len(bot_texts[3]) == 1 and "terlalu cepat" in bot_texts[3][0]
    assert bot_texts[4:] == [[], []]
    transcript = (await mia.http.get("/api/messages")).json()["messages"]
    assert sum("terlalu cepat" in m["text"] for m in transcript) == 1


async def test_the_slow_down_message_reaches_a_whatsapp_citizen_once(mia, graph):
    for _ in range(6):
        assert (await post_whatsapp(mia, update(text_message("biaya paspor brp")))).status_code == 200
    texts = [shown_text(b) for b in await settle(graph, timeout=10)]
    assert len(texts) == 4 and all("Rp350.000" in t for t in texts[:3])
    assert "terlalu cepat" in texts[3]


# -- web sessions -----------------------------------------------------------------------------


async def handoff_on_the_web(mia) -> tuple[str, str]:
    """A web citizen asks for an officer; (the citizen's session key, what the staff chat read)."""
    await mia.http.post("/api/messages", json={"text": "saya mau bicara dengan petugas"})
    await mia.http.post("/api/messages", json={"text": "palembang"})
    staff = mia.worker.senders["telegram"]
    deadline = time.monotonic() + 10
    while not staff.sent:
        assert time.monotonic() < deadline, "no staff notification"
        await asyncio.sleep(0.05)
    return mia.http.cookies["mia_session"], staff.sent[0][1]["text"]


async def test_staff_never_see_the_session_key_and_what_they_see_is_no_login(mia):
    key, notice = await handoff_on_the_web(mia)
    assert "Kanal: web" in notice
    assert key[:8] not in notice and key[-8:] not in notice
    shown = re.search(r"chat (\w+)", notice).group(1)
    async with httpx.AsyncClient(base_url=mia.web_url, cookies={"mia_session": shown}) as other:
        r = await other.get("/api/messages")
        assert r.json()["messages"] == [] and r.cookies.get("mia_session") not in (None, shown)
    assert len((await mia.http.get("/api/messages")).json()["messages"]) >= 4  # the citizen's own transcript


async def test_session_keys_are_stored_hashed(mia):
    key, _ = await handoff_on_the_web(mia)
    db = mia.settings.mia_db_path
    stored = b"".join(p.read_bytes() for p in db.parent.iterdir() if p.name.startswith(db.name))
    assert key.encode() not in stored and key[:32].encode() not in stored and key[32:].encode() not in stored


@pytest.mark.parametrize("chosen", ["0" * 32, "a" * 64, "7727a013" * 8])
async def test_a_session_id_the_server_never_issued_gets_a_fresh_session(mia, chosen):
    async with httpx.AsyncClient(base_url=mia.web_url, cookies={"mia_session": chosen}) as browser:
        r = await browser.post("/api/messages", json={"text": "biaya paspor brp"})
        issued = r.cookies.get("mia_session")
        assert r.status_code == 200 and issued and issued != chosen
    async with httpx.AsyncClient(base_url=mia.web_url, cookies={"mia_session": chosen}) as attacker:
        assert (await attacker.get("/api/messages")).json()["messages"] == []
    async with httpx.AsyncClient(base_url=mia.web_url, cookies={"mia_session": issued}) as citizen:
        assert any("Rp350.000" in m["text"] for m in (await citizen.get("/api/messages")).json()["messages"])
