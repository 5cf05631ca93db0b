"""MIA knows when it is unsure, and learns from the citizens it serves: menus, one-tap feedback,
the review log, `mia review`, and a confirmed review changing the answer."""

from __future__ import annotations

import os
import subprocess

from bot.core.content import Content
from bot.core.messages import Incoming
from tests.conftest import ROOT, Chat, mia_command

UNSURE = "bagaimana dengan paspor lama saya"  # renewal? lost? a new one? MIA asks


def titles(reply) -> list[str]:
    return [b.title for b in reply.buttons]


async def test_an_unsure_message_gets_a_menu_of_answers_and_an_officer(chat):
    reply = await chat.say(UNSURE)
    assert "Maksud Anda" in reply.text
    options = titles(reply)
    assert "Bicara dengan petugas" in options and 3 <= len(options) <= 4
    assert "Perpanjang paspor" in options  # the likeliest reading is among them


async def test_a_menu_tap_answers_and_labels_the_message(chat, store):
    reply = await chat.say(UNSURE)
    choice = titles(reply)[0]
    answer = await chat.say(choice)
    assert "Maksud Anda" not in answer.text
    rows = await store.review_items()
    assert len(rows) == 1
    row = rows[0]
    intent = next(it.id for it in chat.assistant.content.intents.intents if it.title["id"] == choice)
    assert row["kind"] == "menu_choice" and row["chosen"] == intent and "paspor lama" in row["text"]


async def test_typing_something_else_after_a_menu_labels_nothing(chat, store):
    await chat.say(UNSURE)
    await chat.say("biaya paspor berapa")
    [row] = await store.review_items()
    assert row["kind"] == "menu" and row["chosen"] is None


async def test_a_confident_answer_offers_one_tap_feedback_and_is_not_a_menu(chat):
    reply = await chat.say("syarat bikin paspor apa aja")
    assert "e-KTP" in reply.text and "Maksud Anda" not in reply.text
    assert titles(reply)[-2:] == ["👍 Membantu", "👎 Tidak membantu"]
    thanks = await chat.say("👍 Membantu")
    assert "Terima kasih" in thanks.text


async def test_small_talk_and_button_answers_do_not_ask_for_feedback(chat):
    assert "👎 Tidak membantu" not in titles(await chat.say("halo"))
    assert "👎 Tidak membantu" not in titles(await chat.say("Biaya paspor"))  # a button's answer


async def test_not_helpful_is_logged_and_offers_the_other_answers(chat, store):
    first = await chat.say("paspor lama saya sudah habis masa berlakunya, hp saya 0812-3456-7890")
    assert "👎 Tidak membantu" in titles(first)
    sorry = await chat.say("👎 Tidak membantu")
    assert "belum membantu" in sorry.text and "Bicara dengan petugas" in titles(sorry)
    [row] = await store.review_items()
    assert row["kind"] == "not_helpful" and row["answered"] and "[telepon]" in row["text"]
    assert "0812" not in row["text"]
    # Choosing another answer from that menu labels the message with it.
    other = titles(sorry)[0]
    await chat.say(other)
    [row] = await store.review_items()
    assert row["chosen"] == next(it.id for it in chat.assistant.content.intents.intents if it.title["id"] == other)


async def test_names_and_numbers_never_reach_the_review_log(assistant, store):
    await assistant.handle(Incoming("whatsapp", "6281200000001", "nama saya Rahmat Hidayat nik 1671 0203 0405 0006 "
                                    "paspor gmn ya", "m1", user_name="Rahmat Hidayat"))
    [row] = await store.review_items()
    assert "rahmat" not in row["text"] and "hidayat" not in row["text"]
    assert "1671" not in row["text"] and "[nama]" in row["text"] and "[angka]" in row["text"]


def _review(env, stdin: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(mia_command() + ["review", *args], input=stdin, capture_output=True, text=True, cwd=ROOT,
                          env=env, timeout=300)


async def test_not_helpful_reaches_mia_review(chat, store, db_path):
    await chat.say("paspor lama saya sudah habis masa berlakunya")
    await chat.say("👎 Tidak membantu")
    env = dict(os.environ, MIA_DB_PATH=str(db_path))
    out = _review(env, "", "--list")
    assert out.returncode == 0, out.stderr
    assert "paspor lama saya sudah habis masa berlakunya" in out.stdout and "said 'not helpful'" in out.stdout
    assert "Saran / suggestion:" in out.stdout


async def test_a_confirmed_review_changes_the_answer_after_reload(content_copy, db_path):
    from bot.core.assistant import Assistant
    from bot.store.sqlite import SQLiteStore

    message = "kantor imigrasi tetap melayani waktu cuti bersama idul adha"
    before = Content.load(content_copy)
    assert before.matcher.understand(message).intent != "office_hours"
    store = SQLiteStore(db_path)
    await store.open()
    try:
        citizen = Chat(Assistant(before, store))
        await citizen.say(message)
        [row] = await store.review_items()
        assert row["kind"] in ("menu", "fallback")
    finally:
        await store.close()
    env = dict(os.environ, MIA_DB_PATH=str(db_path), MIA_CONTENT_DIR=str(content_copy))
    out = _review(env, "c\noffice_hours\n")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "Added to office_hours" in out.stdout
    assert message in (content_copy / "intents" / "offices.yaml").read_text(encoding="utf-8")
    after = Content.load(content_copy)  # what a running MIA's reload loads
    assert after.matcher.understand(message).intent == "office_hours"
    store = SQLiteStore(db_path)
    await store.open()
    try:
        assert await store.review_items() == []  # decided: out of the open queue
        [decided] = await store.review_items(status="confirmed")
        assert decided["decided_intent"] == "office_hours"
    finally:
        await store.close()


async def test_review_never_writes_a_name_or_number_into_an_intent_file(content_copy, db_path):
    from bot.core.assistant import Assistant
    from bot.store.sqlite import SQLiteStore

    store = SQLiteStore(db_path)
    await store.open()
    try:
        citizen = Chat(Assistant(Content.load(content_copy), store))
        await citizen.say("nama saya Siti Nurhaliza, hp 0813 9876 5432, kantor buka waktu cuti bersama kah")
    finally:
        await store.close()
    env = dict(os.environ, MIA_DB_PATH=str(db_path), MIA_CONTENT_DIR=str(content_copy))
    out = _review(env, "c\noffice_hours\n")
    assert "Added to office_hours" in out.stdout, out.stdout + out.stderr
    written = (content_copy / "intents" / "offices.yaml").read_text(encoding="utf-8").lower()
    [line] = [line for line in written.splitlines() if "cuti bersama kah" in line]
    assert line.strip() == "- nama saya hp kantor buka waktu cuti bersama kah"  # nothing of her name or number
