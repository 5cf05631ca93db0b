"""What a citizen reads when naming a village (desa/kelurahan), a postal code or a town."""

from __future__ import annotations

PLG = "Kantor Imigrasi Kelas I TPI Palembang"
MRE = "Kantor Imigrasi Kelas II Non TPI Muaraenim"


async def test_a_village_names_its_office(chat):
    reply = await chat.say("sy tinggal di desa gumawang bikin paspor dmn")
    assert MRE in reply.text and PLG not in reply.text
    assert "Gumawang, Kec. Belitang" in reply.text  # the village and its district, as MIA read them


async def test_a_kelurahan_of_palembang_office_area(chat):
    reply = await chat.say("sy dr kel kenten, kantor imigrasi utk sy dmn")
    assert PLG in reply.text and MRE not in reply.text


async def test_a_village_name_shared_across_offices_gets_a_question_naming_the_districts(chat):
    reply = await chat.say("sy tinggal di desa tanjung baru bikin paspor dmn")
    assert PLG not in reply.text and MRE not in reply.text  # no office guessed
    assert "Kanim Palembang" in reply.text and "Kanim Muaraenim" in reply.text
    titles = [b.title for b in reply.buttons]
    assert len(titles) == 2 and all(t.startswith("Tanjung Baru, Kec. ") for t in titles)
    palembang_choice = next(line for line in reply.text.splitlines() if line.endswith("Kanim Palembang"))
    choice = palembang_choice.lstrip("- ").rsplit(":", 1)[0]
    answer = await chat.say(choice)  # the button's text
    assert PLG in answer.text and MRE not in answer.text
    assert choice in answer.text


async def test_the_district_typed_with_a_shared_village_name_decides(chat):
    reply = await chat.say("sy di desa tanjung baru kecamatan tanjung lubuk, bikin paspor dmn")
    assert PLG in reply.text and MRE not in reply.text


async def test_a_postal_code_routes(chat):
    reply = await chat.say("kode pos sy 31315, bikin paspor ke kantor mana")
    assert MRE in reply.text and PLG not in reply.text
    reply = await chat.say("kodepos 30111 paspor dmn")
    assert PLG in reply.text and "Kode pos 30111" in reply.text


async def test_a_town_routes_and_is_named(chat):
    reply = await chat.say("sy di tanjung enim mau bikin paspor kemana")
    assert MRE in reply.text and "Tanjung Enim" in reply.text


async def test_typos_in_regency_names_route(chat):
    for text, office in (("sy dr lahatt bikin paspor dmn", MRE), ("sy dr muara enimm bikin paspor dmn", MRE),
                         ("warga prabumulh bikin paspor dmn", PLG), ("lubuk lingau bikin paspor dmn", MRE)):
        reply = await chat.say(text)
        assert office in reply.text, (text, reply.text)


async def test_a_passport_question_with_everyday_words_names_no_place(chat):
    reply = await chat.say("paspor saya hilang, terakhir di dalam tas, gmn ngurusnya")
    assert "Kec." not in reply.text and "dilayani oleh" not in reply.text
