"""What a citizen reads when naming a village (desa/kelurahan), a postal code or a town."""

from __future__ import annotations

import pytest

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


# -- a village named like a district (or a regency's town) under the other office -------------------

# After "desa"/"kelurahan" the name is the village too: Desa Sukarami lies in OKU, Lahat, OKU Selatan...
# (Kanim Muaraenim) as well as Kecamatan and Kelurahan Sukarami in Palembang. MIA asks instead of
# stating one office, and each choice then gets its office.
VILLAGES_NAMED_LIKE_DISTRICTS = [
    "sy tinggal di desa sukarami, bikin paspor kemana",
    "sy tinggal di desa tanjung agung, bikin paspor kemana",
    "sy dr kelurahan lawangkidul, kantor imigrasi utk sy dmn",
    "sy tinggal di desa lawang kidul, paspor dmn",
    "desa karangjaya bikin paspor dmn",
    "kelurahan muara dua, paspor ke kantor mana",
    "sy di desa pajar bulan bikin paspor dmn",
    "desa sungai rotan, paspor dmn",
    "sy tinggal di desa purwodadi, bikin paspor kemana",
    "desa betung paspor dmn",
    "kel suka karya bikin paspor dmn",
    "desa tanjung raja paspor dmn",
    "desa rantau panjang paspor dmn",
    "desa tanah abang paspor dmn",
    "desa tugumulyo paspor dmn",
    "desa makarti jaya paspor dmn",
    "sy tinggal di desa sukaramii, paspor dmn",  # a typo of the district's name
]


async def _choices_each_get_their_office(assistant, text, reply):
    """Taps each button of the region question `text` got, each in a fresh conversation: the office
    listed beside the choice answers."""
    from tests.conftest import Chat

    full = {"Kanim Palembang": PLG, "Kanim Muaraenim": MRE}
    listed = dict(line.lstrip("- ").rsplit(": ", 1) for line in reply.text.splitlines() if line.startswith("- "))
    assert sorted(listed.values()) == ["Kanim Muaraenim", "Kanim Palembang"], reply.text
    assert sorted(b.title for b in reply.buttons) == sorted(listed), reply.text
    for n, (choice, office) in enumerate(listed.items()):
        chat = Chat(assistant, f"citizen-choice-{n}")
        assert (await chat.say(text)).text == reply.text
        answer = await chat.say(choice)
        other = PLG if full[office] == MRE else MRE
        assert full[office] in answer.text and other not in answer.text, (choice, answer.text)


@pytest.mark.parametrize("text", VILLAGES_NAMED_LIKE_DISTRICTS)
async def test_a_village_named_like_a_district_of_the_other_office_gets_a_question(chat, assistant, text):
    reply = await chat.say(text)
    assert PLG not in reply.text and MRE not in reply.text, reply.text  # no office stated
    assert "Kanim Palembang" in reply.text and "Kanim Muaraenim" in reply.text
    await _choices_each_get_their_office(assistant, text, reply)


@pytest.mark.parametrize("text", [
    "sy tinggal di desa argo mulyo bikin paspor dmn",  # also Argomulyo, Kec. Belitang Jaya (OKU Timur)
    "desa kemang manis paspor dmn",  # also Kelurahan Kemangmanis, Palembang
    "desa wono rejo paspor dmn",  # also Wonorejo in Lahat
    "kelurahan kemangmanis paspor dmn",
])
async def test_a_village_spelt_with_or_without_a_space_across_offices_gets_a_question(chat, text):
    reply = await chat.say(text)
    assert PLG not in reply.text and MRE not in reply.text, reply.text
    assert "Kanim Palembang" in reply.text and "Kanim Muaraenim" in reply.text


@pytest.mark.parametrize("text, office, named", [
    # The district (or regency) named with the village decides, however the name is spaced.
    ("sy tinggal di desa lawang kidul kec ilir timur dua, paspor dmn", PLG, "Lawangkidul, Kec. Ilir Timur Dua"),
    ("desa karang jaya kec gandus paspor dmn", PLG, "Karangjaya, Kec. Gandus"),
    ("desa sukarami kec gumay talang bikin paspor dmn", MRE, "Sukarami, Kec. Gumay Talang"),
    ("desa tanjung agung kec indralaya paspor dmn", PLG, "Tanjung Agung, Kec. Indralaya"),
    ("desa betung kec abab paspor dmn", MRE, "Betung, Kec. Abab"),
    ("sy tinggal di kelurahan sukarami kota palembang, paspor dmn", PLG, "Sukarami, Kec. Sukarami (Kota Palembang)"),
    ("desa tanjung agung kab muara enim paspor dmn", MRE, "Tanjung Agung (Kabupaten Muara Enim)"),
    # Without a village word the district is meant, as before.
    ("sy tinggal di sukarami, bikin paspor kemana", PLG, "Sukarami (Kota Palembang)"),
    ("sy di betung, paspor dmn", PLG, "Betung (Kabupaten Banyuasin)"),
    ("sy tinggal di tanjung agung bikin paspor dmn", MRE, "Tanjung Agung (Kabupaten Muara Enim)"),
    ("kecamatan lawang kidul paspor dmn", MRE, "Lawang Kidul (Kabupaten Muara Enim)"),
])
async def test_a_village_with_its_district_or_a_district_alone_names_one_office(chat, text, office, named):
    reply = await chat.say(text)
    other = PLG if office == MRE else MRE
    assert office in reply.text and other not in reply.text, reply.text
    assert named in reply.text


@pytest.mark.parametrize("text, named", [
    ("sy tinggal di desa pagar alam, paspor dmn", "Pagar Alam, Kec. Pagar Alam Utara (Kota Pagar Alam)"),
    ("kelurahan muara enim, paspor dmn", "(Kabupaten Muara Enim)"),
    ("desa kota agung bikin paspor dmn", "(Kabupaten Lahat)"),  # and villages in Muara Enim, OKU Selatan
    ("desa gelumbang paspor dmn", "(Kabupaten Muara Enim)"),  # and a village in Lahat
])
async def test_namesakes_under_one_office_name_that_office(chat, text, named):
    reply = await chat.say(text)
    assert MRE in reply.text and PLG not in reply.text, reply.text
    assert named in reply.text.splitlines()[0]


# -- a district named with the regency it is colloquially in -----------------------------------------

@pytest.mark.parametrize("text", [
    "sy di pendopo talang ubi pali",
    "sy di pendopo, kab pali, paspor dmn",
    "sy tinggal di pendopo kecamatan talang ubi, paspor dmn",
    "sy di pendopo penukal abab lematang ilir bikin paspor dimana",
])
async def test_pendopo_named_with_pali_is_in_pali(chat, text):
    """Pendopo is a district of Empat Lawang and the oil town of Talang Ubi, PALI: the regency the
    citizen named is the one MIA names."""
    reply = await chat.say(text)
    first = reply.text.splitlines()[0]
    assert first.startswith("Penukal Abab Lematang Ilir dilayani oleh") and MRE in first, reply.text
    assert "Empat Lawang)" not in reply.text


async def test_pendopo_alone_is_the_district_of_empat_lawang(chat):
    reply = await chat.say("sy di pendopo, paspor dmn")
    assert "Pendopo (Kabupaten Empat Lawang)" in reply.text and MRE in reply.text


@pytest.mark.parametrize("text, named", [
    ("sy di lahat kec pendopo paspor dmn", "Lahat dilayani oleh"),
    ("sy di muratara kec rambang paspor dmn", "Musi Rawas Utara dilayani oleh"),
    ("sy di pagar alam kec gelumbang paspor dmn", "Pagar Alam dilayani oleh"),
])
async def test_the_place_named_lies_in_the_regency_named(chat, text, named):
    """A regency and a district of another regency (one office): MIA names no district with the
    wrong regency ("Pendopo (Kabupaten Lahat)")."""
    reply = await chat.say(text)
    assert reply.text.splitlines()[0].startswith(named), reply.text
    assert MRE in reply.text
