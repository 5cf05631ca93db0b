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


# Follow-ups that lost the topic (a reviewer's findings, issue: follow-ups), each tried in other words.

async def follow_up(chat, first: str, then: str):
    """What the citizen reads when `then` follows MIA's answer to `first`."""
    await chat.say(first)
    return await chat.say(then)


async def test_weekends_asked_about_after_the_processing_time_get_that_answer_not_the_weekend_service(chat):
    """The processing-time answer says weekends do not count: asked again, that is the answer. A
    weekend service, which that answer does not speak of, is still the weekend service."""
    for first, then in (("brp lama paspor jadi", "sabtu minggu diitung ga"),
                        ("berapa lama proses paspor", "sabtu minggu ikut dihitung?"),
                        ("brp hari jadinya paspor", "hari sabtu minggu diitung gak?")):
        reply = await follow_up(chat, first, then)
        assert "Sabtu dan Minggu tidak dihitung" in reply.text and "Lapor Tunggu" not in reply.text
    for then in ("do weekends count?", "do the weekends count?"):
        english = await follow_up(chat, "how long does a passport take", then)
        assert "weekends do not count" in english.text and "Lapor Tunggu" not in english.text
    service = await follow_up(chat, "brp lama paspor jadi", "ada layanan paspor sabtu minggu gak?")
    assert "Lapor Tunggu" in service.text


async def test_the_year_of_an_old_passport_after_the_renewal_answer_stays_renewal(chat):
    """The renewal answer says what a passport issued before 2009 needs: the year is no lost passport."""
    for first, then in (("syarat perpanjang paspor apa aja min", "paspor sy terbit 2008"),
                        ("perpanjang paspor gmn", "pasporku terbit tahun 2006"),
                        ("syarat perpanjang paspor", "paspor saya terbit 2007 min")):
        reply = await follow_up(chat, first, then)
        assert "Perpanjangan (penggantian) paspor" in reply.text and "2009" in reply.text
        assert "kepolisian" not in reply.text


async def test_renewal_asked_after_the_child_passport_gets_the_renewal_answer(chat):
    for first, then in (("what are the requirements for a child passport?", "what about requirements for renewal?"),
                        ("what does a child passport need?", "and for renewal?"),
                        ("child passport requirements", "what about renewal?")):
        reply = await follow_up(chat, first, then)
        assert "A passport renewal (replacement)" in reply.text and "A child's passport" not in reply.text


async def test_lost_after_a_renewal_reached_by_a_follow_up_gets_the_lost_passport_answer(chat):
    await chat.say("syarat paspor baru")
    await chat.say("kalau perpanjang?")
    assert "kepolisian" in (await chat.say("kalau hilang?")).text
    await chat.say("dokumen bikin paspor apa aja")
    renewal = await chat.say("klo perpanjang gmn")
    assert "Perpanjangan (penggantian) paspor" in renewal.text
    lost = await chat.say("klo ilang?")
    assert "kepolisian" in lost.text and "Perpanjangan" not in lost.text
    await chat.say("what do i need for a new passport")
    await chat.say("and to renew one?")
    english = await chat.say("and if it's lost?")
    assert "police" in english.text and "renewal" not in english.text


async def test_thanks_with_a_question_in_the_same_sentence_answers_the_question(chat):
    renew = await chat.say("oke makasih, kalau perpanjang syaratnya apa?")
    assert "Perpanjangan (penggantian) paspor" in renew.text and "Sama-sama" not in renew.text
    fees = await chat.say("makasih min, trus biayanya brp?")
    assert "Rp350.000" in fees.text and "Sama-sama" not in fees.text
    lost = await chat.say("siap terima kasih kak, kalau paspor hilang gimana ya")
    assert "kepolisian" in lost.text
    renewal = await chat.say("thank you, and how do i renew it?")
    assert "A passport renewal (replacement)" in renewal.text
    electronic = await follow_up(chat, "biaya paspor brp", "makasih min, kalo yg elektronik?")  # after thanks
    assert "Paspor elektronik (e-paspor)" in electronic.text and "Sama-sama" not in electronic.text
    thanks = await chat.say("oke siap, makasih bang")
    assert "Sama-sama" in thanks.text
    remark = await follow_up(chat, "brp lama paspor jadi", "Prosesnya cepat. Thx.")  # a remark: no question
    assert "Sama-sama" in remark.text


async def test_another_place_after_an_office_answer_names_the_office_of_that_place(chat):
    for then in ("di muara enim bisa?", "boleh bikin di muara enim?"):
        reply = await follow_up(chat, "min klo mau bikin paspor di ogan ilir kemana ya", then)
        assert "Kantor Imigrasi Kelas II Non TPI Muaraenim" in reply.text and "Maaf" not in reply.text
    english = await follow_up(chat, "i live in ogan ilir, where do i go for a passport?", "can i go to lahat?")
    assert "Kantor Imigrasi Kelas II Non TPI Muaraenim" in english.text


async def test_a_message_that_follows_nothing_up_does_not_get_the_previous_answer_again(chat):
    """Gibberish, a place alone or an unrelated question after an answer is not a follow-up of it."""
    gibberish = await follow_up(chat, "brp lama paspor jadi", "asdfgh")
    assert "hari kerja" not in gibberish.text
    place = await follow_up(chat, "biaya paspor brp", "prabumulih")
    assert "Prabumulih" in place.text and "Rp350.000" not in place.text
    unrelated = await follow_up(chat, "syarat perpanjang paspor", "resep pindang patin")
    assert "Perpanjangan" not in unrelated.text


async def test_a_citizen_abroad_is_told_the_steps_are_for_offices_in_indonesia(chat):
    """Lost or renewing a passport while abroad (migrant workers, pilgrims): MIA's steps are for the
    offices in Indonesia and its sources say nothing of abroad, so it says so and offers an officer."""
    for text, country in (("paspor saya hilang di malaysia gimana", "Malaysia"),
                          ("paspor ilang pas lagi kerja di taiwan min", "Taiwan"),
                          ("perpanjang paspor di arab saudi gmn caranya", "Arab Saudi"),
                          ("syarat perpanjang paspor di luar negeri apa aja", "luar negeri")):
        reply = await chat.say(text)
        assert f"Jika Anda sedang di {country}: langkah di atas berlaku di kantor imigrasi di Indonesia" in reply.text
        assert "Bicara dengan petugas" in [b.title for b in reply.buttons]
    english = await chat.say("I lost my passport in Hong Kong, what do I do?")
    assert "If you are in Hong Kong: the steps above are for immigration offices in Indonesia" in english.text
    assert "Talk to an officer" in [b.title for b in english.buttons]


async def test_a_trip_abroad_or_no_country_keeps_the_plain_answer(chat):
    for text in ("mau ke malaysia tapi paspor hilang", "paspor hilang gimana min", "syarat perpanjang paspor",
                 "mau umroh ke arab saudi, syarat paspornya apa"):
        reply = await chat.say(text)
        assert "Jika Anda sedang di" not in reply.text and "If you are" not in reply.text


async def test_a_citizen_abroad_asking_for_an_officer_is_told_plainly_instead_of_asked_again(chat):
    """"sy skrg di kuala lumpur" after "Bicara dengan petugas": no office MIA serves covers it, and
    its sources say nothing of abroad; the region question is not asked again."""
    for where in ("sy skrg di kuala lumpur", "saya lagi kerja di taiwan", "I'm in Hong Kong"):
        await chat.say("bicara dengan petugas")
        reply = await chat.say(where)
        assert "17 kabupaten/kota di Sumatera Selatan" in reply.text or "17 regencies" in reply.text
        assert "luar negeri" in reply.text or "abroad" in reply.text
        assert not reply.text.startswith("Boleh tahu Anda tinggal")
    city = await chat.say("sy di riyadh arab saudi, paspor sy mau habis, perpanjang gmn?")
    assert "Jika Anda sedang di Arab Saudi" in city.text


async def test_ok_after_an_english_answer_stays_in_english(chat):
    await chat.say("How long does it take to get a passport?")
    for text in ("ok", "okay"):
        reply = await chat.say(text)
        assert "Sampai jumpa" not in reply.text and "Goodbye" in reply.text
    await chat.say("berapa lama paspor jadi")
    assert "Sampai jumpa" in (await chat.say("ok")).text


async def test_someone_from_another_province_asking_to_apply_here_is_told_any_office_will_do(chat):
    """"sy dr bengkulu, bisa bikin paspor di palembang?": the answer is that a passport may be applied
    for at any office, and which office serves the place; not the office of "where they live"."""
    for text, office in (("sy dr bengkulu, bisa bikin paspor di palembang?", "Kantor Imigrasi Kelas I TPI Palembang"),
                         ("saya dari jambi boleh buat paspor di palembang", "Kantor Imigrasi Kelas I TPI Palembang"),
                         ("ktp saya lampung, bisa urus paspor di kanim muara enim?",
                          "Kantor Imigrasi Kelas II Non TPI Muaraenim")):
        reply = await chat.say(text)
        assert "tidak harus diajukan di kantor imigrasi sesuai alamat KTP" in reply.text
        assert f"pilih *{office}*" in reply.text and "dilayani oleh" not in reply.text
    home = await chat.say("sy di palembang bikin paspor dimana")
    assert "Palembang dilayani oleh *Kantor Imigrasi Kelas I TPI Palembang*" in home.text


async def test_the_fine_asked_after_the_lost_passport_answer_is_that_answer(chat):
    """The lost-passport answer names the fine ("Denda ... hilang Rp1.000.000"): asked for it next,
    in the citizen's own words, MIA says that answer again instead of a menu of fees and foreigners'
    fines (its line on the fine mentions "biaya paspor", which the citizen did not ask about)."""
    for first, then in (("paspor saya hilang", "dendanya brp"),
                        ("paspor sy ilang gmn", "dendanya berapa ya min"),
                        ("kalau paspor rusak gimana", "dendanya brp kak"),
                        ("my passport is lost", "how much is the fine?")):
        reply = await follow_up(chat, first, then)
        assert "Rp1.000.000" in reply.text and "Rp500.000" in reply.text, (then, reply.text)
        assert "MIA belum yakin" not in reply.text and "overstay" not in reply.text.lower()
    fees = await follow_up(chat, "paspor saya hilang", "biaya bikin paspor baru brp?")
    assert "Rp350.000" in fees.text  # the passport's own fee is the fee answer


async def test_saying_where_one_lives_before_asking_the_requirements_gets_the_requirements(chat):
    """"sy tinggal di muaraenim mau bikin paspor syaratnya apa": the question is the requirements;
    where the citizen lives is remembered, not answered instead (was: the office of Muara Enim)."""
    for text in ("sy tinggal di muaraenim mau bikin paspor syaratnya apa y",
                 "saya tinggal di lahat, mau buat paspor syaratnya apa aja",
                 "aku domisili prabumulih mau bikin paspor, syaratnya apa kak"):
        reply = await chat.say(text)
        assert "e-KTP" in reply.text and "Kartu Keluarga" in reply.text, (text, reply.text)
        assert "dilayani oleh" not in reply.text
    office = await chat.say("sy tinggal di lahat, kantor imigrasinya dimana")
    assert "Kantor Imigrasi Kelas II Non TPI Muaraenim" in office.text
