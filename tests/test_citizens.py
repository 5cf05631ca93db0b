"""How citizens write: follow-ups, two questions at once, greetings around a question, stories, complaints."""

from __future__ import annotations

from bot.core.assistant import Assistant
from tests.conftest import Chat


async def test_follow_up_about_the_electronic_passport_after_fees(chat):
    await chat.say("biaya paspor brp")
    reply = await chat.say("kalau yang elektronik?")
    assert "Rp650.000" in reply.text and "Rp950.000" in reply.text


async def test_follow_up_with_another_place_after_an_office_answer(chat):
    first = await chat.say("sy di palembang bikin paspor dimana")
    assert "Kantor Imigrasi Kelas I TPI Palembang" in first.text
    reply = await chat.say("kalau di lahat?")
    assert "Lahat" in reply.text and "Kantor Imigrasi Kelas II Non TPI Muaraenim" in reply.text


async def test_follow_up_how_long_after_same_day_service(chat):
    await chat.say("paspor bisa jadi hari itu juga gak")
    reply = await chat.say("berapa lama?")
    assert "hari" in reply.text and "percepatan" in reply.text.lower()


async def test_a_follow_up_word_alone_without_history_is_not_guessed(chat):
    reply = await chat.say("kalau yang elektronik?")
    assert "Rp" not in reply.text or "elektronik" in reply.text.lower()


async def test_greeting_and_thanks_around_a_question_answer_the_question(chat):
    reply = await chat.say("Assalamualaikum min. Mau tanya, syarat bikin paspor baru apa aja ya? Terima kasih")
    assert "e-KTP" in reply.text and "Kartu Keluarga" in reply.text
    short = await chat.say("Assalamualaikum min, mau tanya syarat bikin paspor apa aja ya? makasih")
    assert "e-KTP" in short.text and "Maksud Anda" not in short.text


async def test_two_questions_answer_the_first_and_offer_the_second(chat):
    reply = await chat.say("Syarat bikin paspor apa aja? Terus biayanya berapa?")
    assert "e-KTP" in reply.text
    assert reply.buttons[0].title == "Biaya paspor"
    fees = await chat.say(reply.buttons[0].payload)
    assert "Rp350.000" in fees.text


async def test_a_story_with_the_question_at_the_end(chat):
    story = ("Selamat siang. Saya kerja di Jakarta tapi sekarang lagi pulang kampung ke Prabumulih karena orang tua "
             "sakit, rencananya bulan depan mau umroh bareng ibu saya yang sudah sepuh. Saya belum pernah punya "
             "paspor sama sekali. Kalau paspor hilang di perjalanan nanti gimana ngurusnya?")
    reply = await chat.say(story)
    assert "kepolisian" in reply.text  # the lost-passport procedure, not the umrah answer


async def test_english_question_in_a_long_message(chat):
    reply = await chat.say("Hi there, I'm an Indonesian living in Palembang and I have a trip coming up in a few "
                           "weeks. My passport was issued in 2017. How long does it take to get a new passport?")
    assert "working days" in reply.text


async def staff_notices(store, staff_chat: str) -> list:
    """What the outbox holds for a staff chat (sent or not yet)."""
    return [row for row in await store.due_outbox(limit=10, now=10**10) if row.chat_id == staff_chat]


async def test_complaint_about_a_tout_is_acknowledged_warned_and_routed_to_staff(content, store):
    assistant = Assistant(content, store, staff_chats={"muaraenim": ("telegram", "-100200")})
    chat = Chat(assistant, chat_id="warga-lahat")
    reply = await chat.say("sy wong lahat, td di kantor imigrasi ada calo minta duit 2 juta biar cepet, kecewa nian")
    assert "calo" in reply.text and "PNBP" in reply.text
    assert "Kantor Imigrasi Kelas II Non TPI Muaraenim" in reply.text
    notices = await staff_notices(store, "-100200")
    assert notices and "Keluhan warga" in notices[0].payload["text"]
    relayed = await chat.say("kejadiannya tadi pagi jam 9 di depan loket")
    assert relayed.text == ""  # staff have the conversation now: MIA stays silent


async def test_complaint_without_a_place_asks_for_it_then_routes(content, store):
    assistant = Assistant(content, store, staff_chats={"palembang": ("telegram", "-100100")})
    chat = Chat(assistant, chat_id="warga-x")
    first = await chat.say("pelayanan paspornya lambat banget, petugasnya jutek")
    assert "calo" in first.text and "kabupaten/kota" in first.text
    second = await chat.say("banyuasin")
    assert "Kantor Imigrasi Kelas I TPI Palembang" in second.text
    assert await staff_notices(store, "-100100")


async def test_neighbouring_topics_get_a_referral_not_a_fallback(chat):
    ktp = await chat.say("ktp sy blm jadi2 udh 3 bulan, blanko habis trs")
    assert "Disdukcapil" in ktp.text
    visa = await chat.say("syarat visa jepang apa aja ya")
    assert "kedutaan" in visa.text
    kitas = await chat.say("my kitas expires next month, how do i extend it")
    assert "imigrasi.go.id" in kitas.text


async def test_palembang_malay_question(chat):
    reply = await chat.say("cak mano caro buat paspor, aku dak pernah punyo")
    assert "M-Paspor" in reply.text and "wawancara" in reply.text


async def test_a_village_named_with_its_cue_word_alone_is_understood_as_a_place(chat):
    reply = await chat.say("kelurahan rantau kumpai")
    assert "Rantau Kumpai" in reply.text and "Maaf" not in reply.text
    answer = await chat.say(reply.buttons[0].payload)
    assert "Kantor Imigrasi Kelas II Non TPI Muaraenim" in answer.text


async def test_a_new_question_after_an_answer_is_not_read_as_a_follow_up(chat):
    await chat.say("biaya paspor brp")
    reply = await chat.say("what documents do i need")
    assert "e-KTP" in reply.text and "Rp350.000" not in reply.text


async def test_the_commonest_question_with_syaratnya_is_not_read_as_a_child_passport(chat):
    # "syaratnya" (its requirements) was a word only the children's examples used: adults got the child answer.
    adult = await chat.say("saya mau buat paspor baru, syaratnya apa saja ya?")
    assert "e-KTP" in adult.text and "Kartu Keluarga" in adult.text
    assert "anak" not in adult.text.split("\n")[0].lower()
    umrah = await chat.say("paspor umroh syaratnya apa")
    assert "kata" in umrah.text  # the name-words rule of umrah and hajj passports
    child = await chat.say("bikin paspor anak syaratnya apa")
    assert "orang tua" in child.text.lower()


async def test_an_app_complaint_answered_as_app_trouble_can_become_a_complaint(content, store):
    # Public messages about the app are often both: trouble to fix and a grievance to report.
    assistant = Assistant(content, store, staff_chats={"palembang": ("telegram", "-100100")})
    chat = Chat(assistant, chat_id="warga-app")
    reply = await chat.say("aplikasi m paspor error terus dari kemarin, kecewa banget")
    assert "Kendala aplikasi" in reply.text
    button = next(b for b in reply.buttons if b.title == "Sampaikan keluhan")
    complaint = await chat.say(button.payload)
    assert "calo" in complaint.text and "kabupaten/kota" in complaint.text
    await chat.say("ogan ilir")
    notices = await staff_notices(store, "-100100")
    assert notices and "Keluhan warga" in notices[0].payload["text"]


# Misreadings found by trying MIA as a new user (issue 17), each tried in other words.

async def test_the_commonest_opener_is_how_to_apply_not_group_service(chat):
    for opener in ("saya pengen bikin paspor", "mau buat paspor nih min"):
        reply = await chat.say(opener)
        assert "Eazy" not in reply.text.split("\n")[0]
        assert "M-Paspor" in reply.text or "Cara membuat paspor" in [b.title for b in reply.buttons]


async def test_a_follow_up_about_a_child_after_the_requirements(chat):
    await chat.say("dokumen apa aja buat bikin paspor")
    reply = await chat.say("kalo buat anak gimana?")
    assert "akta kelahiran anak" in reply.text


async def test_what_now_after_a_complaint_asks_for_the_regency_again(chat):
    first = await chat.say("petugas loketnya kasar sekali sama saya")
    assert "kabupaten/kota" in first.text
    again = await chat.say("trus saya mesti ngapain?")
    assert "kabupaten/kota" in again.text and "Maksud Anda" not in again.text


async def test_asking_the_status_of_my_request_is_not_the_passport_status_refusal(chat):
    reply = await chat.say("gimana status permintaan lapor rakit saya")
    assert "Lapor Rakit" in reply.text and "RKT-" in reply.text
    ref = await chat.say("tolong cek RKT-2026-000042")
    assert "RKT-2026-000042" in ref.text and "tidak ditemukan" in ref.text
    after = await chat.say("biaya paspor brp")
    assert "Biaya paspor" in after.text  # still Indonesian: one reference is no switch to English


async def test_a_greeting_wrapped_around_a_question_answers_the_question(chat):
    reply = await chat.say("selamat pagi kak, mau nanya biaya bikin paspor")
    assert "Rp350.000" in reply.text


async def test_leaving_tomorrow_offers_the_same_day_service(chat):
    reply = await chat.say("besok pagi sudah harus terbang tapi paspor belum punya")
    assert "percepatan" in reply.text.lower() or "Paspor selesai hari ini" in [b.title for b in reply.buttons]
    assert not reply.text.startswith("Lada Tunggu")


async def test_a_weekend_application_is_the_weekend_service_not_the_emergency_one(chat):
    reply = await chat.say("bisa bikin paspor di lahat hari sabtu?")
    assert reply.text.lstrip("*").startswith("Lapor Tunggu'")


async def test_english_renewal_documents_get_the_renewal_answer(chat):
    reply = await chat.say("what do I need to bring to renew my passport?")
    assert "renewal" in reply.text.lower() and "old passport" in reply.text
    assert "Agustus" not in reply.text and "Januari" not in reply.text  # English answers, English months


async def test_is_anyone_there_does_not_start_lapor_rakit(chat):
    reply = await chat.say("halo? ada yang jaga?")
    assert "nama lengkap pemohon" not in reply.text.lower()
    assert "Bicara dengan petugas" in [b.title for b in reply.buttons]


async def test_no_birth_certificate_is_answered_with_the_alternatives(chat):
    await chat.say("persyaratan bikin paspor baru apa ya")
    reply = await chat.say("kalau tidak punya akta lahir?")
    assert "ijazah" in reply.text and "Disdukcapil" not in reply.text


STAFF = {"palembang": ("telegram", "-100100"), "muaraenim": ("telegram", "-100200")}


async def test_an_office_asked_about_is_not_where_the_citizen_lives(content, store):
    assistant = Assistant(content, store, staff_chats=STAFF)
    for n, talk in enumerate((["sy tinggal di prabumulih", "kantor imigrasi muara enim buka jam brp?",
                               "mau ngomong sm petugas"],
                              ["sy tinggal di sukarami palembang",
                               "bisa bikin paspor di kantor imigrasi muara enim aja ga?", "Bicara dengan petugas"])):
        chat = Chat(assistant, chat_id=f"warga-{n}")
        for text in talk:
            reply = await chat.say(text)
        assert "diteruskan ke petugas *Kantor Imigrasi Kelas I TPI Palembang*" in reply.text
        assert "Muaraenim" not in reply.text


async def test_a_citizen_outside_sumsel_asking_for_an_officer_is_told_why(content, store):
    chat = Chat(Assistant(content, store, staff_chats=STAFF), chat_id="warga-jakarta")
    await chat.say("Bicara dengan petugas")
    reply = await chat.say("jakarta")
    assert "luar Sumatera Selatan" in reply.text and "M-Paspor" in reply.text
    assert "Boleh tahu Anda tinggal" not in reply.text
    assert await staff_notices(store, "-100100") == [] and await staff_notices(store, "-100200") == []
    lahat = await chat.say("oh sy di lahat")
    assert "diteruskan ke petugas *Kantor Imigrasi Kelas II Non TPI Muaraenim*" in lahat.text


async def test_the_address_and_hours_buttons_after_an_office_answer_name_that_office(chat):
    """A citizen from Baturaja taps "Alamat & kontak kantor" and "Jam pelayanan" under the answer:
    both speak of Kanim Muaraenim and its Baturaja point, not of every office."""
    first = await chat.say("sy dr baturaja mau bikin paspor")
    assert "Kantor Imigrasi Kelas II Non TPI Muaraenim" in first.text
    contact = await chat.say("Alamat & kontak kantor")
    assert "*Kantor Imigrasi Kelas II Non TPI Muaraenim*" in contact.text and "UKK Baturaja" in contact.text
    assert "Pangeran Ratu" not in contact.text  # Palembang's street is not theirs
    hours = await chat.say("Jam pelayanan")
    assert "Jam layanan harian Kanim Muaraenim belum tercantum" in hours.text
    assert "Kanim Palembang, Kanim Muaraenim" not in hours.text


async def test_without_a_known_home_the_hours_speak_of_every_office(chat):
    reply = await chat.say("jam buka kantor imigrasi brp")
    assert "Kanim Palembang, Kanim Muaraenim dan Kanim Lubuklinggau" in reply.text
