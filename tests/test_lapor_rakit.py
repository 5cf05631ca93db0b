"""The Lapor Rakit visit request as a citizen fills it in, and what reaches the staff chat."""

from __future__ import annotations

import re
import time

import pytest

from bot.core.assistant import Assistant
from bot.store.sqlite import SQLiteStore
from tests.conftest import Chat

STAFF = {"palembang": ("telegram", "-1001"), "muaraenim": ("telegram", "-1002")}


@pytest.fixture
def desk(content, store):
    return Assistant(content, store, staff_chats=STAFF)


async def fill(chat: Chat, answers: list[str]):
    replies = []
    for text in answers:
        replies.append(await chat.say(text))
    return replies


ANSWERS = ["Siti Aminah", "anak", "0812-3456-7890", "Jl. Merdeka No. 5 RT 02 Pasar Lama", "lahat",
           "stroke, tidak bisa berjalan", "Senin"]


async def test_whole_request_is_saved_with_reference_and_announced(desk, store):
    chat = Chat(desk, chat_id="warga-1", channel="telegram")
    first = await chat.say("tolong petugas datang ke rumah, ibu sy sakit stroke mau bikin paspor")
    assert "nama lengkap pemohon" in first.text.lower()
    replies = await fill(chat, ANSWERS)
    summary = replies[-1]
    assert "Siti Aminah" in summary.text and "+62" not in summary.text and "0812" in summary.text
    assert "Kantor Imigrasi Kelas II Non TPI Muaraenim" in summary.text
    assert [b.title for b in summary.buttons] == ["Ya, kirim", "Ubah", "Batal"]
    done = await chat.say("Ya, kirim")
    assert "RKT-" in done.text and "{ref}" not in done.text
    ref = re.search(r"RKT-\d{4}-\d{6}", done.text).group(0)
    [request] = await store.list_requests()
    assert request.ref == ref and request.office == "muaraenim" and request.region == "16.04"
    assert request.fields["phone"] == "+6281234567890"  # E.164
    due = await store.due_outbox(time.time())
    assert len(due) == 1 and due[0].chat_id == "-1002"
    assert ref in due[0].payload["text"] and "Siti Aminah" in due[0].payload["text"]
    assert [b["title"] for b in due[0].payload["buttons"]] == ["Ambil", "Selesai"]
    status = await chat.say(f"/status {ref}")
    assert "menunggu diambil" in status.text


async def test_wrong_answers_are_asked_again_then_an_officer_is_offered(desk):
    chat = Chat(desk)
    await chat.say("minta petugas datang ke rumah sakit, bapak sy dirawat")
    await fill(chat, ["Budi Santoso", "anak"])
    for n in range(3):
        reply = await chat.say("12345")
        assert "bukan nomor telepon Indonesia" in reply.text
        assert "0812" in reply.text  # the example
    assert any(b.title == "Bicara dengan petugas" for b in reply.buttons)
    ok = await chat.say("+62 812 3456 7890")
    assert "alamat" in ok.text.lower()


async def test_cancel_at_any_step(desk, store):
    chat = Chat(desk)
    await chat.say("tolong kirim petugas ke rumah, nenek sy sakit")
    await fill(chat, ["Siti", "cucu"])
    reply = await chat.say("batal")
    assert "dibatalkan" in reply.text
    assert await store.list_requests() == []
    after = await chat.say("biaya paspor brp")
    assert "Rp350.000" in after.text  # back to normal answers


async def test_slash_batal_cancels_too(desk):
    chat = Chat(desk)
    await chat.say("tolong kirim petugas ke rumah, nenek sy sakit")
    assert "dibatalkan" in (await chat.say("/batal")).text


async def test_question_in_the_middle_is_answered_and_form_resumes(desk):
    chat = Chat(desk)
    await chat.say("tolong petugas datang ke rumah, ayah saya sakit")
    await chat.say("Ahmad Yani")
    reply = await chat.say("biayanya berapa?")
    assert "Rp350.000" in reply.text
    assert "hubungan" in reply.text.lower()  # the same question again
    next_reply = await chat.say("anak")
    assert "telepon" in next_reply.text.lower()


async def test_change_a_field_from_the_summary(desk):
    chat = Chat(desk)
    await chat.say("tolong petugas datang ke rumah, ibu sy sakit")
    await fill(chat, ANSWERS)
    choose = await chat.say("Ubah")
    assert "Nomor telepon" in [b.title for b in choose.buttons]
    await chat.say("Nomor telepon")
    summary = await chat.say("0813 1111 2222")
    assert "0813" in summary.text and "Sudah benar" in summary.text


async def test_place_in_the_request_prefills_the_region(desk):
    chat = Chat(desk)
    await chat.say("tolong petugas datang ke rumah di gelumbang, ibu sy sakit keras")
    replies = await fill(chat, ["Siti", "anak", "081234567890", "Jl. Lintas No. 1 Desa Gelumbang"])
    assert "kondisi" in replies[-1].text.lower()  # the region question was skipped


async def test_region_outside_sumsel_is_refused(desk):
    chat = Chat(desk)
    await chat.say("tolong petugas datang ke rumah, ibu sy sakit")
    await fill(chat, ["Siti", "anak", "081234567890", "Jl. Merdeka No. 5 RT 02"])
    reply = await chat.say("bandung")
    assert "luar Sumatera Selatan" in reply.text


async def test_form_survives_restart(content, db_path):
    store = SQLiteStore(db_path)
    await store.open()
    chat = Chat(Assistant(content, store, staff_chats=STAFF), chat_id="restart-form")
    await chat.say("tolong petugas datang ke rumah, ibu sy sakit")
    await fill(chat, ["Siti Aminah", "anak"])
    await store.close()

    store2 = SQLiteStore(db_path)
    await store2.open()
    chat2 = Chat(Assistant(content, store2, staff_chats=STAFF), chat_id="restart-form")
    chat2.n = chat.n
    reply = await chat2.say("0812 3456 7890")
    assert "alamat" in reply.text.lower()
    await store2.close()


async def test_abandoned_form_expires_even_across_restarts(content, db_path):
    store = SQLiteStore(db_path)
    await store.open()
    chat = Chat(Assistant(content, store, staff_chats=STAFF, form_ttl_seconds=0.2), chat_id="ttl")
    await chat.say("tolong petugas datang ke rumah, ibu sy sakit")
    await store.close()
    time.sleep(0.3)
    store2 = SQLiteStore(db_path)
    await store2.open()
    chat2 = Chat(Assistant(content, store2, staff_chats=STAFF, form_ttl_seconds=0.2), chat_id="ttl")
    chat2.n = chat.n
    assistant = chat2.assistant
    outcome = await assistant.handle_outcome(
        __import__("bot.core.messages", fromlist=["Incoming"]).Incoming("web", "ttl", "Siti Aminah", "ttl-x"))
    assert "kedaluwarsa" in outcome.replies[0].text
    await store2.close()


@pytest.mark.parametrize("officer", ["Bicara dengan petugas", "sy mau ngomong sama petugas aja"])
async def test_asking_for_an_officer_leaves_the_form(desk, store, officer):
    chat = Chat(desk)
    await chat.say("ibu sy sakit minta petugas dtg")
    await fill(chat, ["Siti", "anak"])
    left = await chat.say(officer)
    assert "tidak dikirim" in left.text and "kabupaten/kota" in left.text
    handed = await chat.say("palembang")
    assert "diteruskan ke petugas *Kantor Imigrasi Kelas I TPI Palembang*" in handed.text
    assert "telepon" not in handed.text
    assert (await chat.say("halo")).text == ""  # staff have the conversation: MIA relays, silent
    assert await store.list_requests() == []  # no half request


async def test_after_an_officer_took_over_the_old_form_does_not_resume(desk):
    chat = Chat(desk)
    await chat.say("tolong petugas datang ke rumah di gelumbang, ibu sy sakit keras")
    await fill(chat, ["Siti"])
    handed = await chat.say("Bicara dengan petugas")
    assert "tidak dikirim" in handed.text and "diteruskan ke petugas" in handed.text
    await chat.say("kembali ke bot")
    reply = await chat.say("berapa biaya paspor")
    assert "Rp350.000" in reply.text and "hubungan" not in reply.text.lower()


@pytest.mark.parametrize("answers", [["batal aja"], ["Budi", "ga jadi min"], ["Budi", "udah batal aja"],
                                     ["Budi", "nggak jadi, makasih"], ["Budi", "anak", "gak jadi deh"]])
async def test_cancel_in_other_words_cancels(desk, store, answers):
    chat = Chat(desk)
    await chat.say("ayah sy sakit parah, minta petugas dtg ke rumah")
    replies = await fill(chat, answers)
    assert "dibatalkan" in replies[-1].text
    assert await store.list_requests() == []
    after = await chat.say("biaya paspor brp")
    assert "Rp350.000" in after.text


@pytest.mark.parametrize("yes", ["ya kirim", "iya benar", "sudah benar min", "ya betul", "Ya, kirim"])
async def test_yes_in_other_words_sends_the_request(desk, store, yes):
    chat = Chat(desk)
    await chat.say("ayah sy sakit parah, minta petugas dtg ke rumah")
    await fill(chat, ANSWERS)
    done = await chat.say(yes)
    assert "RKT-" in done.text
    assert len(await store.list_requests()) == 1


async def test_at_the_summary_a_but_or_a_cancel_is_not_a_yes(desk, store):
    chat = Chat(desk)
    await chat.say("ayah sy sakit parah, minta petugas dtg ke rumah")
    await fill(chat, ANSWERS)
    change = await chat.say("ya tapi alamatnya salah")
    assert "Bagian mana" in change.text and "RKT-" not in change.text
    await chat.say("Alamat")
    await chat.say("Jl. Merdeka No. 7 RT 02 Pasar Lama")
    cancelled = await chat.say("batal aja")
    assert "dibatalkan" in cancelled.text
    assert await store.list_requests() == []


async def test_a_greeting_a_question_or_a_button_is_not_taken_as_the_name(desk):
    chat = Chat(desk)
    await chat.say("ayah sy sakit parah, minta petugas dtg ke rumah")
    for text in ("halo min", "Minta petugas datang", "ini buat apa ya?"):
        reply = await chat.say(text)
        assert "nama lengkap pemohon" in reply.text.lower() and "hubungan" not in reply.text.lower()
    about = await chat.say("lapor rakit itu apa sih?")
    assert "Lapor Rakit" in about.text and "nama lengkap pemohon" in about.text.lower()
    assert "hubungan" not in about.text.lower()
    named = await chat.say("Pak Darto")
    assert "hubungan" in named.text.lower()


async def test_a_name_that_starts_like_a_greeting_is_a_name(desk):
    chat = Chat(desk)
    await chat.say("ayah sy sakit parah, minta petugas dtg ke rumah")
    replies = await fill(chat, ["Selamat Riyadi", "anak", "0812 3456 7890", "Jl. Merdeka No. 5 RT 02 Pasar Lama",
                                "lahat", "stroke", "Senin"])
    assert "Nama pemohon: Selamat Riyadi" in replies[-1].text


async def test_asking_what_a_question_means_explains_it_and_keeps_the_form(desk, store):
    """A citizen unsure what a question asks ("maksudnya hubungan apa?", "alamat rumah atau rumah
    sakit?", "kapan petugas dtg?") is told what it means and asked again; nothing of the question
    is stored, the answers so far are kept, and the request reaches the office in the end."""
    chat = Chat(desk)
    await chat.say("ibu sy sakit kanker, tdk bisa ke kantor, petugas bisa dtg ke rumah? sy di lahat")
    await chat.say("Fatimah")
    meant = await chat.say("maksudnya hubungan apa?")
    assert "Anda siapanya pemohon" in meant.text and "dihentikan" not in meant.text
    when = await chat.say("kapan petugas dtg?")
    assert "Anda siapanya pemohon" in when.text and "kepada petugas saat mereka menghubungi Anda" in when.text
    await chat.say("saya anaknya")
    await chat.say("081234567890")
    where = await chat.say("alamat rumah atau rumah sakit?")
    assert "rumah sakit bila sedang dirawat" in where.text
    await chat.say("RS Bunda, Jl. Mayor Ruslan No 3 kamar 12")
    await chat.say("kanker stadium 3")
    summary = await chat.say("secepatnya")
    assert "Hubungan dengan pemohon: saya anaknya" in summary.text
    assert "Alamat: RS Bunda, Jl. Mayor Ruslan No 3 kamar 12" in summary.text and "?" not in summary.text.split("Sudah benar")[0]
    assert "RKT-" in (await chat.say("Ya, kirim")).text
    [request] = await store.list_requests()
    assert request.fields["relation"] == "saya anaknya" and request.fields["applicant_name"] == "Fatimah"


async def test_in_english_the_form_explains_itself_and_offers_english_choices(desk):
    chat = Chat(desk)
    await chat.say("my father is bedridden, can an officer come to our house for his passport?")
    relation = await chat.say("Ahmad Yani")
    assert [b.title for b in relation.buttons][:5] == ["Child", "Parent", "Spouse", "Sibling", "Myself"]
    meant = await chat.say("what do you mean?")
    assert "who are you to the applicant" in meant.text


async def test_which_answer_to_change_can_be_said_in_words_and_the_step_has_a_way_out(desk, store):
    chat = Chat(desk)
    await chat.say("ayah sy lumpuh, minta petugas dtg ke rumah, kami di baturaja")
    await fill(chat, ["Hasan Basri", "anak", "081234567890", "Jl. Jend. Sudirman No 10 Baturaja", "lumpuh", "Senin"])
    choose = await chat.say("ubah")
    assert "Batal" in [b.title for b in choose.buttons]
    address = await chat.say("ganti alamat")
    assert "Alamat lengkap tempat pemohon" in address.text
    summary = await chat.say("Jl. Kolonel Wahid No 2 Baturaja")
    assert "Alamat: Jl. Kolonel Wahid No 2 Baturaja" in summary.text
    await chat.say("ubah")
    phone = await chat.say("nomor hp nya")
    assert "Nomor telepon/WhatsApp" in phone.text
    await chat.say("0813 9876 5432")
    await chat.say("ubah")
    done = await chat.say("iya sudah benar, kirim")  # nothing to change after all
    assert "RKT-" in done.text
    [request] = await store.list_requests()
    assert request.fields["address"] == "Jl. Kolonel Wahid No 2 Baturaja" and request.fields["phone"] == "+6281398765432"
    chat2 = Chat(desk, chat_id="warga-2")
    await chat2.say("ayah sy lumpuh, minta petugas dtg ke rumah, kami di baturaja")
    await fill(chat2, ["Hasan Basri", "anak", "081234567890", "Jl. Jend. Sudirman No 10 Baturaja", "lumpuh", "Senin"])
    await chat2.say("ubah")
    for text in ("tolong", "yg itu", "hmm"):
        stuck = await chat2.say(text)
    assert "Bicara dengan petugas" in [b.title for b in stuck.buttons]
    assert "dibatalkan" in (await chat2.say("Batal")).text.lower()


async def test_an_address_that_names_its_regency_is_not_asked_for_it_again(desk, store):
    """"desa tanjung agung, muara enim" as the address: MIA says which office it goes to and asks
    the next question; the summary shows the place, and the request reaches that office."""
    cases = (("desa tanjung agung, muara enim", "Tanjung Agung (Muara Enim)", "muaraenim"),
             ("Jl. Merdeka No. 5, Kel. Sukarami, Palembang", "Palembang", "palembang"),
             ("Dusun II Desa Pandan Dulang, Kec. Panang Enim", "Muara Enim", "muaraenim"))
    for n, (address, place, office) in enumerate(cases):
        chat = Chat(desk, chat_id=f"warga-addr-{n}", channel="telegram")
        await chat.say("tolong petugas datang ke rumah, ibu sy sakit stroke mau bikin paspor")
        *_, after_address = await fill(chat, ["Siti Aminah", "anak", "0812-3456-7890", address])
        assert place in after_address.text and "kondisi pemohon" in after_address.text, after_address.text
        assert "kabupaten/kota atau kecamatan" not in after_address.text
        summary = (await fill(chat, ["stroke", "Senin"]))[-1]
        assert "Kabupaten/kota: " in summary.text and place in summary.text
        await chat.say("Ya, kirim")
        [request] = [r for r in await store.list_requests() if r.chat_id == chat.chat_id]
        assert request.office == office


async def test_a_street_named_after_a_place_or_two_offices_still_get_the_question(desk):
    for n, address in enumerate(("Jl. Lahat No. 5 RT 02", "Jalan Palembang-Jambi km 12",
                                 "desa tanjung agung, dekat pasar")):  # a name of villages under both offices
        chat = Chat(desk, chat_id=f"warga-street-{n}", channel="telegram")
        await chat.say("minta petugas datang ke rumah, bapak sy lumpuh")
        *_, after_address = await fill(chat, ["Budi Santoso", "anak", "0812-3456-7890", address])
        assert "kabupaten/kota atau kecamatan" in after_address.text, (address, after_address.text)
