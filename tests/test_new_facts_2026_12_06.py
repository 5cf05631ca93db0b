"""The two facts added on 2026-12-06: Palembang's drive-thru passport service and the regional
office (Kanwil Ditjen Imigrasi Sumsel), asked as a citizen would and answered with the sourced fact."""

from __future__ import annotations

import re

import pytest

from bot.core.assistant import Assistant
from bot.core.content import Content
from bot.store.base import ConversationState


def answer(content: Content, text: str):
    """The intent and what a citizen reads after one message in a fresh conversation."""
    outcome = Assistant(content, None).respond(text, ConversationState())
    lang = outcome.state.lang if outcome.state.lang in ("id", "en") else "id"
    return outcome.intent, outcome.replies[0].text, lang


HOUR = re.compile(r"\b\d{1,2}[.:]\d{2}\b")

# -- drive-thru (Kanim Palembang, indodaily Januari 2026) ------------------------------------------------

DRIVE_THRU = [
    ("ada drive thru paspor di palembang?", "id"),
    ("bisa bikin paspor tanpa turun dari mobil?", "id"),
    ("drive thru imigrasi", "id"),
    ("drive tru imigrasi plg ada?", "id"),
    ("ado drive thru di kanim plg dak", "id"),
    ("drive thru paspor jam brp ya", "id"),
    ("is there a drive thru for passports in palembang", "en"),
    ("is there a drive-through at the immigration office?", "en"),
]


@pytest.mark.parametrize("question,lang", DRIVE_THRU, ids=[q for q, _ in DRIVE_THRU])
def test_drive_thru_question_names_the_service_and_what_is_not_known(content, question, lang):
    intent, reply, got_lang = answer(content, question)
    assert intent == "svc_drive_thru", f"{question!r} -> {intent}\n{reply}"
    assert got_lang == lang
    service = content.knowledge.services["svc_drive_thru"]
    for line in getattr(service.facts, lang):
        assert line in reply, f"{line!r} missing from\n{reply}"
    assert "Drive-thru" in reply and "Kanim Palembang" in reply
    if lang == "id":
        assert "Jam layanan, kuota" in reply and "belum tercantum di sumber kami" in reply
        assert "Sumber: indodaily, Januari 2026" in reply
    else:
        assert "hours, the quota" in reply and "not in our sources" in reply
        assert "Source: indodaily, January 2026" in reply
    assert not HOUR.search(reply), "no hour is known for the drive-thru"


def test_drive_thru_for_a_muaraenim_citizen_says_it_is_recorded_in_palembang(content):
    intent, reply, _ = answer(content, "sy tinggal di lahat, ada drive thru paspor gak?")
    assert intent == "svc_drive_thru"
    assert "Lahat dilayani Kanim Muaraenim" in reply and "tercatat di Kanim Palembang" in reply


def test_services_list_includes_the_drive_thru(content):
    intent, reply, _ = answer(content, "layanan inovasi imigrasi apa aja")
    assert intent == "services_list"
    assert "Drive-thru paspor" in reply and "indodaily, Januari 2026" in reply


def test_drive_thru_entry_is_sourced_and_invents_nothing(content):
    service = content.knowledge.services["svc_drive_thru"]
    assert service.offices == ("palembang",)
    assert service.cite == "indodaily, Januari 2026" and service.as_of.year == 2026 and service.as_of.month == 1
    assert service.confidence == "medium" and "indodaily" in service.source
    for line in service.facts.id + service.facts.en:
        assert not HOUR.search(line) and not re.search(r"\d+ (orang|pemohon|applicants)", line)


# -- the regional office (tribun/sripoku 4/7/2025) ----------------------------------------------------------

KANWIL = [
    ("kanwil imigrasi sumsel namanya apa", "id"),
    ("kantor wilayah imigrasi sumsel", "id"),
    ("nama kanwil imigrasi sumsel skrg apa", "id"),
    ("kanwil imigrsi sumsel", "id"),
    ("kakanwil imigrasi sumatera selatan siapa", "id"),
    ("what is the name of the immigration regional office in south sumatra", "en"),
    ("who is the head of the immigration regional office?", "en"),
]


@pytest.mark.parametrize("question,lang", KANWIL, ids=[q for q, _ in KANWIL])
def test_regional_office_question_gets_its_current_name(content, question, lang):
    intent, reply, got_lang = answer(content, question)
    assert intent == "office_list", f"{question!r} -> {intent}\n{reply}"
    assert got_lang == lang
    for line in getattr(content.knowledge.facts["regional_office"].text, lang):
        assert line in reply, f"{line!r} missing from\n{reply}"
    assert "Kanwil Ditjen Imigrasi Sumatera Selatan" in reply
    assert "Guntur Sahat Hamonangan" in reply
    # The current name comes first, before the list of offices, with its source and month.
    assert reply.index("Kanwil Ditjen Imigrasi Sumatera Selatan") < reply.index("Kantor Imigrasi Kelas I TPI Palembang")
    assert re.search(r"^(Sumber|Source): Tribun/Sripoku, (Juli|July) 2025", reply, re.M), reply


def test_regional_office_fact_is_sourced_and_old_cites_stay(content):
    kb = content.knowledge
    fact = kb.facts["regional_office"]
    assert fact.cite == "Tribun/Sripoku, Juli 2025" and str(fact.as_of) == "2025-07-04"
    assert fact.confidence == "medium-high" and "sripoku" in fact.source
    # Historical sources keep the name the office had when they were written.
    sekayu = next(p for p in kb.service_points if p.id == "ukk_sekayu")
    assert sekayu.cite == "Kanwil Kemenkumham Sumsel, Juni 2024"


def test_office_list_still_lists_every_office_after_the_regional_office(content):
    _, reply, _ = answer(content, "daftar kantor imigrasi di sumsel")
    assert "Kanwil Ditjen Imigrasi Sumatera Selatan" in reply
    for name in ("Kantor Imigrasi Kelas I TPI Palembang", "Kantor Imigrasi Kelas II Non TPI Muaraenim",
                 "Kantor Imigrasi Kelas III Non TPI Lubuklinggau", "UKK Sekayu", "UKK Baturaja"):
        assert name in reply, name
