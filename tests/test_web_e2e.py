"""The web chat in a real browser (Playwright driving Debian's chromium) against `MiaApp`.

Screenshots land in var/test-artifacts/ for a person to look at.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest

from bot.app import MiaApp
from bot.channels.web import session_chat
from bot.runtime.config import Settings
from bot.runtime.staff import StaffEvent
from tests.conftest import ROOT
from tests.fakes.recording import RecordingSender

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = ROOT / "var" / "test-artifacts"
ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists() and not os.environ.get("MIA_REQUIRE_BROWSER"),
                                reason="chromium is not installed (.ci/run installs it)")




def web_settings(db_path, port: int = 0) -> Settings:
    return Settings(_env_file=None, mia_db_path=db_path, mia_web_port=port, mia_outbox_poll_seconds=0.1,
                    mia_staff_telegram_chats="palembang:-1001,muaraenim:-1002")


@pytest.fixture
async def mia(db_path):
    app = MiaApp(web_settings(db_path))
    await app.start()
    staff = RecordingSender()
    app.worker.senders["telegram"] = staff
    app.staff_outbox = staff
    yield app
    await app.stop()


@pytest.fixture
async def browser():
    from playwright.async_api import async_playwright

    async with async_playwright() as p:
        b = await p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        await b.close()


async def shot(page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


async def ask(page, text: str) -> str:
    """Type a message and press Enter; return MIA's last message once it arrives."""
    before = await page.locator(".msg.bot").count()
    await page.fill("#text", text)
    await page.press("#text", "Enter")
    await page.locator(".msg.bot").nth(before).wait_for()
    return await page.locator(".msg.bot").last.inner_text()


async def tap(page, title: str) -> str:
    before = await page.locator(".msg.bot").count()
    await page.get_by_role("button", name=title, exact=True).last.click()
    await page.locator(".msg.bot").nth(before).wait_for()
    return await page.locator(".msg.bot").last.inner_text()


async def fill_visit_form(page) -> str:
    """A Lapor Rakit request for Siti Aminah in Gelumbang (Muara Enim), up to its summary."""
    first = await ask(page, "tolong petugas datang ke rumah, ibu sy sakit stroke")
    assert "nama lengkap pemohon" in first.lower()
    await ask(page, "Siti Aminah")
    await tap(page, "Anak")
    await ask(page, "0812 3456 7890")
    await ask(page, "Jl. Merdeka No. 5 RT 02 Pasar Lama")
    await ask(page, "gelumbang")
    await ask(page, "stroke, tidak bisa berjalan")
    return await tap(page, "Senin")


async def test_office_question_buttons_and_history_after_reload(mia, browser):
    page = await browser.new_page()
    refused = []  # what the page's Content-Security-Policy blocked: the page must need nothing it refuses
    page.on("console", lambda m: refused.append(m.text) if "Content Security Policy" in m.text else None)
    await page.goto(mia.web_url)
    await page.wait_for_selector(".msg.bot")
    greeting = await page.locator(".msg.bot").first.inner_text()
    assert "MIA" in greeting and await page.locator(".chip").count() >= 2
    answer = await ask(page, "min sy dr lahat mau bikin paspor ke kantor mana ya")
    assert "Kantor Imigrasi Kelas II Non TPI Muaraenim" in answer
    assert await page.locator(".msg.bot strong", has_text="Kantor Imigrasi Kelas II Non TPI Muaraenim").count() == 1
    await shot(page, "web-office-lahat")
    hours = await tap(page, "Jam pelayanan")
    assert "Jam layanan" in hours
    count = await page.locator(".msg").count()
    await page.reload()
    await page.locator(".msg").nth(count - 1).wait_for()
    assert await page.locator(".msg").count() == count
    assert "Muaraenim" in await page.locator(".log").inner_text()
    await shot(page, "web-after-reload")
    assert refused == []


async def test_lapor_rakit_request_from_the_page_leaves_no_old_buttons_after_reload(mia, browser):
    page = await browser.new_page()
    await page.goto(mia.web_url)
    await page.wait_for_selector(".msg.bot")
    summary = await fill_visit_form(page)
    assert "Siti Aminah" in summary and "Gelumbang" in summary
    await shot(page, "web-lapor-rakit-summary")
    done = await tap(page, "Ya, kirim")
    ref = re.search(r"RKT-\d{4}-\d{6}", done).group(0)
    await shot(page, "web-lapor-rakit-done")
    [request] = await mia.store.list_requests()
    assert request.ref == ref and request.office == "muaraenim" and request.channel == "web"

    # After a reload the summary's "Ya, kirim / Ubah / Batal" are gone: only the latest message has buttons.
    count = await page.locator(".msg").count()
    await page.reload()
    await page.locator(".msg").nth(count - 1).wait_for()
    last = page.locator(".msg").last
    assert await page.locator(".chip").count() == await last.locator(".chip").count()
    assert await page.get_by_role("button", name="Ya, kirim").count() == 0
    assert len(await mia.store.list_requests()) == 1


async def start_handoff(page, url: str, staff: RecordingSender) -> None:
    """The citizen on the page asks for an officer in Baturaja; Muaraenim's staff chat is told."""
    await page.goto(url)
    await page.wait_for_selector(".msg.bot")
    await ask(page, "saya mau bicara dengan petugas")
    started = await ask(page, "baturaja")
    assert "diteruskan ke petugas" in started
    for _ in range(100):
        if staff.sent:
            break
        await page.wait_for_timeout(50)
    chat_id, notice = staff.sent[0]
    assert chat_id == "-1002" and "minta bicara dengan petugas" in notice["text"]


async def staff_reply(app, text: str = "Halo Bu, silakan tanya di sini."):
    """Muaraenim's officer replies in the Telegram staff chat to the handoff notice."""
    return await app.desk.handle(StaffEvent("telegram", "-1002", "u1", "9001", "Petugas Rina", "reply",
                                            reply_to="1", text=text))


async def test_a_staff_reply_that_lands_just_before_the_citizen_sends_is_shown(mia, browser):
    page = await (await browser.new_context()).new_page()
    await start_handoff(page, mia.web_url, mia.staff_outbox)
    # The reply lands before the page's next look at the transcript (its looks fail meanwhile)...
    def polls(url: str) -> bool:
        return "/api/messages?" in url

    await page.route(polls, lambda route: route.abort())
    assert (await staff_reply(mia)).ok
    key = next(c["value"] for c in await page.context.cookies() if c["name"] == "mia_session")
    for _ in range(100):
        if any("silakan tanya" in m["text"] for m in await mia.store.web_messages(session_chat(key))):
            break
        await page.wait_for_timeout(50)
    # ...and the citizen sends at once: the page shows the reply, then the citizen's message.
    await page.fill("#text", "baik bu, terima kasih")
    await page.press("#text", "Enter")
    await page.locator(".msg.user", has_text="terima kasih").wait_for()
    await page.unroute(polls)
    await page.wait_for_timeout(3000)  # a poll comes and goes: nothing twice
    shown = await page.locator(".log").inner_text()
    assert shown.count("silakan tanya di sini") == 1 and shown.count("baik bu, terima kasih") == 1
    assert shown.index("silakan tanya di sini") < shown.index("baik bu, terima kasih")


async def test_a_new_conversation_during_a_handoff_tells_the_officer(mia, browser):
    """"Percakapan baru" while an officer has the conversation: the officer is told the citizen left."""
    page = await (await browser.new_context()).new_page()
    staff = mia.staff_outbox
    await start_handoff(page, mia.web_url, staff)
    async with page.expect_navigation():  # the page reloads (the old page's messages must not count)
        await page.get_by_role("button", name="Percakapan baru").click()
    await page.wait_for_selector(".msg.bot")
    for _ in range(100):
        if any("mengakhiri percakapan" in payload["text"] for _, payload in staff.sent):
            break
        await page.wait_for_timeout(50)
    chat_id, closed = staff.sent[-1]
    assert chat_id == "-1002" and "Warga mengakhiri percakapan dengan petugas" in closed["text"]
    assert "diteruskan ke petugas" not in await page.locator(".log").inner_text()


async def test_staff_reply_reaches_the_page_and_survives_restart(db_path, browser):
    app = MiaApp(web_settings(db_path))
    await app.start()
    staff = RecordingSender()
    app.worker.senders["telegram"] = staff
    page = await (await browser.new_context()).new_page()
    try:
        await start_handoff(page, app.web_url, staff)
        assert (await staff_reply(app)).ok
        await page.locator(".log").get_by_text("silakan tanya di sini").first.wait_for(timeout=10000)
        port = app.web_server.port
    finally:
        await app.stop()
    again = MiaApp(web_settings(db_path, port))  # a restart of MIA on the same database and address
    await again.start()
    try:
        await page.reload()
        await page.locator(".log").get_by_text("silakan tanya di sini").first.wait_for()
        await shot(page, "web-staff-reply-after-restart")
    finally:
        await again.stop()


async def test_api_rejects_bad_requests(mia):
    import httpx

    async with httpx.AsyncClient(base_url=mia.web_url) as http:
        assert (await http.post("/api/messages", content=b"not json",
                                headers={"content-type": "application/json"})).status_code == 400
        assert (await http.post("/api/messages", json={"text": 5})).status_code == 400
        assert (await http.post("/api/messages", content=b"x" * 20000)).status_code == 413
        assert (await http.get("/api/messages", params={"after": "x"})).status_code == 400
        assert (await http.post("/api/messages", json={"text": "halo", "after": "x"})).status_code == 400
    async with httpx.AsyncClient(base_url=mia.web_url, cookies={"mia_session": "0" * 32}) as guesser:
        other = await guesser.get("/api/messages")
        assert other.json()["messages"] == []  # an unknown session sees nothing


async def test_menu_when_unsure_and_feedback_under_an_answer(mia, browser):
    page = await browser.new_page()
    await page.goto(mia.web_url)
    await page.wait_for_selector(".msg.bot")
    menu = await ask(page, "bagaimana dengan paspor lama saya")
    assert "Maksud Anda" in menu
    chips = page.locator(".msg.bot").last.locator(".chip")
    options = await chips.all_inner_texts()
    assert options[-1] == "Bicara dengan petugas" and len(options) == 4
    await shot(page, "menu-when-unsure")
    answer = await tap(page, options[0])
    assert "Maksud Anda" not in answer
    [row] = await mia.store.review_items()
    assert row["kind"] == "menu_choice" and row["chosen"]
    answer = await ask(page, "syarat bikin paspor apa aja")
    feedback = page.locator(".msg.bot").last.locator(".chip.feedback")
    assert await feedback.all_inner_texts() == ["👍 Membantu", "👎 Tidak membantu"]
    sorry = await tap(page, "👎 Tidak membantu")
    assert "belum membantu" in sorry
    assert any(r["kind"] == "not_helpful" for r in await mia.store.review_items())


async def test_the_page_names_the_office_keeps_buttons_on_a_failed_send_and_starts_over(mia, browser):
    for width, height in ((390, 844), (1280, 800)):
        context = await browser.new_context(viewport={"width": width, "height": height}, has_touch=width < 500,
                                            is_mobile=width < 500)
        page = await context.new_page()
        await page.goto(mia.web_url)
        await page.wait_for_selector(".msg.bot")
        header = await page.locator("header").inner_text()
        assert "Kantor Imigrasi Sumatera Selatan" in header and "imigrasi.go.id" in header  # on every width
        assert await page.locator("a[href='https://www.imigrasi.go.id']").is_visible()
        focused = await page.evaluate("document.activeElement && document.activeElement.id")
        assert (focused == "text") == (width >= 500)  # no keyboard popping up on a phone
        answer = await ask(page, "syarat bikin paspor apa aja")
        assert "e-KTP" in answer
        await shot(page, f"web-citizen-{width}")
        chips = await page.locator(".chips .chip").count()
        assert chips

        # The network fails: the message is not lost from the box and the buttons stay.
        await page.route("**/api/messages", lambda route: route.abort() if route.request.method == "POST"
                         else route.continue_())
        await page.fill("#text", "biaya paspor berapa")
        await page.press("#text", "Enter")
        await page.locator("#error").wait_for()
        assert await page.locator(".chips .chip").count() == chips
        assert await page.input_value("#text") == "biaya paspor berapa"
        await page.unroute("**/api/messages")

        # "Percakapan baru": a fresh conversation, the old one no longer shown.
        async with page.expect_navigation():  # the page reloads (the old page's messages must not count)
            await page.get_by_role("button", name="Percakapan baru").click()
        await page.wait_for_selector(".msg.bot")
        assert "e-KTP" not in await page.locator(".log").inner_text()
        await context.close()


async def test_the_visit_form_says_what_is_kept_before_asking_for_personal_data(mia, browser):
    page = await browser.new_page()
    await page.goto(mia.web_url)
    await page.wait_for_selector(".msg.bot")
    await ask(page, "tolong petugas datang ke rumah, ibu sy sakit stroke")
    shown = await page.locator(".log").inner_text()
    notice = shown.split("Privasi:")[1]
    assert "dibaca petugas" in notice and "dihapus dari MIA setelah 90 hari" in notice
    assert shown.index("Privasi:") < shown.index("nama lengkap pemohon")
