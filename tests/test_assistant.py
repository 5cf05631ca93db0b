"""What a citizen sees: answers, follow-up questions, languages, bad input, duplicates."""

from __future__ import annotations

import asyncio

from bot.core.assistant import Assistant
from bot.core.messages import Incoming
from bot.store.base import ConversationState
from bot.store.sqlite import SQLiteStore
from tests.conftest import Chat


async def test_office_for_a_regency(chat):
    reply = await chat.say("min sy dr lahat mau bikin paspor ke kantor mana ya")
    assert "Kantor Imigrasi Kelas II Non TPI Muaraenim" in reply.text
    assert "Lahat" in reply.text
    assert any("Syarat" in b.title or "Jam" in b.title for b in reply.buttons)


async def test_oku_and_oki_go_to_different_offices(chat):
    oku = await chat.say("kantor imigrasi utk oku dmn")
    oki = await chat.say("kantor imigrasi utk oki dmn")
    assert "Muaraenim" in oku.text and "TPI Palembang" not in oku.text
    assert "TPI Palembang" in oki.text and "Muaraenim*" not in oki.text


async def test_office_question_without_place_asks_and_next_message_completes(chat):
    ask = await chat.say("sy mau bikin paspor, kantor imigrasi yg melayani daerah sy dmn")
    assert "kabupaten/kota" in ask.text.lower()
    answer = await chat.say("saya di baturaja")
    assert "Kantor Imigrasi Kelas II Non TPI Muaraenim" in answer.text


async def test_follow_up_survives_a_restart(content, db_path):
    store = SQLiteStore(db_path)
    await store.open()
    first = Chat(Assistant(content, store), chat_id="restart")
    ask = await first.say("kantor imigrasi terdekat dr rumah sy dmn")
    assert "kabupaten/kota" in ask.text.lower()
    await store.close()

    store2 = SQLiteStore(db_path)  # a new process: nothing in memory, same file
    await store2.open()
    second = Chat(Assistant(content, store2), chat_id="restart")
    second.n = first.n
    answer = await second.say("lahat")
    assert "Muaraenim" in answer.text
    await store2.close()


async def test_place_outside_sumsel_gets_honest_answer(chat):
    reply = await chat.say("kantor imigrasi utk jambi dimana")
    assert "luar Sumatera Selatan" in reply.text
    assert "Kelas I TPI Palembang" not in reply.text and "Non TPI Muaraenim" not in reply.text


async def test_mentioning_two_offices_places_asks_instead_of_guessing(chat):
    reply = await chat.say("kantor imigrasi untuk lahat atau banyuasin")
    assert "Lahat" in reply.text and "Banyuasin" in reply.text
    assert {b.title for b in reply.buttons} >= {"Lahat", "Banyuasin"}
    answer = await chat.say("Banyuasin")
    assert "Kelas I TPI Palembang" in answer.text


async def test_place_alone_is_not_an_intent(assistant):
    outcome = assistant.respond("cuaca palembang hari ini", ConversationState())
    assert outcome.intent is None and outcome.office is None
    assert "belum memahami" in outcome.replies[0].text


async def test_english_question_gets_english_answer(chat):
    reply = await chat.say("how much does a passport cost?")
    assert "Passport fees" in reply.text or "passport" in reply.text.lower()
    assert "Rp650.000" in reply.text
    assert "Biaya" not in reply.text


async def test_fees_come_from_data(chat):
    reply = await chat.say("biaya bikin paspor brp kak")
    for amount in ("Rp350.000", "Rp650.000", "Rp950.000", "Rp1.000.000"):
        assert amount in reply.text
    assert "PP 45/2024" in reply.text


async def test_unknown_facts_are_admitted_and_an_officer_offered(chat):
    reply = await chat.say("jam buka kantor imigrasi muara enim")
    assert "belum tercantum" in reply.text or "tidak" in reply.text
    assert any("petugas" in b.title.lower() for b in reply.buttons) or "petugas" in reply.text


async def test_bad_input_gets_polite_reply(chat):
    for text in ("", "   ", "🙏🙏🙏", "\x00\x01\x02", "!!!???"):
        reply = await chat.say(text)
        assert "teks" in reply.text.lower() or "pertanyaan" in reply.text.lower(), text


async def test_long_garbage_is_bounded(chat, content):
    import time

    started = time.perf_counter()
    reply = await chat.say("asdf " * 2000 + "x" * 10000)
    assert reply.text
    assert time.perf_counter() - started < 2.0  # a generous bound: the cost is capped, not the clock


async def test_mixed_scripts_and_control_characters(chat):
    for text in ("паспорт 护照 paspor biaya", "biaya\u200b paspor\u0007", "ﾊﾟｽﾎﾟｰﾄ"):
        reply = await chat.say(text)
        assert reply.text


async def test_redelivered_message_gets_no_second_answer(assistant):
    msg = Incoming("telegram", "42", "halo", "update-1")
    first = await assistant.handle(msg)
    second = await assistant.handle(msg)
    assert first and second == []


async def test_concurrent_conversations_do_not_mix(assistant):
    async def one(i: int):
        chat = Chat(assistant, chat_id=f"c{i}")
        await chat.say("kantor imigrasi untuk daerah saya dimana")
        place = "lahat" if i % 2 else "banyuasin"
        return i, await chat.say(place)

    results = await asyncio.gather(*(one(i) for i in range(20)))
    for i, reply in results:
        expected = "Muaraenim" if i % 2 else "TPI Palembang"
        assert expected in reply.text


async def test_button_press_is_handled_like_its_text(chat):
    reply = await chat.say("halo")
    assert reply.buttons
    button = reply.buttons[0]
    pressed = await chat.say(button.payload)
    typed = await chat.say(button.title)
    assert pressed.text == typed.text


async def test_clarifying_question_keeps_the_place_for_the_chosen_button(chat):
    reply = await chat.say("sy wong lahat, bikin paspor baru bawa apa aja")
    titles = [b.title for b in reply.buttons]
    assert "Maksud Anda" in reply.text and "Syarat paspor baru" in titles
    assert "Muaraenim" in reply.text  # the place was understood even if the question was not
    answer = await chat.say("Syarat paspor baru")
    assert "e-KTP" in answer.text
    assert "Lahat" in answer.text and "Kantor Imigrasi Kelas II Non TPI Muaraenim" in answer.text


async def test_flooding_chat_gets_one_slow_down_then_silence_others_unaffected(content, db_path):
    import asyncio

    store = SQLiteStore(db_path)
    await store.open()
    assistant = Assistant(content, store, rate_limit=5, rate_window_seconds=3.0)  # 8 answers well within it
    flood = Chat(assistant, chat_id="flood")
    answers = [await flood.say("biaya paspor brp") for _ in range(8)]
    assert all("Rp350.000" in a.text for a in answers[:5])
    assert "terlalu cepat" in answers[5].text
    assert [a.text for a in answers[6:]] == ["", ""]  # silence until the window passes
    other = Chat(assistant, chat_id="calm")
    assert "Rp350.000" in (await other.say("biaya paspor brp")).text
    await asyncio.sleep(3.1)
    assert "Rp350.000" in (await flood.say("biaya paspor brp")).text
    await store.close()


async def test_my_area_means_the_place_named_earlier(chat):
    await chat.say("saya tinggal di belitang")
    reply = await chat.say("kantor imigrasi utk daerah sy dmn")
    assert "Belitang" in reply.text and "Kantor Imigrasi Kelas II Non TPI Muaraenim" in reply.text


async def test_a_message_is_read_before_its_conversation_is_locked(content, store):
    """The model reads the message on its own thread before the transaction opens; inside it the
    decision finds the reading done. A chat past its rate limit is not read ahead at all."""
    threads: list[str] = []
    in_unit = [False]
    read_in_unit: list[bool] = []
    matcher = content.matcher
    original = matcher._understand

    def spying(text: str):
        import threading

        threads.append(threading.current_thread().name)
        read_in_unit.append((text, in_unit[0]))
        return original(text)

    class Watched:
        """The store, noting when a unit is open."""

        def __init__(self, inner):
            self.inner = inner

        def __getattr__(self, name):
            return getattr(self.inner, name)

        def unit(self):
            from contextlib import asynccontextmanager

            @asynccontextmanager
            async def opened():
                async with self.inner.unit() as u:
                    in_unit[0] = True
                    try:
                        yield u
                    finally:
                        in_unit[0] = False

            return opened()

    import functools

    matcher._understood = functools.lru_cache(maxsize=256)(spying)
    try:
        assistant = Assistant(content, Watched(store), rate_limit=3)
        chat = Chat(assistant, "ahead-1")
        reply = await chat.say("syarat bikin paspor baru apa aja kak 2026")
        assert "KTP" in reply.text
        assert threads == ["mia-reader_0"] and not read_in_unit[0][1]
        for n in range(5):  # past the limit of 3 a minute: the slow-down message, then silence
            await chat.say(f"halo min ke {n} kalinya 2026")
        # Read ahead: the two within the limit and the one refused first; then nothing is read.
        assert threads.count("mia-reader_0") == 4
        # In the transaction only what depends on the conversation: a short message read with the
        # previous answer's topic ("... halo min ke 0"), never a message's own text.
        said = {"syarat bikin paspor baru apa aja kak 2026"} | {f"halo min ke {n} kalinya 2026" for n in range(5)}
        assert all(text not in said for text, locked in read_in_unit if locked)
    finally:
        matcher._understood = functools.lru_cache(maxsize=256)(original)
