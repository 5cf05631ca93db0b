"""The staff desk on the web (/staff), as staff use it: chromium on the real server, accounts made
with the `mia staff` command, citizens in the web chat beside it.

Screenshots of the desk land in var/test-artifacts/ (and docs/ takes its pictures from there).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import subprocess
import time

import httpx
import pytest

from bot.app import MiaApp
from bot.runtime.config import Settings
from tests.conftest import ROOT, mia_command
from tests.test_web_e2e import CHROMIUM, ask, fill_visit_form, shot, tap
from tests.test_web_e2e import browser  # noqa: F401 - the browser fixture, shared

pytestmark = pytest.mark.skipif(not os.path.exists(CHROMIUM) and not os.environ.get("MIA_REQUIRE_BROWSER"),
                                reason="chromium is not installed (.ci/run installs it)")


def staff_add(db_path, name: str, office: str) -> str:
    """`mia staff add` as an administrator runs it; returns the token of the sign-in link it printed."""
    out = subprocess.run(mia_command() + ["staff", "add", name, "--office", office], capture_output=True,
                         text=True, cwd=ROOT, env=dict(os.environ, MIA_DB_PATH=str(db_path)), timeout=120)
    assert out.returncode == 0, out.stderr
    return re.search(r"/staff/masuk\?t=(\S+)", out.stdout).group(1)


@pytest.fixture
async def desk_app(db_path):
    tokens = {"palembang": staff_add(db_path, "Rina Palembang", "palembang"),
              "muaraenim": staff_add(db_path, "Dedi Muaraenim", "muaraenim")}
    app = MiaApp(Settings(_env_file=None, mia_db_path=db_path, mia_web_port=0, mia_outbox_poll_seconds=0.1))
    await app.start()
    app.tokens = tokens
    yield app
    await app.stop()


async def open_link(page, url: str, token: str) -> None:
    """What a staff member does with the sign-in link: open it, press "Masuk"."""
    await page.goto(f"{url}/staff/masuk?t={token}")
    await page.get_by_role("button", name="Masuk").click()


async def sign_in(browser, app, office: str):
    context = await browser.new_context(viewport={"width": 1280, "height": 800})
    page = await context.new_page()
    await open_link(page, app.web_url, app.tokens[office])
    await page.locator("#stats").wait_for()
    return page


async def wait_text(page, text: str, timeout: float = 2000) -> None:
    await page.locator("#threads").get_by_text(text).first.wait_for(timeout=timeout)


async def test_a_request_and_a_handoff_reach_the_right_desk_and_back(desk_app, browser):
    app = desk_app
    citizen = await (await browser.new_context()).new_page()
    await citizen.goto(app.web_url)
    await citizen.wait_for_selector(".msg.bot")
    muaraenim = await sign_in(browser, app, "muaraenim")
    palembang = await sign_in(browser, app, "palembang")
    assert "Dedi Muaraenim" in await muaraenim.locator("#who").inner_text()

    # A Lapor Rakit request from Gelumbang (Muara Enim): on Muaraenim's desk within 2 s.
    await fill_visit_form(citizen)
    done = await tap(citizen, "Ya, kirim")
    assert "petugas" in done.lower()
    ref = re.search(r"RKT-\d{4}-\d{6}", done).group(0)
    started = time.monotonic()
    await wait_text(muaraenim, ref)
    assert time.monotonic() - started < 2.0
    thread = muaraenim.locator(".thread", has_text=ref)
    assert "Siti Aminah" in await thread.inner_text()
    assert await muaraenim.locator("#waiting").inner_text() == "1"

    # Claimed and closed on the desk: the citizen reads both.
    await thread.get_by_role("button", name="Ambil").click()
    await citizen.locator(".log").get_by_text("Dedi Muaraenim").first.wait_for(timeout=5000)
    await muaraenim.locator(".thread", has_text=ref).locator(".badge.claimed").wait_for()
    await muaraenim.locator(".thread", has_text=ref).get_by_role("button", name="Selesai").click()
    await muaraenim.locator(".thread", has_text=ref).locator(".badge.done").wait_for()
    await citizen.locator(".msg.bot").filter(has_text=re.compile("selesai", re.I)).last.wait_for(timeout=5000)

    # A handoff: the citizen's words on the desk, the officer's reply in the citizen's chat.
    await ask(citizen, "saya mau bicara dengan petugas")
    await citizen.fill("#text", "bu, paspor ibu saya bisa diambil keluarga?")
    await citizen.press("#text", "Enter")
    await wait_text(muaraenim, "bisa diambil keluarga")
    conversation = muaraenim.locator(".thread", has_text="bisa diambil keluarga")
    await conversation.locator("textarea").fill("Bisa, Bu, dengan surat kuasa dan KTP asli.")
    await conversation.get_by_role("button", name="Kirim balasan").click()
    await citizen.locator(".log").get_by_text("dengan surat kuasa").first.wait_for(timeout=5000)
    await wait_text(muaraenim, "Dedi Muaraenim: Bisa, Bu")
    await shot(muaraenim, "desk-1280")
    await muaraenim.set_viewport_size({"width": 390, "height": 844})
    await shot(muaraenim, "desk-390")
    await conversation.get_by_role("button", name="Akhiri percakapan").click()
    await muaraenim.locator(".thread", has_text="bisa diambil keluarga").locator(".badge.ended").wait_for()

    # Palembang's desk never saw any of it, and cannot act on it.
    assert ref not in await palembang.locator("main").inner_text()
    assert "Siti Aminah" not in await palembang.locator("main").inner_text()
    result = await palembang.evaluate(
        """async (ref) => { const csrf = (await (await fetch('/staff/api/queue')).json()).csrf;
            const r = await fetch('/staff/api/act', {method: 'POST', headers: {'Content-Type': 'application/json',
              'X-CSRF-Token': csrf}, body: JSON.stringify({action: 'done', ref: ref})});
            return [r.status, await r.text()]; }""", ref)
    assert result[0] == 409 and "tidak ditemukan" in result[1]


async def test_without_a_valid_session_the_desk_shows_nothing_personal(desk_app, browser):
    app = desk_app
    # A request exists for Palembang (its data must not leak).
    async with app.store.unit() as unit:
        await unit.create_request("web", "c1", "palembang", "16.71", {"applicant_name": "Ahmad Rahasia"})
    for cookies in ({}, {"mia_staff": "forged-session-key-0123456789abcdef"}):
        async with httpx.AsyncClient(base_url=app.web_url, cookies=cookies) as client:
            queue = await client.get("/staff/api/queue")
            assert queue.status_code == 401 and "Ahmad" not in queue.text
            page = await client.get("/staff")
            assert page.status_code == 200 and "Ahmad" not in page.text and "RKT-" not in page.text
    async with httpx.AsyncClient(base_url=app.web_url) as client:
        spent = await client.post(f"/staff/masuk?t={'x' * 32}", headers={"Origin": app.web_url})
        assert spent.status_code == 303 and "invalid" in spent.headers["location"] and "set-cookie" not in spent.headers

    page = await sign_in(browser, app, "palembang")
    again = await (await browser.new_context()).new_page()  # the link was spent by the first sign-in
    await open_link(again, app.web_url, app.tokens["palembang"])
    await again.locator("#signin").wait_for()
    assert "tidak berlaku" in await again.locator("#notice").inner_text()

    # A cross-site post (another origin, or no CSRF token) is refused even with the session.
    cookies = await page.context.cookies()
    key = next(c["value"] for c in cookies if c["name"] == "mia_staff")
    async with httpx.AsyncClient(base_url=app.web_url, cookies={"mia_staff": key}) as client:
        csrf = (await client.get("/staff/api/queue")).json()["csrf"]
        ref = (await app.store.list_requests())[0].ref
        evil = await client.post("/staff/api/act", json={"action": "claim", "ref": ref},
                                 headers={"Origin": "https://evil.example", "X-CSRF-Token": csrf})
        assert evil.status_code == 403
        no_token = await client.post("/staff/api/act", json={"action": "claim", "ref": ref},
                                     headers={"Origin": app.web_url})
        assert no_token.status_code == 403
        form = await client.post("/staff/api/act", content=f"action=claim&ref={ref}",
                                 headers={"Origin": app.web_url, "X-CSRF-Token": csrf,
                                          "Content-Type": "application/x-www-form-urlencoded"})
        assert form.status_code == 415
    assert (await app.store.list_requests())[0].status == "open"

    # Signed out: the same cookie opens nothing any more.
    await page.get_by_role("button", name="Keluar").click()
    await page.locator("#signin").wait_for()
    async with httpx.AsyncClient(base_url=app.web_url, cookies={"mia_staff": key}) as client:
        assert (await client.get("/staff/api/queue")).status_code == 401


async def test_a_link_preview_or_another_site_does_not_spend_the_sign_in_link(desk_app, browser):
    """Chat apps fetch a link to preview it, scanners to check it: only the staff member's "Masuk" signs in."""
    link = f"/staff/masuk?t={desk_app.tokens['palembang']}"
    async with httpx.AsyncClient(base_url=desk_app.web_url) as bot:
        preview = await bot.get(link, headers={"User-Agent": "TelegramBot (like TwitterBot)"})
        assert preview.status_code == 200 and "Masuk" in preview.text and "set-cookie" not in preview.headers
        forged = await bot.post(link, headers={"Origin": "https://evil.example"})
        assert forged.status_code == 403 and "set-cookie" not in forged.headers
    page = await (await browser.new_context()).new_page()
    await page.goto(f"{desk_app.web_url}{link}")
    assert await page.get_by_role("button", name="Keluar").is_hidden()  # not signed in yet: nothing to leave
    await page.get_by_role("button", name="Masuk").click()
    await page.locator("#stats").wait_for()
    assert "Rina Palembang" in await page.locator("#who").inner_text()


# -- citizens on Telegram and WhatsApp, answered from the desk (the page's own API calls) ----------


class Desk:
    """The desk page's requests, as its script makes them, for one signed-in staff member."""

    def __init__(self, app, token: str):
        self.http = httpx.AsyncClient(base_url=app.web_url, headers={"Origin": app.web_url})
        self.token = token

    async def __aenter__(self):
        signed_in = await self.http.post(f"/staff/masuk?t={self.token}")
        assert signed_in.status_code == 303 and signed_in.headers["location"] == "/staff"
        return self

    async def __aexit__(self, *exc):
        await self.http.aclose()

    async def thread(self, text: str, timeout: float = 5.0) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            queue = (await self.http.get("/staff/api/queue")).json()
            found = [t for t in queue["threads"] if any(text in i["text"] for i in t["items"])]
            if found:
                return found[0] | {"csrf": queue["csrf"], "waiting": queue["waiting"]}
            assert time.monotonic() < deadline, f"{text!r} never reached the desk: {queue}"
            await asyncio.sleep(0.1)

    async def act(self, csrf: str, **body) -> httpx.Response:
        return await self.http.post("/staff/api/act", json=body, headers={"X-CSRF-Token": csrf})


async def test_the_desk_refuses_odd_requests_instead_of_failing(desk_app):
    """A signed-in desk's odd requests get a refusal it can show, never a server error."""
    async with Desk(desk_app, desk_app.tokens["palembang"]) as desk:
        csrf = (await desk.http.get("/staff/api/queue")).json()["csrf"]
        odd_token = await desk.http.post("/staff/api/act", json={"action": "claim", "ref": "RKT-2026-000001"},
                                         headers={"X-CSRF-Token": "tökén".encode()})
        assert odd_token.status_code == 403
        for body in (b'{"action": "claim", "ref": "\\ud800"}',
                     b'{"action": "reply", "reply_to": "1", "text": "\\ud800"}'):
            lone = await desk.http.post("/staff/api/act", content=body,
                                        headers={"X-CSRF-Token": csrf, "Content-Type": "application/json"})
            assert lone.status_code == 400, lone.text
        big = await desk.act(csrf, action="reply", reply_to="1", text="x" * 9000)
        assert big.status_code == 413


async def test_the_desks_refusals_say_why_in_indonesian_then_english(desk_app):
    """What the desk shows staff when it refuses an action (desk.js puts `error` in the notice)."""
    async with Desk(desk_app, desk_app.tokens["palembang"]) as desk:
        csrf = (await desk.http.get("/staff/api/queue")).json()["csrf"]
        claim = {"action": "claim", "ref": "RKT-2026-000001"}
        form = {"X-CSRF-Token": csrf, "Content-Type": "application/x-www-form-urlencoded"}
        refusals = {
            "Sesi ini sudah tidak berlaku": await desk.http.post("/staff/api/act", json=claim,
                                                                  headers={"X-CSRF-Token": "an-old-token"}),
            "Permintaan dari situs lain": await desk.http.post("/staff/api/act", json=claim, headers={
                "X-CSRF-Token": csrf, "Origin": "https://evil.example"}),
            "Permintaan harus berupa JSON": await desk.http.post("/staff/api/act", content="action=claim",
                                                                  headers=form),
            "Permintaan tidak dapat dibaca": await desk.http.post("/staff/api/act", content=b"not json", headers={
                "X-CSRF-Token": csrf, "Content-Type": "application/json"}),
            "Tindakan tidak dikenal": await desk.act(csrf, action="fly"),
        }
    for indonesian, refused in refusals.items():
        said = refused.json()["error"]
        assert refused.status_code in (400, 403, 415) and said.startswith(indonesian) and " / " in said, said


async def test_the_desk_shows_a_citizens_line_that_starts_like_the_telegram_instruction(desk_app):
    """Only the staff chat's "Balas (reply) pesan ini ..." line is left out, never the citizen's words."""
    async with httpx.AsyncClient(base_url=desk_app.web_url, headers={"Origin": desk_app.web_url}) as citizen:
        for text in ("saya mau bicara dengan petugas", "baturaja",
                     "Balas (reply) ke nomor saya saja bu\nBalas (reply) pesan ini kalau paspor saya sudah jadi"):
            assert (await citizen.post("/api/messages", json={"text": text})).status_code == 200
    async with Desk(desk_app, desk_app.tokens["muaraenim"]) as desk:
        thread = await desk.thread("paspor saya sudah jadi")
    shown = "\n".join(item["text"] for item in thread["items"])
    assert "Balas (reply) ke nomor saya saja bu\nBalas (reply) pesan ini kalau paspor saya sudah jadi" in shown
    assert "untuk menjawab" not in shown  # the instruction to Telegram staff


async def until(check, timeout: float = 10.0):
    deadline = time.monotonic() + timeout
    while not (found := await check()):
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.1)
    return found


@contextlib.asynccontextmanager
async def telegram_mia(db_path):
    """MIA with citizens on Telegram (a local Bot API server) and the desk on its web port."""
    from tests.fakes.botapi import BotApiServer
    from tests.test_telegram_e2e import World

    botapi = BotApiServer().start()
    app = MiaApp(Settings(_env_file=None, telegram_bot_token="123456:TEST-TOKEN",
                          telegram_api_base_url=f"{botapi.url}/bot", mia_db_path=db_path, mia_web_port=0,
                          mia_outbox_poll_seconds=0.1, telegram_poll_timeout_seconds=1))
    await app.start()
    try:
        yield app, World(botapi)
    finally:
        await app.stop()
        botapi.stop()


async def test_a_telegram_citizen_is_answered_from_the_desk(db_path):
    from tests.test_telegram_e2e import CITIZEN

    token = staff_add(db_path, "Dedi Muaraenim", "muaraenim")
    async with telegram_mia(db_path) as (app, world):
        await world.send(CITIZEN, "saya mau bicara dengan petugas")
        await until(lambda: _has(world, CITIZEN, "kabupaten"))
        await world.send(CITIZEN, "saya di baturaja")
        await until(lambda: _has(world, CITIZEN, "diteruskan ke petugas"))
        await world.send(CITIZEN, "paspor anak saya rusak kena air, gimana?")
        async with Desk(app, token) as desk:
            thread = await desk.thread("kena air")
            assert thread["channel"] == "telegram" and thread["status"] == "active" and thread["waiting"] == 1
            answered = await desk.act(thread["csrf"], action="reply", reply_to=thread["reply_to"],
                                      text="Bawa paspor yang rusak dan KTP ke kantor, Pak.")
            assert answered.status_code == 200, answered.text
            await until(lambda: _has(world, CITIZEN, "Bawa paspor yang rusak"))
            ended = await desk.act(thread["csrf"], action="end", reply_to=thread["reply_to"])
            assert ended.status_code == 200
            await until(lambda: _has(world, CITIZEN, "MIA"))
            assert (await desk.thread("kena air"))["status"] == "ended"


async def test_an_office_cannot_answer_a_citizen_handed_to_another_office(db_path):
    """A citizen handed to Palembang, then (after moving) to Muaraenim: Palembang's old thread is
    over, its staff can neither write to the citizen nor end Muaraenim's conversation."""
    from tests.test_telegram_e2e import CITIZEN

    tokens = {o: staff_add(db_path, f"Staf {o}", o) for o in ("palembang", "muaraenim")}
    async with telegram_mia(db_path) as (app, world):
        await world.send(CITIZEN, "saya di prabumulih, mau bicara dengan petugas")
        await until(lambda: _has(world, CITIZEN, "diteruskan ke petugas"))
        await world.send(CITIZEN, "paspor saya mau habis")
        await world.send(CITIZEN, "kembali ke bot")
        await until(lambda: _has(world, CITIZEN, "MIA"))
        await world.send(CITIZEN, "saya sekarang tinggal di lahat, mau bicara dengan petugas")
        await until(lambda: _count(world, CITIZEN, "diteruskan ke petugas", 2))
        async with Desk(app, tokens["palembang"]) as palembang, Desk(app, tokens["muaraenim"]) as muaraenim:
            old = await palembang.thread("paspor saya mau habis")
            assert old["status"] == "ended"
            for action in ("reply", "end"):
                refused = await palembang.act(old["csrf"], action=action, reply_to=old["reply_to"], text="Halo, Pak.")
                assert refused.status_code == 409 and "Muaraenim" in refused.json()["message"]
            current = await muaraenim.thread("Lahat")
            assert current["status"] == "active"
        await asyncio.sleep(0.5)
        assert not await _has(world, CITIZEN, "Halo, Pak.")


async def _count(world, chat_id: int, text: str, n: int) -> bool:
    return sum(text in (m.get("text") or "") for m in await world.bot_messages(chat_id)) >= n


async def _has(world, chat_id: int, text: str) -> bool:
    return any(text in (m.get("text") or "") for m in await world.bot_messages(chat_id))


async def test_a_whatsapp_request_is_claimed_and_closed_from_the_desk(db_path):
    from tests.fakes.graphapi import GraphApiServer
    from tests.test_whatsapp import SECRET, VERIFY, button_reply, post, say, shown_text, update

    token = staff_add(db_path, "Rina Palembang", "palembang")
    graph = GraphApiServer().start()
    app = MiaApp(Settings(_env_file=None, mia_db_path=db_path, mia_web_port=0, mia_outbox_poll_seconds=0.1,
                          whatsapp_verify_token=VERIFY, whatsapp_app_secret=SECRET, whatsapp_access_token="EAAG-token",
                          whatsapp_phone_number_id="1098765", whatsapp_api_base_url=graph.url))
    await app.start()
    try:
        await say(app, graph, "tolong petugas datang ke rumah, bapak saya sakit")
        for answer in ("Ahmad Yani", "Anak", "081234567890", "Jl. Sudirman 10", "palembang", "stroke"):
            await say(app, graph, answer)
        await say(app, graph, "Senin")
        before = len(graph.sent)
        await post(app, update(button_reply("Ya, kirim", "Ya, kirim")))
        await until(lambda: _graph_has(graph, before, "RKT-"))
        ref = re.search(r"RKT-\d{4}-\d{6}", "".join(shown_text(b) for b in graph.sent[before:])).group(0)
        async with Desk(app, token) as desk:
            thread = await desk.thread(ref)
            assert thread["kind"] == "request" and thread["channel"] == "whatsapp" and thread["status"] == "open"
            assert any("Ahmad Yani" in i["text"] for i in thread["items"])
            count = len(graph.sent)
            assert (await desk.act(thread["csrf"], action="claim", ref=ref)).status_code == 200
            await until(lambda: _graph_has(graph, count, "Rina Palembang"))
            count = len(graph.sent)
            assert (await desk.act(thread["csrf"], action="done", ref=ref)).status_code == 200
            await until(lambda: _graph_has(graph, count, ref))
            assert (await desk.thread(ref))["status"] == "done"
        [request] = await app.store.list_requests()
        assert request.status == "done" and request.done_by.startswith("Rina Palembang")
    finally:
        await app.stop()
        graph.stop()


async def _graph_has(graph, after: int, text: str) -> bool:
    from tests.test_whatsapp import shown_text

    return any(text in shown_text(b) for b in graph.sent[after:])


async def test_operators_confirm_what_citizens_asked_with_one_click(db_path, browser, content_copy):
    token = staff_add(db_path, "Ani Operator", "operators")
    settings = Settings(_env_file=None, mia_db_path=db_path, mia_web_port=0, mia_outbox_poll_seconds=0.1,
                        mia_content_dir=content_copy, mia_reload_enabled=False)
    app = MiaApp(settings)
    await app.start()
    try:
        async with app.store.unit() as unit:  # two citizens chose the same answer in a menu
            for n in range(2):
                await unit.log_unanswered("web", "palembang", "kursi roda buat lansia ada ga", "menu",
                                          [("services_list", 30.0)], ref=f"r{n}")
                await unit.label_unanswered(f"r{n}", "services_list")
        context = await browser.new_context(viewport={"width": 1280, "height": 800})
        page = await context.new_page()
        await open_link(page, app.web_url, token)
        group = page.locator(".thread", has_text="kursi roda buat lansia")
        await group.wait_for()
        assert "2 chose in a menu" in await group.inner_text()
        await shot(page, "desk-review-1280")
        await group.get_by_role("button", name=re.compile("^Tambah ke")).click()
        await page.locator("#notice").filter(has_text="Added to services_list").wait_for(timeout=30000)
        assert "kursi roda buat lansia" in (content_copy / "intents" / "services.yaml").read_text(encoding="utf-8")
        assert await app.store.review_items() == []  # decided
        assert (await app.store.confirmed_examples())[0]["intent"] == "services_list"
        # An office's staff member cannot read the review.
        async with httpx.AsyncClient(base_url=app.web_url) as http:
            other = staff_add(db_path, "Rina", "palembang")
            await http.post(f"/staff/masuk?t={other}", headers={"Origin": app.web_url})
            assert (await http.get("/staff/api/review")).status_code == 403
    finally:
        await app.stop()
