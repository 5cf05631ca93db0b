"""WhatsApp Cloud API: signed webhooks in, Graph API calls out (to a local fake), nothing lost."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
from collections import Counter

import httpx
import pytest

from bot.app import MiaApp
from bot.channels.whatsapp import render, split_text
from bot.runtime.config import Settings
from bot.runtime.staff import StaffEvent
from tests.fakes.graphapi import GraphApiServer
from tests.fakes.recording import RecordingSender

SECRET = "app-secret-123"
VERIFY = "verify-me"
CITIZEN = "6281234567890"


@pytest.fixture
def graph():
    server = GraphApiServer().start()
    yield server
    server.stop()




def whatsapp_settings(db_path, graph_url: str) -> Settings:
    return Settings(_env_file=None, mia_db_path=db_path, mia_web_port=0, mia_web_enabled=False,
                    mia_outbox_poll_seconds=0.1, mia_outbox_max_backoff_seconds=0.3,
                    mia_staff_telegram_chats="palembang:-1001,muaraenim:-1002",
                    whatsapp_verify_token=VERIFY, whatsapp_app_secret=SECRET, whatsapp_access_token="EAAG-token",
                    whatsapp_phone_number_id="1098765", whatsapp_api_base_url=graph_url)


@pytest.fixture
async def mia(graph, db_path):
    app = MiaApp(whatsapp_settings(db_path, graph.url))
    await app.start()
    app.staff_sender = RecordingSender()
    app.worker.senders["telegram"] = app.staff_sender
    yield app
    await app.stop()


_counter = iter(range(1, 10**6))


def update(message: dict | None = None, statuses: list | None = None, name: str = "Budi") -> dict:
    value: dict = {"messaging_product": "whatsapp",
                   "metadata": {"display_phone_number": "628111", "phone_number_id": "1098765"}}
    if message is not None:
        value["contacts"] = [{"profile": {"name": name}, "wa_id": message.get("from", CITIZEN),
                              "user_id": "ID.1234567890"}]
        value["messages"] = [message]
    if statuses is not None:
        value["statuses"] = statuses
    return {"object": "whatsapp_business_account", "entry": [{"id": "WABA1", "changes": [{"field": "messages",
                                                                                          "value": value}]}]}


def text_message(text: str, sender: str = CITIZEN, wamid: str | None = None) -> dict:
    return {"from": sender, "id": wamid or f"wamid.IN{next(_counter)}", "timestamp": str(int(time.time())),
            "type": "text", "text": {"body": text}}


def button_reply(payload: str, title: str, sender: str = CITIZEN) -> dict:
    return {"from": sender, "id": f"wamid.IN{next(_counter)}", "timestamp": str(int(time.time())),
            "type": "interactive", "interactive": {"type": "button_reply",
                                                   "button_reply": {"id": payload, "title": title}}}


def list_reply(payload: str, title: str, sender: str = CITIZEN) -> dict:
    return {"from": sender, "id": f"wamid.IN{next(_counter)}", "timestamp": str(int(time.time())),
            "type": "interactive", "interactive": {"type": "list_reply", "list_reply": {"id": payload, "title": title}}}


def signed(body: dict, secret: str = SECRET) -> tuple[bytes, dict]:
    raw = json.dumps(body).encode()
    signature = "sha256=" + hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()
    return raw, {"X-Hub-Signature-256": signature, "Content-Type": "application/json"}


async def post(mia, body: dict, secret: str = SECRET) -> httpx.Response:
    raw, headers = signed(body, secret)
    async with httpx.AsyncClient(base_url=mia.web_url) as http:
        return await http.post("/whatsapp/webhook", content=raw, headers=headers)


async def wait_sent(graph, count: int, timeout: float = 10.0) -> list[dict]:
    deadline = time.monotonic() + timeout
    while len(graph.sent) < count:
        if time.monotonic() > deadline:
            raise AssertionError(f"{len(graph.sent)} messages sent, expected {count}: {graph.sent}")
        await asyncio.sleep(0.05)
    return graph.sent


def shown_text(body: dict) -> str:
    if body["type"] == "text":
        return body["text"]["body"]
    if body["type"] == "interactive":
        return body["interactive"]["body"]["text"]
    return body["template"]["components"][0]["parameters"][0]["text"]


async def say(mia, graph, text: str) -> dict:
    before = len(graph.sent)
    assert (await post(mia, update(text_message(text)))).status_code == 200
    await wait_sent(graph, before + 1)
    await asyncio.sleep(0.2)
    return graph.sent[-1]


async def test_verify_token_handshake(mia):
    async with httpx.AsyncClient(base_url=mia.web_url) as http:
        ok = await http.get("/whatsapp/webhook", params={"hub.mode": "subscribe", "hub.verify_token": VERIFY,
                                                         "hub.challenge": "1158201444"})
        assert ok.status_code == 200 and ok.text == "1158201444"
        bad = await http.get("/whatsapp/webhook", params={"hub.mode": "subscribe", "hub.verify_token": "nope",
                                                          "hub.challenge": "x"})
        assert bad.status_code == 403


async def test_unsigned_and_wrongly_signed_updates_change_nothing(mia, graph):
    raw = json.dumps(update(text_message("halo"))).encode()
    async with httpx.AsyncClient(base_url=mia.web_url) as http:
        missing = await http.post("/whatsapp/webhook", content=raw, headers={"Content-Type": "application/json"})
        assert missing.status_code == 401
    wrong = await post(mia, update(text_message("halo")), secret="not-the-secret")
    assert wrong.status_code == 403
    await asyncio.sleep(0.5)
    assert graph.sent == []
    assert await mia.store.pending_whatsapp_updates() == []


async def test_text_gets_reply_buttons_and_a_button_press_answers(mia, graph):
    reply = await say(mia, graph, "kantor imigrasi utk lahat dmn")
    assert reply["to"] == CITIZEN and reply["type"] == "interactive"
    interactive = reply["interactive"]
    assert "Muaraenim" in interactive["body"]["text"]
    # "Alamat & kontak kantor" is longer than a reply button's 20 characters: a list is used.
    assert interactive["type"] == "list"
    rows = interactive["action"]["sections"][0]["rows"]
    assert [r["title"] for r in rows] == ["Jam pelayanan", "Alamat & kontak kantor", "Syarat paspor baru"]
    before = len(graph.sent)
    assert (await post(mia, update(list_reply(rows[0]["id"], rows[0]["title"])))).status_code == 200
    answer = (await wait_sent(graph, before + 1))[-1]
    assert "Jam layanan" in shown_text(answer)
    # The form's summary has three short buttons: reply buttons.
    summary_like = render("Sudah benar?", [{"title": t, "payload": t} for t in ("Ya, kirim", "Ubah", "Batal")])[0]
    assert summary_like[0]["interactive"]["type"] == "button"
    before = len(graph.sent)
    assert (await post(mia, update(button_reply("Biaya paspor", "Biaya paspor")))).status_code == 200
    assert "Rp350.000" in shown_text((await wait_sent(graph, before + 1))[-1])
    assert graph.auth[-1] == "Bearer EAAG-token"


async def test_duplicate_delivery_is_handled_once(mia, graph):
    message = text_message("biaya paspor brp", wamid="wamid.DUP1")
    assert (await post(mia, update(message))).status_code == 200
    await wait_sent(graph, 1)
    assert (await post(mia, update(message))).status_code == 200  # WhatsApp retries the same message
    await asyncio.sleep(1.0)
    assert len(graph.sent) == 1


async def test_lapor_rakit_over_whatsapp_with_a_list_and_staff_notified(mia, graph):
    first = await say(mia, graph, "tolong petugas datang ke rumah, ibu sy sakit stroke")
    assert "nama lengkap pemohon" in shown_text(first).lower()
    relation = await say(mia, graph, "Siti Aminah")
    assert relation["interactive"]["type"] == "list"  # six choices: more than three buttons
    rows = relation["interactive"]["action"]["sections"][0]["rows"]
    assert len(rows) <= 10 and all(len(r["title"]) <= 24 for r in rows)
    before = len(graph.sent)
    await post(mia, update(list_reply("Anak", "Anak")))
    phone_q = (await wait_sent(graph, before + 1))[-1]
    assert "telepon" in shown_text(phone_q).lower()
    for text in ("0812 3456 7890", "Jl. Merdeka No. 5 RT 02 Pasar Lama", "lahat", "stroke, tidak bisa berjalan",
                 "Senin"):
        summary = await say(mia, graph, text)
    assert "Siti Aminah" in shown_text(summary)
    before = len(graph.sent)
    await post(mia, update(button_reply("Ya, kirim", "Ya, kirim")))
    done = (await wait_sent(graph, before + 1))[-1]
    assert "RKT-" in shown_text(done)
    for _ in range(100):
        if mia.staff_sender.sent:
            break
        await asyncio.sleep(0.05)
    chat_id, notice = mia.staff_sender.sent[0]
    assert chat_id == "-1002" and "Kanal: whatsapp" in notice["text"]


async def test_status_131047_then_staff_reply_goes_as_template(mia, graph):
    await say(mia, graph, "saya mau bicara dengan petugas")
    await say(mia, graph, "baturaja")
    for _ in range(100):
        if mia.staff_sender.sent:
            break
        await asyncio.sleep(0.05)
    # WhatsApp reports that a message could not be delivered: the 24-hour window has closed.
    failed = {"id": "wamid.OUT1", "status": "failed", "timestamp": str(int(time.time())), "recipient_id": CITIZEN,
              "errors": [{"code": 131047, "title": "Re-engagement message"}]}
    assert (await post(mia, update(statuses=[failed]))).status_code == 200
    await asyncio.sleep(0.5)
    before = len(graph.sent)
    result = await mia.desk.handle(StaffEvent("telegram", "-1002", "s1", "9001", "Petugas Rina", "reply",
                                              reply_to="1", text="Silakan datang hari Senin"))
    assert result.ok
    sent = (await wait_sent(graph, before + 1))[-1]
    assert sent["type"] == "template" and sent["template"]["name"] == "mia_pemberitahuan"
    assert "Silakan datang hari Senin" in shown_text(sent)


async def test_staff_reply_is_relayed_to_whatsapp(mia, graph):
    await say(mia, graph, "saya mau bicara dengan petugas")
    started = await say(mia, graph, "lahat")
    assert "diteruskan ke petugas" in shown_text(started)
    before = len(graph.sent)
    await post(mia, update(text_message("paspor saya hilang")))
    await asyncio.sleep(0.5)
    assert len(graph.sent) == before  # MIA stays silent during the handoff
    relayed = [p for _, p in mia.staff_sender.sent if "paspor saya hilang" in p["text"]]
    assert relayed
    await mia.desk.handle(StaffEvent("telegram", "-1002", "s2", "9001", "Petugas Rina", "reply", reply_to="1",
                                     text="Bawa KTP ya Bu"))
    sent = (await wait_sent(graph, before + 1))[-1]
    assert sent["type"] == "text" and "Bawa KTP ya Bu" in sent["text"]["body"]


async def test_rate_limit_backs_off_and_delivers_later(mia, graph):
    await graph_fail(graph, CITIZEN, 130429)
    assert (await post(mia, update(text_message("biaya paspor brp")))).status_code == 200
    await asyncio.sleep(0.8)
    assert graph.sent == []
    await graph_fail(graph, CITIZEN, None)
    sent = (await wait_sent(graph, 1, timeout=10))[-1]
    assert "Rp350.000" in shown_text(sent)


async def graph_fail(graph, to: str, code: int | None) -> None:
    async with httpx.AsyncClient(base_url=graph.url) as http:
        await http.post("/_test/fail", json={"to": to, "code": code})


async def test_media_gets_text_only_reply(mia, graph):
    image = {"from": CITIZEN, "id": "wamid.IMG1", "timestamp": str(int(time.time())), "type": "image",
             "image": {"id": "m1", "mime_type": "image/jpeg"}}
    await post(mia, update(image))
    sent = (await wait_sent(graph, 1))[-1]
    assert "pesan teks" in shown_text(sent)


def test_render_rules():
    three = [{"title": f"Pilihan {i}", "payload": f"p{i}"} for i in range(3)]
    bodies, options = render("Pilih:", three)
    assert bodies[0]["interactive"]["type"] == "button" and options == []
    many = [{"title": f"Pilihan {i}", "payload": f"p{i}"} for i in range(8)]
    assert render("Pilih:", many)[0][0]["interactive"]["type"] == "list"
    long_titles = [{"title": "Judul yang sangat panjang sekali ya", "payload": f"p{i}"} for i in range(2)]
    bodies, options = render("Pilih:", long_titles)
    assert bodies[0]["type"] == "text" and "1. Judul" in bodies[0]["text"]["body"] and options == ["p0", "p1"]
    eleven = [{"title": f"P{i}", "payload": f"p{i}"} for i in range(11)]
    assert render("Pilih:", eleven)[1] == [f"p{i}" for i in range(11)]


def test_long_text_is_split_under_4096():
    text = ("Baris panjang tentang paspor. " * 40 + "\n") * 8
    parts = split_text(text)
    assert len(parts) >= 2 and all(len(p) <= 4096 for p in parts)
    assert "".join(p.replace("\n", "").replace(" ", "") for p in parts) == text.replace("\n", "").replace(" ", "")


async def test_numbered_answer_maps_to_the_option(mia, graph):
    # A reply with long button titles goes out as numbered text; "2" then stands for the second option.
    await mia.store.touch_whatsapp_contact(CITIZEN, time.time())
    await mia.store.set_whatsapp_options(CITIZEN, ["Syarat paspor baru", "Biaya paspor"])
    sent = await say(mia, graph, "2")
    assert "Rp350.000" in shown_text(sent)


async def test_an_unsure_message_gets_a_list_menu_and_the_choice_labels_it(mia, graph):
    menu = await say(mia, graph, "bagaimana dengan paspor lama saya")
    interactive = menu["interactive"]
    assert "Maksud Anda" in interactive["body"]["text"]
    rows = interactive["action"]["sections"][0]["rows"]  # three answers and an officer: a list
    assert interactive["type"] == "list" and rows[-1]["title"] == "Bicara dengan petugas" and len(rows) == 4
    before = len(graph.sent)
    assert (await post(mia, update(list_reply(rows[0]["id"], rows[0]["title"])))).status_code == 200
    answer = (await wait_sent(graph, before + 1))[-1]
    assert "Maksud Anda" not in shown_text(answer)
    [row] = await mia.store.review_items()
    assert row["kind"] == "menu_choice" and row["chosen"]


async def test_feedback_gives_way_to_an_answers_own_buttons(mia, graph):
    answer = await say(mia, graph, "syarat bikin paspor apa aja")
    shown = [b["reply"]["title"] for b in answer["interactive"]["action"]["buttons"]] \
        if answer["interactive"]["type"] == "button" else \
        [r["title"] for r in answer["interactive"]["action"]["sections"][0]["rows"]]
    assert shown == ["Paspor anak", "Perpanjang paspor", "Cara membuat paspor"]  # three: no room for feedback
    assert render("x", [{"title": t, "payload": t} for t in ("Biaya paspor", "👍 Membantu", "👎 Tidak membantu")]
                  )[0][0]["interactive"]["type"] == "button"


class ReadingAssistant:
    """Stands for the assistant: reads (the sentence model, before any transaction) every message it
    is handed, then claims it; what it read and what it answered are recorded."""

    def __init__(self, store, reads: list, answers: list):
        self.store, self.reads, self.answers = store, reads, answers

    async def handle_outcome(self, msg, record=None):
        self.reads.append(msg.message_id)
        await asyncio.sleep(0.3)  # understanding takes a while
        async with self.store.unit() as u:
            if await u.claim_and_load(msg.channel, msg.message_id, msg.chat_id) is None:
                return None
        self.answers.append(msg.message_id)
        return None


class IdleSender:
    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass


async def test_two_workers_each_read_only_the_bodies_they_kept_and_others_left_20_s(monkeypatch):
    """Each worker handles the bodies it stored at once; another worker's only when left unhandled for
    ORPHAN_SECONDS (the sweep): a message is read (the model's work) once, not once per worker."""
    from starlette.applications import Starlette

    import bot.channels.whatsapp as whatsapp
    from bot.store.postgres import PostgresStore
    from tests.test_store_contract import postgres_database

    monkeypatch.setattr(whatsapp, "ORPHAN_SECONDS", 0.6)
    async with postgres_database() as url:
        stores = [PostgresStore(url, worker=f"mia-{i}") for i in (1, 2)]
        reads, answers = [], []
        channels = []
        try:
            for s in stores:
                await s.open()
                channels.append(whatsapp.WhatsAppChannel(ReadingAssistant(s, reads, answers), IdleSender(),
                                                         VERIFY, SECRET))

            async def receive(channel, n: int) -> None:
                raw, headers = signed(update(text_message("syarat paspor", sender=f"6281{n}", wamid=f"wamid.W{n}")))
                transport = httpx.ASGITransport(app=Starlette(routes=channel.routes()))
                async with httpx.AsyncClient(transport=transport, base_url="http://mia") as http:
                    assert (await http.post("/whatsapp/webhook", content=raw, headers=headers)).status_code == 200

            await asyncio.gather(receive(channels[0], 1), receive(channels[1], 2))
            await asyncio.sleep(1.0)
            assert Counter(answers) == {"wamid.W1": 1, "wamid.W2": 1}
            assert Counter(reads) == {"wamid.W1": 1, "wamid.W2": 1}, f"read more than once: {Counter(reads)}"

            # Worker 1 keeps a body and dies before handling it: worker 2 takes it once it is left.
            await stores[0].add_whatsapp_update(json.dumps(update(text_message("halo", wamid="wamid.W3"))))
            await channels[1].start()
            await asyncio.sleep(0.3)
            assert "wamid.W3" not in reads  # not another worker's at once
            deadline = time.monotonic() + 5
            while "wamid.W3" not in answers and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            assert Counter(reads)["wamid.W3"] == Counter(answers)["wamid.W3"] == 1
            assert await stores[0].pending_whatsapp_updates() == []
        finally:
            for channel in channels:
                await channel.stop()
            for s in stores:
                await s.close()
