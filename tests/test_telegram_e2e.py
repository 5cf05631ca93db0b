"""End to end on Telegram: the real PTB Application polling a local Bot API server over HTTP.

Each scenario asserts what the citizen's chat and the staff chat show.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import time

import httpx
import pytest

from bot.app import MiaApp
from bot.runtime.config import Settings
from tests.conftest import ROOT, mia_command
from tests.fakes.botapi import BOT, BotApiServer

CITIZEN = 501
OTHER_CITIZEN = 502
STAFF_PLG = -1001
STAFF_MRE = -1002
STAFF_USER = 9001


@pytest.fixture
def botapi():
    server = BotApiServer().start()
    yield server
    server.stop()


def settings_for(botapi: BotApiServer, db_path) -> Settings:
    return Settings(
        _env_file=None,
        telegram_bot_token="123456:TEST-TOKEN",
        telegram_api_base_url=f"{botapi.url}/bot",
        mia_db_path=db_path,
        mia_staff_telegram_chats=f"palembang:{STAFF_PLG},muaraenim:{STAFF_MRE}",
        mia_outbox_poll_seconds=0.1,
        mia_outbox_max_backoff_seconds=0.5,
        telegram_poll_timeout_seconds=1,
        mia_web_enabled=False,
    )


class World:
    """The tests' hands on the Bot API server: users type and press; chats are read back."""

    def __init__(self, botapi: BotApiServer):
        self.http = httpx.AsyncClient(base_url=botapi.url, timeout=10)

    async def send(self, chat_id: int, text: str | None = None, user_id: int | None = None, **extra) -> dict:
        body = {"chat_id": chat_id, **extra}
        if text is not None:
            body["text"] = text
        if user_id is not None:
            body["user_id"] = user_id
        return (await self.http.post("/_test/send", json=body)).json()

    async def press(self, chat_id: int, message: dict, title: str, user_id: int | None = None) -> dict:
        data = next(b["callback_data"] for row in message["reply_markup"]["inline_keyboard"] for b in row
                    if b["text"] == title)
        return await self.press_data(chat_id, message["message_id"], data, user_id)

    async def press_data(self, chat_id: int, message_id: int, data: str, user_id: int | None = None) -> dict:
        body = {"chat_id": chat_id, "message_id": message_id, "data": data}
        if user_id is not None:
            body["user_id"] = user_id
        return (await self.http.post("/_test/press", json=body)).json()

    async def bot_messages(self, chat_id: int) -> list[dict]:
        messages = (await self.http.get("/_test/messages", params={"chat_id": chat_id})).json()
        return [m for m in messages if m.get("from", {}).get("id") == BOT["id"]]

    async def info(self) -> dict:
        return (await self.http.get("/_test/info")).json()

    async def wait_bot(self, chat_id: int, count: int, timeout: float = 10.0) -> list[dict]:
        """Wait until the chat holds at least `count` bot messages; return them all."""
        deadline = time.monotonic() + timeout
        while True:
            messages = await self.bot_messages(chat_id)
            if len(messages) >= count:
                return messages
            if time.monotonic() > deadline:
                raise AssertionError(f"chat {chat_id}: {len(messages)} bot messages, expected {count}: "
                                     f"{[m['text'][:80] for m in messages]}")
            await asyncio.sleep(0.05)

    async def say(self, chat_id: int, text: str, timeout: float = 10.0) -> dict:
        """The citizen types; returns MIA's last new message once MIA has answered."""
        before = len(await self.bot_messages(chat_id))
        await self.send(chat_id, text)
        await self.wait_bot(chat_id, before + 1, timeout)
        await asyncio.sleep(0.15)  # MIA may send a second message (e.g. the next question)
        return (await self.bot_messages(chat_id))[-1]

    async def tap(self, chat_id: int, message: dict, title: str) -> dict:
        before = len(await self.bot_messages(chat_id))
        await self.press(chat_id, message, title)
        await self.wait_bot(chat_id, before + 1)
        await asyncio.sleep(0.15)
        return (await self.bot_messages(chat_id))[-1]

    async def close(self) -> None:
        await self.http.aclose()


@pytest.fixture
async def world(botapi):
    w = World(botapi)
    yield w
    await w.close()


@pytest.fixture
async def mia(botapi, db_path):
    app = MiaApp(settings_for(botapi, db_path))
    await app.start()
    yield app
    await app.stop()


async def updates_with_data(world: World, data: str) -> list[int]:
    """Ids of the button presses carrying `data` (from the server's record of presses)."""
    return [int(u) for u in (await world.http.get("/_test/updates", params={"data": data})).json()]


def buttons(message: dict) -> list[str]:
    return [b["text"] for row in message.get("reply_markup", {}).get("inline_keyboard", []) for b in row]


async def fill_request(world: World, chat_id: int = CITIZEN) -> tuple[str, dict]:
    """A whole Lapor Rakit request through typed answers and buttons; returns (ref, confirmation)."""
    first = await world.say(chat_id, "tolong petugas datang ke rumah, ibu sy sakit stroke mau bikin paspor")
    assert "nama lengkap pemohon" in first["text"].lower()
    relation_q = await world.say(chat_id, "Siti Aminah")
    assert "Anak" in buttons(relation_q)
    phone_q = await world.tap(chat_id, relation_q, "Anak")  # a button, handled like typed text
    assert "telepon" in phone_q["text"].lower()
    await world.say(chat_id, "0812 3456 7890")
    await world.say(chat_id, "Jl. Merdeka No. 5 RT 02 <b>Pasar</b> Lama")
    await world.say(chat_id, "lahat")
    day_q = await world.say(chat_id, "stroke, tidak bisa berjalan")
    summary = await world.tap(chat_id, day_q, "Senin")
    assert "Siti Aminah" in summary["text"] and buttons(summary) == ["Ya, kirim", "Ubah", "Batal"]
    done = await world.tap(chat_id, summary, "Ya, kirim")
    ref = re.search(r"RKT-\d{4}-\d{6}", done["text"]).group(0)
    return ref, done


async def test_commands_registered_and_office_question(mia, world):
    info = await world.info()
    assert {c["command"] for c in info["commands"]} >= {"start", "menu", "batal", "petugas", "status"}
    reply = await world.say(CITIZEN, "min sy dr lahat mau bikin paspor ke kantor mana ya")
    assert "Kantor Imigrasi Kelas II Non TPI Muaraenim" in reply["text"]
    bold = [reply["text"][e["offset"]:e["offset"] + e["length"]] for e in reply.get("entities", [])
            if e["type"] == "bold"]
    assert bold == ["Kantor Imigrasi Kelas II Non TPI Muaraenim"]  # shown in bold, no markup visible
    assert "Jam pelayanan" in buttons(reply)
    pressed = await world.tap(CITIZEN, reply, "Jam pelayanan")
    assert "Jam layanan" in pressed["text"]


async def test_lapor_rakit_request_claimed_and_closed(mia, world):
    ref, done = await fill_request(world)
    assert f"/status {ref}" in done["text"]
    # Announced in the staff chat of the office serving Lahat (Muaraenim), not Palembang's.
    [notice] = await world.wait_bot(STAFF_MRE, 1)
    assert ref in notice["text"] and "Siti Aminah" in notice["text"] and "+6281234567890" in notice["text"]
    # The citizen's "<b>" is shown as typed, never interpreted as markup.
    assert "<b>Pasar</b>" in notice["text"]
    assert all("Pasar" not in notice["text"][e["offset"]:e["offset"] + e["length"]]
               for e in notice.get("entities", []))
    assert buttons(notice) == ["Ambil", "Selesai"]
    assert await world.bot_messages(STAFF_PLG) == []

    before = len(await world.bot_messages(CITIZEN))
    await world.press(STAFF_MRE, notice, "Ambil", user_id=STAFF_USER)
    told = await world.wait_bot(CITIZEN, before + 1)
    assert "sudah diambil" in told[-1]["text"] and ref in told[-1]["text"]
    for _ in range(100):
        [notice] = await world.bot_messages(STAFF_MRE)
        if "DIAMBIL" in notice["text"]:
            break
        await asyncio.sleep(0.05)
    assert "DIAMBIL" in notice["text"] and buttons(notice) == ["Selesai"]
    assert f"User{STAFF_USER}" in notice["text"]  # who claimed it

    await world.press(STAFF_MRE, notice, "Selesai", user_id=STAFF_USER)
    told = await world.wait_bot(CITIZEN, before + 2)
    assert "selesai" in told[-1]["text"].lower()
    [request] = await mia.store.list_requests()
    assert request.status == "done" and request.claimed_by and request.done_by and request.done_at


async def test_restart_mid_form_continues(botapi, world, db_path):
    app = MiaApp(settings_for(botapi, db_path))
    await app.start()
    await world.say(CITIZEN, "tolong petugas datang ke rumah, bapak sy sakit")
    await world.say(CITIZEN, "Ahmad Yani")
    await app.stop()

    again = MiaApp(settings_for(botapi, db_path))
    await again.start()
    try:
        reply = await world.say(CITIZEN, "anak")
        assert "telepon" in reply["text"].lower()
    finally:
        await again.stop()


async def test_redelivered_update_gets_no_second_answer_nor_request(mia, world):
    ref, _ = await fill_request(world)
    count = len(await world.bot_messages(CITIZEN))
    # Telegram delivers the update that confirmed the request again (a lost acknowledgement).
    confirm_update = max(u for u in await updates_with_data(world, "say:Ya, kirim"))
    await world.http.post("/_test/redeliver", json={"update_id": confirm_update})
    await asyncio.sleep(1.0)
    assert len(await world.bot_messages(CITIZEN)) == count  # no second answer
    requests = await mia.store.list_requests()
    assert [r.ref for r in requests] == [ref]  # no second request

    sent = await world.send(CITIZEN, "biaya paspor brp")
    await world.wait_bot(CITIZEN, count + 1)
    await world.http.post("/_test/redeliver", json={"update_id": sent["update_id"]})
    await asyncio.sleep(1.0)
    assert len(await world.bot_messages(CITIZEN)) == count + 1


async def test_staff_chat_down_then_back_gets_everything_in_order(mia, world):
    await world.http.post("/_test/fail", json={"chat_id": STAFF_MRE, "code": 502})
    ref1, _ = await fill_request(world, CITIZEN)
    ref2, _ = await fill_request(world, OTHER_CITIZEN)
    await asyncio.sleep(1.5)
    assert await world.bot_messages(STAFF_MRE) == []  # nothing got through, nothing was dropped
    await world.http.post("/_test/fail", json={"chat_id": STAFF_MRE, "code": 429, "retry_after": 1})
    await asyncio.sleep(0.5)
    await world.http.post("/_test/fail", json={"chat_id": STAFF_MRE})
    notices = await world.wait_bot(STAFF_MRE, 2, timeout=15)
    assert len(notices) == 2
    assert ref1 in notices[0]["text"] and ref2 in notices[1]["text"]


async def test_outsiders_cannot_act_on_requests(mia, world):
    ref, _ = await fill_request(world)
    [notice] = await world.wait_bot(STAFF_MRE, 1)
    # A citizen forges the staff button's data on a message in their own chat.
    await world.send(OTHER_CITIZEN, "halo")
    greeting = (await world.wait_bot(OTHER_CITIZEN, 1))[-1]
    await world.press_data(OTHER_CITIZEN, greeting["message_id"], f"claim:{ref}", user_id=OTHER_CITIZEN)
    # Palembang's staff chat tries to claim a request of the Muaraenim office.
    await world.send(STAFF_PLG, "cek", user_id=STAFF_USER)
    plg_msg = (await world.http.get("/_test/messages", params={"chat_id": STAFF_PLG})).json()[-1]
    await world.press_data(STAFF_PLG, plg_msg["message_id"], f"claim:{ref}", user_id=STAFF_USER)
    await asyncio.sleep(1.0)
    answers = (await world.info())["callback_answers"]
    refusals = [a for a in answers if a.get("show_alert")]
    assert len(refusals) == 2
    assert any("hanya untuk grup petugas" in a["text"] for a in refusals)
    assert any("tidak ditemukan untuk kantor ini" in a["text"] for a in refusals)
    [request] = await mia.store.list_requests()
    assert request.status == "open" and request.claimed_by is None


async def test_handoff_with_relayed_staff_reply(mia, world):
    ask = await world.say(CITIZEN, "saya mau bicara dengan petugas")
    assert "kabupaten/kota" in ask["text"].lower()
    started = await world.say(CITIZEN, "lahat")
    assert "diteruskan ke petugas" in started["text"]
    [notice] = await world.wait_bot(STAFF_MRE, 1)
    assert "minta bicara dengan petugas" in notice["text"] and "Lahat" in notice["text"]

    count = len(await world.bot_messages(CITIZEN))
    await world.send(CITIZEN, "paspor saya hilang <script>")
    relayed = await world.wait_bot(STAFF_MRE, 2)
    assert "paspor saya hilang <script>" in relayed[-1]["text"]
    await asyncio.sleep(0.3)
    assert len(await world.bot_messages(CITIZEN)) == count  # MIA stays silent during the handoff

    await world.send(STAFF_MRE, "Silakan datang dengan KTP ya Bu", user_id=STAFF_USER,
                     reply_to_message_id=notice["message_id"])
    got = await world.wait_bot(CITIZEN, count + 1)
    assert "Silakan datang dengan KTP ya Bu" in got[-1]["text"] and got[-1]["text"].startswith("Petugas")

    await world.send(STAFF_MRE, "/selesai", user_id=STAFF_USER, reply_to_message_id=notice["message_id"])
    got = await world.wait_bot(CITIZEN, count + 2)
    assert "MIA kembali" in got[-1]["text"]
    back = await world.say(CITIZEN, "biaya paspor brp")
    assert "Rp350.000" in back["text"]


async def test_stickers_and_locations_get_honest_replies(mia, world):
    await world.send(CITIZEN, sticker=True)
    [reply] = await world.wait_bot(CITIZEN, 1)
    assert "pesan teks" in reply["text"]
    await world.send(CITIZEN, location={"latitude": -3.8, "longitude": 103.5})
    replies = await world.wait_bot(CITIZEN, 2)
    assert "lokasi" in replies[-1]["text"].lower() and "kabupaten/kota" in replies[-1]["text"].lower()


def test_mia_run_serves_telegram_as_a_process(botapi, tmp_path):
    env = dict(os.environ, TELEGRAM_BOT_TOKEN="123456:TEST-TOKEN", TELEGRAM_API_BASE_URL=f"{botapi.url}/bot",
               MIA_DB_PATH=str(tmp_path / "run.db"), MIA_STAFF_TELEGRAM_CHATS=f"muaraenim:{STAFF_MRE}",
               TELEGRAM_POLL_TIMEOUT_SECONDS="1", MIA_WEB_PORT="0")
    proc = subprocess.Popen(mia_command() + ["run"], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        async def scenario():
            world = World(botapi)
            try:
                reply = await world.say(CITIZEN, "kantor imigrasi utk oki dimana", timeout=30)
                assert "Kantor Imigrasi Kelas I TPI Palembang" in reply["text"]
            finally:
                await world.close()

        asyncio.run(scenario())
    finally:
        proc.terminate()
        output = proc.communicate(timeout=20)[0]
    assert proc.returncode == 0, output
    assert "TEST-TOKEN" not in output  # the token never reaches the logs


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def test_webhook_mode_checks_the_secret_token(botapi, world, db_path):
    port = _free_port()
    settings = settings_for(botapi, db_path).model_copy(update={
        "telegram_webhook_url": f"http://127.0.0.1:{port}/telegram",
        "telegram_webhook_secret": __import__("pydantic").SecretStr("s3cret-Token_1"),
        "mia_web_port": port,  # the webhook is a route of MIA's own web server
    })
    app = MiaApp(settings)
    await app.start()
    try:
        info = await world.info()
        assert info["webhook"]["url"] == f"http://127.0.0.1:{port}/telegram"
        assert info["webhook"]["secret_token"] == "s3cret-Token_1"
        update = {"update_id": 77, "message": {"message_id": 1, "date": int(time.time()), "text": "biaya paspor brp",
                                               "chat": {"id": CITIZEN, "type": "private", "first_name": "W"},
                                               "from": {"id": CITIZEN, "is_bot": False, "first_name": "W"}}}
        async with httpx.AsyncClient() as http:
            forged = await http.post(f"http://127.0.0.1:{port}/telegram", json=update,
                                     headers={"X-Telegram-Bot-Api-Secret-Token": "wrong"})
            assert forged.status_code == 403
            await asyncio.sleep(0.5)
            assert await world.bot_messages(CITIZEN) == []
            # Malformed bodies, even with the right secret, are refused and answer nothing.
            secret = {"X-Telegram-Bot-Api-Secret-Token": "s3cret-Token_1"}
            broken = await http.post(f"http://127.0.0.1:{port}/telegram", content=b'{"update_id": 78, "mess',
                                     headers={**secret, "Content-Type": "application/json"})
            not_json = await http.post(f"http://127.0.0.1:{port}/telegram", content=b"update_id=79",
                                       headers={**secret, "Content-Type": "application/x-www-form-urlencoded"})
            huge = await http.post(f"http://127.0.0.1:{port}/telegram", content=b"x" * 2_000_000,
                                   headers={"X-Telegram-Bot-Api-Secret-Token": "wrong",
                                            "Content-Type": "application/json"})
            # Only the secret's holder (Telegram) gets as far as the body; nothing is answered or stored.
            assert broken.status_code == 400 and not_json.status_code == 415 and huge.status_code == 403
            assert await app.store.inbox_pending("telegram") == []
            await asyncio.sleep(0.3)
            assert await world.bot_messages(CITIZEN) == []
            real = await http.post(f"http://127.0.0.1:{port}/telegram", json=update, headers=secret)
            assert real.status_code == 200
        [reply] = await world.wait_bot(CITIZEN, 1)
        assert "Rp350.000" in reply["text"]
        async with httpx.AsyncClient() as http:  # Telegram sends it again (it missed the 200): kept once
            again = await http.post(f"http://127.0.0.1:{port}/telegram", json=update, headers=secret)
        assert again.status_code == 200
        await asyncio.sleep(0.5)
        assert len(await world.bot_messages(CITIZEN)) == 1
        assert await app.store.inbox_pending("telegram") == []  # handled, nothing left for another worker
    finally:
        await app.stop()


async def test_a_restart_in_webhook_mode_handles_what_the_last_run_kept(botapi, world, db_path):
    """The last run kept an update (its 200 went to Telegram) and died before handling it: the next
    start of the same worker answers it at once, not after the orphans' 20 s."""
    from bot.store.sqlite import SQLiteStore

    update = {"update_id": 91, "message": {"message_id": 1, "date": int(time.time()), "text": "biaya paspor brp",
                                           "chat": {"id": CITIZEN, "type": "private", "first_name": "W"},
                                           "from": {"id": CITIZEN, "is_bot": False, "first_name": "W"}}}
    store = SQLiteStore(db_path)
    await store.open()
    assert await store.inbox_add("telegram", "91", str(CITIZEN), json.dumps(update))
    await store.close()
    port = _free_port()
    app = MiaApp(settings_for(botapi, db_path).model_copy(update={
        "telegram_webhook_url": f"http://127.0.0.1:{port}/telegram", "mia_web_port": port,
        "telegram_webhook_secret": __import__("pydantic").SecretStr("s3cret-Token_1")}))
    started = time.monotonic()
    await app.start()
    try:
        [reply] = await world.wait_bot(CITIZEN, 1, timeout=10)
        assert "Rp350.000" in reply["text"] and time.monotonic() - started < 10
    finally:
        await app.stop()


async def test_an_unsure_message_gets_a_menu_and_the_tap_labels_it(mia, world):
    menu = await world.say(CITIZEN, "bagaimana dengan paspor lama saya")
    options = buttons(menu)
    assert "Maksud Anda" in menu["text"] and options[-1] == "Bicara dengan petugas" and len(options) >= 3
    answer = await world.tap(CITIZEN, menu, options[0])
    assert "Maksud Anda" not in answer["text"]
    [row] = await mia.store.review_items()
    assert row["kind"] == "menu_choice" and row["chosen"]


async def test_feedback_pair_sits_on_its_own_row_and_not_helpful_offers_more(mia, world):
    answer = await world.say(CITIZEN, "syarat bikin paspor apa aja")
    rows = [[b["text"] for b in row] for row in answer["reply_markup"]["inline_keyboard"]]
    assert rows[-1] == ["👍 Membantu", "👎 Tidak membantu"]
    sorry = await world.tap(CITIZEN, answer, "👎 Tidak membantu")
    assert "belum membantu" in sorry["text"] and "Bicara dengan petugas" in buttons(sorry)
    [row] = await mia.store.review_items()
    assert row["kind"] == "not_helpful" and row["answered"] == "passport_requirements"
