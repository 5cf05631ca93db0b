"""Abuse and failure, round 2 (issue 18): each finding as an attacker or a new operator met it."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import time

import httpx
import pytest

from bot.app import MiaApp
from bot.core.assistant import Assistant
from bot.channels.limits import RateLimiter
from bot.runtime.config import Settings
from bot.core.messages import Incoming, option_number, visible_text
from bot.core.privacy import mask, review_text
from tests.conftest import ROOT, mia_command
from tests.fakes.recording import RecordingSender

STAFF_PLG = "-1001"
HANDOFF = "saya mau bicara dengan petugas, saya tinggal di palembang"


def settings(db_path, **kw) -> Settings:
    base = dict(_env_file=None, mia_db_path=db_path, mia_web_port=0, mia_outbox_poll_seconds=0.05,
                mia_reload_enabled=False, mia_staff_telegram_chats=f"palembang:{STAFF_PLG},muaraenim:-1002")
    return Settings(**{**base, **kw})


@pytest.fixture
async def mia(db_path):
    app = MiaApp(settings(db_path, mia_web_new_sessions_per_minute=10, mia_web_trusted_proxies="127.0.0.1",
                          mia_web_reads_per_minute=30, mia_rate_limit=0))
    await app.start()
    app.web.tarpit_seconds = 0.0
    app.staff = RecordingSender()
    app.worker.senders["telegram"] = app.staff
    yield app
    await app.stop()


# 1. A second X-Forwarded-For line -------------------------------------------------------

async def test_a_forged_first_forwarded_line_does_not_escape_the_limit(mia):
    codes = []
    async with httpx.AsyncClient(base_url=mia.web_url) as http:
        for n in range(12):
            # The client's forged line comes first; the trusted proxy adds its own line after it.
            headers = [("X-Forwarded-For", f"198.51.100.{n}"), ("X-Forwarded-For", "203.0.113.50"),
                       ("Content-Type", "application/json")]
            r = await http.post("/api/messages", content=b'{"text": "halo"}', headers=headers)
            http.cookies.clear()
            codes.append(r.status_code)
    assert codes == [200] * 10 + [429, 429]


# 2. Reading the transcript has a limit ----------------------------------------------------

async def test_transcript_reads_are_limited_and_paged(mia):
    async with httpx.AsyncClient(base_url=mia.web_url) as http:
        await http.post("/api/messages", json={"text": "halo"})
        chat = next(iter({r for r in await _web_sessions(mia)}))
        async with mia.store.unit() as unit:
            for n in range(250):
                await unit.add_web_message(chat, "user", f"pesan {n}", [])
        first = (await http.get("/api/messages")).json()
        assert len(first["messages"]) == 200 and first["more"] is True
        rest = (await http.get("/api/messages", params={"after": first["messages"][-1]["id"]})).json()
        assert rest["more"] is False and rest["messages"][-1]["text"] == "pesan 249"
        codes = [(await http.get("/api/messages")).status_code for _ in range(30)]
    assert codes.count(429) >= 2 and codes[:20] == [200] * 20


async def _web_sessions(mia) -> list[str]:
    async with mia.store.unit() as unit:
        rows = await unit._call(lambda conn: conn.execute(
            "SELECT chat_id FROM conversations WHERE channel = 'web'").fetchall())
    return [r[0] for r in rows]


# 3. Staff chats cannot be flooded; the API is same-origin ----------------------------------

async def test_a_handoff_flood_is_held_and_summarised_and_a_real_request_still_arrives(mia):
    clients = [httpx.AsyncClient(base_url=mia.web_url, headers={"X-Forwarded-For": f"198.51.100.{n}"})
               for n in range(3)]
    try:
        for c in clients:
            r = await c.post("/api/messages", json={"text": HANDOFF})
            assert r.status_code == 200
        started = time.monotonic()
        for n in range(20):
            for c in clients:
                await c.post("/api/messages", json={"text": f"spam {n} " + "x" * 2900, "message_id": f"s{n}"})
        # Meanwhile a citizen on Telegram confirms a Lapor Rakit request for the Palembang office.
        request_at = time.monotonic()
        await _lapor_rakit(mia)
        while not any("RKT-" in p["text"] for _, p in mia.staff.sent):
            assert time.monotonic() - request_at < 10, "the request notice did not reach staff within 10 s"
            await asyncio.sleep(0.05)
        relayed = [p for chat, p in mia.staff.sent if chat == STAFF_PLG and "Pesan warga" in p["text"]]
        assert len(relayed) <= 6 and time.monotonic() - started < 60  # one staff chat: 6 a minute
        assert all(len(p["text"]) < 2200 for p in relayed)  # each relay cut to 1,500 characters
        sorry = (await clients[0].post("/api/messages", json={"text": "halo?", "message_id": "h"})).json()
        del sorry
        # The held messages are not lost: the conversation keeps them for the next relay.
        states = [await _state(mia, chat) for chat in await _web_sessions(mia)]
        held = [s.data["handoff"].get("held", {}).get("count", 0) for s in states if "handoff" in s.data]
        assert sum(held) >= 50
    finally:
        for c in clients:
            await c.aclose()


async def _state(mia, chat):
    async with mia.store.unit() as unit:
        return await unit.load_state("web", chat)


async def _lapor_rakit(mia) -> None:
    chat = "tg-501"
    answers = ["tolong petugas datang ke rumah, ibu saya stroke mau bikin paspor", "Siti Aminah", "Anak",
               "0812 3456 7890", "Jl. Merdeka No. 5", "palembang", "stroke", "Senin", "Ya, kirim"]
    for n, text in enumerate(answers):
        await mia.assistant.handle(Incoming("telegram", chat, text, f"{chat}-{n}"))


async def test_held_messages_reach_staff_as_a_summary_with_the_next_relay(assistant, store):
    assistant.staff_chats = {"palembang": ("telegram", STAFF_PLG)}
    now = time.time()
    await assistant.handle(Incoming("web", "c", HANDOFF, "0"))
    replies = []
    for n in range(6):
        replies.append(await assistant.handle(Incoming("web", "c", f"pesan ke-{n}", f"m{n}")))
    assert replies[3] == [] and "diteruskan sedikit demi sedikit" in replies[4][0].text and replies[5] == []
    state = await _load(store, "c")
    assert state.data["handoff"]["held"]["count"] == 2
    state.data["handoff"]["relayed"] = [now - 120]  # a minute later
    async with store.unit() as unit:
        await unit.save_state("web", "c", state)
    await assistant.handle(Incoming("web", "c", "masih ada orang?", "m9"))
    rows = await store.due_outbox(time.time() + 1, limit=100)
    last = rows[-1].payload["text"]
    assert "2 pesan sebelumnya ditahan" in last and '"pesan ke-4"' in last and "masih ada orang?" in last


async def _load(store, chat):
    async with store.unit() as unit:
        return await unit.load_state("web", chat)


async def test_cross_site_and_form_posts_are_refused(mia):
    async with httpx.AsyncClient(base_url=mia.web_url) as http:
        evil = await http.post("/api/messages", json={"text": HANDOFF}, headers={"Origin": "https://evil.example"})
        assert evil.status_code == 403
        form = await http.post("/api/messages", content=b'{"text": "halo"}', headers={"Content-Type": "text/plain"})
        assert form.status_code == 415
        own = await http.post("/api/messages", json={"text": "halo"}, headers={"Origin": mia.web_url})
        assert own.status_code == 200
    assert await _web_sessions(mia) == [next(iter(await _web_sessions(mia)))]  # only the page's own post stored


# 4. The store guard caps chats in progress too ------------------------------------------------

async def test_past_the_store_limit_an_open_chat_cannot_grow_without_end(mia):
    async with httpx.AsyncClient(base_url=mia.web_url) as http:
        assert (await http.post("/api/messages", json={"text": "halo"})).status_code == 200
        mia.web.guard.max_bytes = 1
        mia.web.guard._checked = float("-inf")
        codes = [(await http.post("/api/messages", json={"text": "y" * 3900, "message_id": f"b{n}"})).status_code
                 for n in range(40)]
    assert codes[0] == 200 and codes[-1] == 503 and codes.count(200) <= 18


# 5. "²" or "①" as a menu answer --------------------------------------------------------------

def test_superscript_and_circled_digits_are_no_option_numbers():
    assert option_number("2", 3) == 2 and option_number("2.", 3) == 2
    assert option_number("²", 3) is None and option_number("①", 3) is None and option_number("4", 3) is None


def test_the_console_survives_a_superscript_answer(tmp_path):
    env = dict(os.environ, MIA_DB_PATH=str(tmp_path / "c.db"))
    out = subprocess.run(mia_command() + ["chat"], input="bagaimana dengan paspor lama saya\n²\n①\nbiaya paspor\n",
                         capture_output=True, text=True, cwd=ROOT, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "Traceback" not in out.stderr and "Rp350.000" in out.stdout


# 6. A replayed WhatsApp body is stored once --------------------------------------------------

async def test_a_replayed_whatsapp_body_is_stored_once(store):
    async with store.unit() as unit:
        first = await unit.store_whatsapp_update('{"object": "whatsapp_business_account", "entry": []}')
    for _ in range(5):
        async with store.unit() as unit:
            assert await unit.store_whatsapp_update('{"object": "whatsapp_business_account", "entry": []}') is None
    assert first is not None and len(await store.pending_whatsapp_updates()) == 1


# 7. The limiter's memory ---------------------------------------------------------------------

async def test_limiter_state_and_held_refusals_are_bounded(mia):
    limiter = RateLimiter(10)
    for n in range(100_000):
        limiter.allow(f"10.{n >> 16}.{(n >> 8) & 255}.{n & 255}")
    assert len(limiter._seen) == 10_000
    mia.web.tarpit_seconds = 0.5
    mia.web.posts.limit = 1

    async def flood(address: str) -> int:
        # 600 first posts are each answered in full: on a slow machine the last wait longer than
        # httpx's 5 s default; what is asserted is the cap on held refusals, not the latency.
        async with httpx.AsyncClient(base_url=mia.web_url, headers={"X-Forwarded-For": address}, timeout=120) as http:
            return (await http.post("/api/messages", json={"text": "halo"})).status_code

    tasks = [asyncio.create_task(flood(f"198.18.{n // 250}.{n % 250}")) for n in range(600)]
    await asyncio.sleep(0.3)
    assert mia.web._held_total <= 256
    await asyncio.gather(*tasks)


# 8. Masking -----------------------------------------------------------------------------------

@pytest.mark.parametrize("written", ["0812/3456/7890", "0812,3456,7890", "0812_3456_7890", "0812–3456–7890",
                                     "0812 3456 7890", "+62 812-3456-7890"])
def test_phone_numbers_are_masked_however_written(written):
    assert "3456" not in mask(f"hubungi {written} ya") and "[telepon]" in mask(f"hubungi {written} ya")


def test_a_nik_in_groups_and_names_are_masked():
    assert mask("nik saya 3171 2345 6789 0001") == "nik saya [angka]"
    assert mask("jam 08.00-16.00, tgl 12/05/2024") == "jam 08.00-16.00, tgl 12/05/2024"
    kept = review_text("Nama saya Budi Santoso, atas nama ibu Siti Aminah", frozenset({"saya", "ibu"}),
                       ("Budi Santoso",))
    assert "budi" not in kept and "siti" not in kept and "aminah" not in kept and "[nama]" in kept


async def test_a_citizen_who_introduces_themselves_reaches_the_review_without_their_name(content, store):
    """"saya Siti Aminah mau tanya...": the name is masked in the unanswered log, so a review that
    confirms it as an example never writes it into an intents file; words MIA knows stay."""
    assistant = Assistant(content, store)
    for text in ("saya Siti Aminah mau tanya apakah bisa bawa kucing ke luar negeri",
                 "this is Budi Hartono, can my cat fly with me to Malaysia"):
        await assistant.handle(Incoming("web", "kucing-1", text, text[:40]))
    logged = " ".join(r["text"] for r in await store.unanswered_since(0.0))
    assert logged and "siti" not in logged and "aminah" not in logged and "hartono" not in logged
    assert "[nama]" in logged and "kucing" in logged
    assert review_text("Saya mau tanya paspor", content.matcher.vocab) == "saya mau tanya paspor"


# 9. Photos, voice notes, captions, reactions, invisible characters in a handoff -----------------

async def test_a_photo_in_a_handoff_is_named_to_staff_and_the_citizen_is_told(assistant, store):
    assistant.staff_chats = {"palembang": ("telegram", STAFF_PLG)}
    await assistant.handle(Incoming("whatsapp", "628111", HANDOFF, "0"))
    told = await assistant.handle(Incoming("whatsapp", "628111", "ini foto KTP ibu saya", "1", media="photo"))
    assert "foto tidak diteruskan" in told[0].text.lower() and "KTP" in told[0].text
    rows = await store.due_outbox(time.time() + 1, limit=10)
    assert "[foto tidak diteruskan] ini foto KTP ibu saya" in rows[-1].payload["text"]
    assert await assistant.handle(Incoming("whatsapp", "628111", "", "2", media="reaction")) == []
    await assistant.handle(Incoming("whatsapp", "628111", "\u202e0987-6543-2180\u200b\x00 nomor saya", "3"))
    last = (await store.due_outbox(time.time() + 1, limit=10))[-1].payload["text"]
    assert "\u202e" not in last and "\u200b" not in last and "\x00" not in last


async def test_a_caption_outside_a_handoff_is_read_and_a_reaction_gets_no_reply(assistant):
    replies = await assistant.handle(Incoming("telegram", "7", "biaya paspor berapa?", "1", media="photo"))
    assert "Rp350.000" in replies[0].text
    assert await assistant.handle(Incoming("whatsapp", "8", "", "2", media="reaction")) == []


def test_visible_text_keeps_what_people_read():
    assert visible_text("a\u202eb\u2067c\u200dd\x00e\nf\tg") == "abcde\nf\tg"
    assert visible_text("salam 🙏 paspor") == "salam 🙏 paspor"


# 10-12. A failed start exits at once, naming the cause in one line without secrets -------------

def _run(env_extra: dict, timeout: float = 30) -> tuple[subprocess.CompletedProcess, float]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TELEGRAM_", "WHATSAPP_"))}
    env.update(env_extra)
    started = time.monotonic()
    out = subprocess.run(mia_command() + ["run"], capture_output=True, text=True, cwd=ROOT, env=env,
                         timeout=timeout)
    return out, time.monotonic() - started


def test_mia_run_with_the_web_port_taken_exits_naming_it(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        out, seconds = _run({"MIA_DB_PATH": str(tmp_path / "a.db"), "MIA_WEB_PORT": str(port),
                             "MIA_RELOAD_ENABLED": "false"})
    assert out.returncode != 0 and seconds < 10 + 5  # plus the content load of a fresh process
    last = out.stderr.strip().splitlines()[-1]
    assert last.startswith("MIA cannot start:") and "MIA_WEB_PORT" in last and str(port) in last
    assert "Traceback" not in out.stderr


def test_mia_run_with_a_refused_token_or_no_bot_api_exits_without_the_secret(tmp_path):
    from tests.fakes.botapi import BotApiServer

    server = BotApiServer().start()
    token = "999999:REFUSED-SECRET-TOKEN-abcdef"
    server.state.refused_tokens.add(token)
    try:
        out, seconds = _run({"MIA_DB_PATH": str(tmp_path / "b.db"), "TELEGRAM_BOT_TOKEN": token,
                             "TELEGRAM_API_BASE_URL": f"{server.url}/bot", "MIA_WEB_ENABLED": "false",
                             "MIA_RELOAD_ENABLED": "false"})
    finally:
        server.stop()
    assert out.returncode != 0 and seconds < 15
    assert "REFUSED-SECRET" not in out.stderr + out.stdout
    assert out.stderr.strip().splitlines()[-1].startswith("MIA cannot start: Telegram refused the bot token")
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        dead = free.getsockname()[1]
    out, seconds = _run({"MIA_DB_PATH": str(tmp_path / "c.db"), "TELEGRAM_BOT_TOKEN": "123456:TEST-TOKEN-xyz",
                         "TELEGRAM_API_BASE_URL": f"http://127.0.0.1:{dead}/bot", "MIA_WEB_ENABLED": "false",
                         "MIA_RELOAD_ENABLED": "false"})
    assert out.returncode != 0 and seconds < 15
    last = out.stderr.strip().splitlines()[-1]
    assert last.startswith("MIA cannot start:") and "TELEGRAM_API_BASE_URL" in last and "TEST-TOKEN" not in last


@pytest.mark.parametrize("env, says", [
    ({"MIA_WEB_PORT": "eighty"}, "MIA_WEB_PORT must be a whole number (got 'eighty')"),
    ({"MIA_LOG_LEVEL": "LOUD"}, "MIA_LOG_LEVEL must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL"),
    ({"MIA_WEBPORT": "8081"}, "unknown setting MIA_WEBPORT (did you mean MIA_WEB_PORT?)"),
    ({"MIA_RATE_LIMIT": "-1"}, "MIA_RATE_LIMIT must be at least 0"),
])
def test_every_settings_error_is_one_sentence_naming_the_setting(env, says, tmp_path):
    out, _ = _run(env)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert f"MIA cannot start: {says}" in out.stderr


def test_an_unreadable_env_line_is_named(tmp_path):
    (tmp_path / ".env").write_text("MIA_WEB_PORT=8081\nMIA_LOG_LEVEL DEBUG\n", encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TELEGRAM_", "WHATSAPP_"))}
    out = subprocess.run(mia_command() + ["run"], capture_output=True, text=True, cwd=tmp_path, env=env, timeout=30)
    assert out.returncode == 2 and "MIA cannot start: .env line 2 is not NAME=value: 'MIA_LOG_LEVEL DEBUG'" in out.stderr


async def test_uvicorn_logs_go_through_the_masking_filters(db_path, caplog):
    app = MiaApp(settings(db_path))
    await app.start()
    try:
        config = app.web_server.server.config
        assert config.log_config is None  # no handler of uvicorn's own beside MIA's
    finally:
        await app.stop()


async def test_the_web_socket_says_tcp_so_replies_are_not_held_by_nagle(db_path):
    app = MiaApp(settings(db_path))
    await app.start()
    try:
        listening = app.web_server.server.servers[0].sockets[0]
        assert listening.proto == socket.IPPROTO_TCP  # asyncio then sets TCP_NODELAY on each connection
    finally:
        await app.stop()
