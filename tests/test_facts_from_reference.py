"""Facts that shared/reference/FACTS.md holds and the data lacked until 2026-12-07, asked as a
citizen would: applying at any office, Palembang's street, the Lakso van's minimum, the weekends of
Lapor Tunggu' and Laksan, Lentera's lunch break, the migrant workers' letter; and replies that send
the citizen to a button show that button."""

from __future__ import annotations

import re

import pytest

from bot.core.assistant import Assistant
from bot.core.content import Content
from bot.store.base import ConversationState


def answer(content: Content, text: str):
    """The intent, the text of the first reply and its button titles, after one message."""
    outcome = Assistant(content, None).respond(text, ConversationState())
    first = outcome.replies[0]
    return outcome.intent, first.text, [b.title for b in first.buttons]


ANY_OFFICE = ["apakah harus bikin paspor sesuai domisili ktp?",
              "ktp sy palembang tp sy kerja di jakarta, bs bikin paspor di sana?"]


@pytest.mark.parametrize("question", ANY_OFFICE)
def test_a_citizen_may_apply_at_any_office(content, question):
    intent, reply, _ = answer(content, question)
    assert intent == "passport_any_office", f"{question!r} -> {intent}\n{reply}"
    assert "tidak harus diajukan di kantor imigrasi sesuai alamat KTP" in reply
    assert "belum tercantum" not in reply  # it is known now
    assert "detikTravel, Januari 2023" in reply


def test_in_english_too(content):
    intent, reply, _ = answer(content, "can I apply at any immigration office, not the one on my ID card?")
    assert intent == "passport_any_office"
    assert "You do not have to apply at the immigration office of the address on your KTP" in reply
    assert "detikTravel, January 2023" in reply


def test_a_citizen_outside_south_sumatra_hears_any_office_will_do(content):
    _, reply, _ = answer(content, "saya tinggal di bandung")
    assert "di luar Sumatera Selatan" in reply and "kantor imigrasi mana pun" in reply


def test_palembang_street_is_named_with_its_age_and_nothing_more(content):
    intent, reply, _ = answer(content, "alamat kantor imigrasi palembang dmn")
    assert intent == "office_contact"
    assert "Jalan Pangeran Ratu, Jakabaring (laporan 2016-2017, tanpa nomor bangunan)" in reply
    assert "berita 2016-2017" in reply  # its own source
    _, reply, _ = answer(content, "alamat kanim muara enim")
    assert "Pangeran Ratu" not in reply and "belum tercantum" in reply


@pytest.mark.parametrize("question,said", [
    ("on the spot service minimal brp orang?", "minimal sekitar 40 pemohon"),
    ("lapor tunggu tiap minggu ke brp?", "akhir pekan kedua dan keempat"),
    ("lentera itu layanan apa", "tetap berjalan pada jam istirahat siang"),
    ("laksan itu apa min", "layanan akhir pekan (Laksan)"),
])
def test_service_facts_of_the_reference(content, question, said):
    _, reply, _ = answer(content, question)
    assert said in reply, f"{question!r}:\n{reply}"


def test_laksan_is_not_read_as_the_lakso_van(content):
    intent, reply, _ = answer(content, "laksan itu apa min")
    assert intent == "svc_lapor_tunggu" and "Lakso" not in reply


def test_the_migrant_workers_letter_is_in_the_requirements(content):
    _, reply, _ = answer(content, "syarat paspor pmi buat kerja ke luar negeri apa aja")
    assert "Dinas Tenaga Kerja (Disnaker)" in reply


CHOOSE = re.compile(r'[Pp]il(?:ih|ih tombol) "([^"]+)"|[Cc]hoose "([^"]+)"')


def test_a_reply_that_says_choose_a_button_shows_it(content):
    """Every answer that tells the citizen to pick "X" carries the button X, in both languages
    ("Bicara dengan petugas" is offered on every channel's menu and typed just as well)."""
    always = {"Bicara dengan petugas", "Talk to an officer"}
    missing = []
    for it in content.intents.intents:
        for lang, title in it.title.items():
            intent, reply, buttons = answer(content, title)
            if intent != it.id:
                continue
            for m in CHOOSE.finditer(reply):
                wanted = m.group(1) or m.group(2)
                if wanted not in buttons and wanted not in always:
                    missing.append((it.id, lang, wanted, buttons))
    assert not missing, missing


ENGLISH = ["how long does a passport take", "what is the drive thru passport service",
           "where is the immigration office in palembang", "how do i book an online queue",
           "what is lapor tunggu"]


@pytest.mark.parametrize("question", ENGLISH)
def test_english_sources_are_in_english(content, question):
    _, reply, _ = answer(content, question)
    source = reply.rsplit("Source:", 1)[-1]
    assert "Source:" in reply and not re.search(r"\b(berita|laporan|situs|Januari|Desember|Agustus)\b", source), reply
