"""What MIA knows: each fact family asked as a citizen would, answered with the sourced fact."""

from __future__ import annotations

import datetime as dt
import json
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from bot.core.assistant import Assistant
from bot.content.checks import check_content
from bot.core.content import Content
from bot.core.responses import cite, dated, rupiah
from bot.store.base import ConversationState
from tests.conftest import ROOT, mia_command


def ask(content: Content, text: str) -> str:
    """What a citizen reads after one message in a fresh conversation."""
    return Assistant(content, None).respond(text, ConversationState()).replies[0].text


def lines(content: Content, fact: str, lang: str = "id") -> list[str]:
    return list(getattr(content.knowledge.facts[fact].text, lang))


# Each case: (question as a citizen types it, fact family, how to find the sourced fact in the reply).
# A fact family is a data/facts.yaml entry (every line of it in the reply's language), "fees",
# "acceleration", "lost_fees" or "point:<id>".
QUESTIONS = [
    # requirements (adult, renewal, child, purpose, name words)
    ("syarat bikin paspor baru apa aja", "requirements_adult"),
    ("syarat2 paspr baru apa ya min", "requirements_adult"),
    ("dokumen apa aj yg hrs dibawa buat bikin paspor", "requirements_adult"),
    ("what documents do i need for a passport", "requirements_adult"),
    ("perpanjang paspor bawa apa aja", "requirements_renewal"),
    ("how do i renew my passport", "requirements_renewal"),
    ("syarat paspor anak sy yg umur 5 thn apa", "requirements_child"),
    ("bikin paspor bayi harus bawa apa", "requirements_child"),
    ("what does my child need for a passport", "requirements_child"),
    ("paspor umroh syaratnya apa aja", "requirements_purpose"),
    ("nama di paspor buat haji hrs 3 kata ya", "name_words"),
    ("does my name need three words for umrah", "name_words"),
    # validity
    ("paspor berlaku brp tahun", "validity"),
    ("siapa yg bisa dapet paspor 10 taun", "validity"),
    ("how long is a passport valid", "validity"),
    # e-passport
    ("bedanya e paspor sama paspor biasa apa", "epassport_everywhere"),
    ("is the e-passport available here", "epassport_everywhere"),
    # processing, same day, pickup
    ("paspor jadi berapa hari", "processing_time"),
    ("brp lama bikin paspor sampe jadi", "processing_time"),
    ("how long does it take to get a passport", "processing_time"),
    ("bisa gak paspor jadi hari itu juga", "same_day"),
    ("layanan percepatan paspor gmn caranya", "same_day"),
    ("can i get my passport on the same day", "same_day"),
    ("paspor gak diambil2 udah sebulan gimana", "pickup_deadline"),
    ("what if i dont collect my passport", "pickup_deadline"),
    # lost or damaged
    ("paspor sy ilang gmn ngurusnya", "lost_damaged_procedure"),
    ("paspor rusak kena banjir dendanya brp", "lost_fees"),
    ("i lost my passport what should i do", "lost_damaged_procedure"),
    # fees
    ("biaya paspor brp skrg", "fees"),
    ("harga e paspor 10 thn brp", "fees"),
    ("how much is a passport", "fees"),
    ("percepatan nambah bayar brp", "acceleration"),
    # contacts and hours
    ("nomor wa kantor imigrasi palembang brp", "contacts"),
    ("alamat kanim muaraenim dimana", "contacts"),
    ("how can i contact the immigration office", "contacts"),
    ("jam buka kantor imigrasi jam brp", "ramadan_hours"),
    ("what time does the office open", "ramadan_hours"),
    # service points and the new office
    ("sy tinggal di baturaja bikin paspor dmn", "point:ukk_baturaja"),
    ("sy dr sekayu mau bikin paspor ke kantor mana", "point:ukk_sekayu"),
    ("which office serves musi rawas", "point:ukk_muara_beliti"),
    ("wong lubuklinggau bikin paspor kemano", "point:ukk_lubuklinggau"),
    ("ada berapa kantor imigrasi di sumsel", "point:mpp_palembang"),
]


def expected_in(content: Content, family: str, lang: str) -> list[str]:
    kb = content.knowledge
    if family == "fees":
        return [rupiah(p) for fee in kb.fees.passports for p in fee.prices.values()]
    if family == "acceleration":
        return [rupiah(kb.fees.acceleration.price)]
    if family == "lost_fees":
        return [rupiah(kb.fees.lost_damaged.lost), rupiah(kb.fees.lost_damaged.damaged)]
    if family.startswith("point:"):
        point = next(p for p in kb.service_points if p.id == family.split(":", 1)[1])
        return [point.name]
    fact = kb.facts[family]
    if family == "requirements_purpose":  # an umrah question hears the umrah and hajj lines
        return list(getattr(fact.text, lang))[:2]
    return list(getattr(fact.text, lang))


@pytest.mark.parametrize("question,family", QUESTIONS, ids=[q for q, _ in QUESTIONS])
def test_citizen_question_gets_the_sourced_fact(content, question, family):
    outcome = Assistant(content, None).respond(question, ConversationState())
    reply = outcome.replies[0].text
    lang = outcome.state.lang if outcome.state.lang in ("id", "en") else "id"
    for piece in expected_in(content, family, lang):
        assert piece in reply, f"{question!r}: {piece!r} missing from\n{reply}"
    # Every answer that states a fact names its short source, never a repository path or article id.
    assert re.search(r"^(Sumber|Source): ", reply, re.M), reply
    assert "shared/" not in reply and "548302" not in reply and ".md" not in reply


def test_at_least_forty_questions_in_both_languages():
    english = [q for q, _ in QUESTIONS if re.search(r"\b(what|how|can|is|does|which|i)\b", q)]
    assert len(QUESTIONS) >= 40 and len(english) >= 10


def test_ten_year_rule_says_married_not_ktp(content):
    reply = ask(content, "paspor 10 tahun buat siapa aja")
    assert "menikah" in reply and "KTP (" not in reply and "memiliki KTP" not in reply


def test_baturaja_names_office_and_service_point_with_date(content):
    reply = ask(content, "saya di baturaja")
    assert "Kantor Imigrasi Kelas II Non TPI Muaraenim" in reply or "Muaraenim" in reply
    ask_office = ask(content, "sy di baturaja bikin paspor dmn")
    assert "Kantor Imigrasi Kelas II Non TPI Muaraenim" in ask_office
    assert "UKK Baturaja" in ask_office and "2019" in ask_office


def test_lubuklinggau_citizens_hear_the_new_office_but_are_not_routed_to_it(content):
    outcome = Assistant(content, None).respond("sy dr musi rawas utara bikin paspor kemana", ConversationState())
    reply = outcome.replies[0].text
    assert outcome.office == "muaraenim"
    assert "Kantor Imigrasi Kelas II Non TPI Muaraenim" in reply
    assert "Januari 2026" in reply and "belum diumumkan" in reply
    lahat = ask(content, "sy dr lahat bikin paspor kemana")
    assert "Januari 2026" not in lahat


def test_office_list_shows_offices_points_and_the_new_office(content):
    reply = ask(content, "daftar kantor imigrasi di sumsel")
    for name in ("Kantor Imigrasi Kelas I TPI Palembang", "Kantor Imigrasi Kelas II Non TPI Muaraenim",
                 "Kantor Imigrasi Kelas III Non TPI Lubuklinggau", "UKK Sekayu", "UKK Baturaja",
                 "UKK Muara Beliti", "UKK Lubuklinggau"):
        assert name in reply, name


def test_sekayu_has_no_e_passport_said_with_its_date(content):
    reply = ask(content, "bisa bikin e paspor di sekayu gak")
    assert "UKK Sekayu" in reply and "Juni 2024" in reply


def test_operator_closes_a_service_point_by_data_alone(content_copy):
    path = content_copy / "data" / "offices.yaml"
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    for point in data["service_points"]:
        if point["id"] == "ukk_baturaja":
            point["closed"] = dt.date(2026, 12, 1)
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    reply = ask(Content.load(content_copy), "sy di baturaja bikin paspor dmn")
    assert "Kantor Imigrasi Kelas II Non TPI Muaraenim" in reply and "UKK Baturaja" not in reply


def test_service_point_with_unknown_parent_fails_the_check_naming_the_file(content_copy):
    path = content_copy / "data" / "offices.yaml"
    text = path.read_text(encoding="utf-8").replace("parent: palembang", "parent: jakarta", 1)
    path.write_text(text, encoding="utf-8")
    report = check_content(content_copy)
    assert any("offices.yaml" in str(p.path) and "jakarta" in p.message for p in report.errors)


@pytest.mark.parametrize("field", ["source", "as_of"])
def test_fact_without_source_or_date_fails_the_check_naming_file_and_line(content_copy, field):
    path = content_copy / "data" / "facts.yaml"
    lines_ = path.read_text(encoding="utf-8").splitlines()
    start = lines_.index("  validity:")
    victim = next(i for i in range(start, len(lines_)) if lines_[i].startswith(f"    {field}:"))
    del lines_[victim]
    path.write_text("\n".join(lines_) + "\n", encoding="utf-8")
    report = check_content(content_copy)
    problem = next(p for p in report.errors if str(p.path).endswith("facts.yaml"))
    assert field in problem.message and problem.line is not None and start < problem.line <= victim + 1


def test_old_changeable_facts_are_dated_recent_ones_are_not(content):
    fees = content.knowledge.fees
    assert dated(fees, "id", today=dt.date(2025, 3, 1)) == ""
    assert dated(fees, "id", today=dt.date(2025, 12, 1)) == "per Desember 2024"
    assert dated(fees, "en", today=dt.date(2025, 12, 1)) == "as of December 2024"
    assert cite([fees, fees.lost_damaged], "id", today=dt.date(2025, 12, 1)) == "PP 45/2024 (per Desember 2024)"
    facts = content.knowledge.facts  # one regulation behind two facts is named once, with the newer date
    assert cite([facts["requirements_child"], facts["validity"]], "id", today=dt.date(2026, 11, 30)) == \
        "Permenkumham 18/2022 (per Oktober 2023)"


def test_fee_answer_names_the_regulation_and_its_date(content):
    reply = ask(content, "biaya paspor brp")
    assert "Sumber: PP 45/2024" in reply
    if (dt.date.today() - content.knowledge.fees.as_of).days > 183:
        assert "per Desember 2024" in reply


def test_mia_facts_lists_every_fact_oldest_first_with_source_and_age():
    out = subprocess.run([*mia_command(), "facts", "--json"], cwd=ROOT, capture_output=True, text=True, check=True)
    rows = json.loads(out.stdout)
    ages = [r["age_days"] for r in rows]
    assert ages == sorted(ages, reverse=True)
    names = {r["name"] for r in rows}
    assert {"requirements_adult", "passport fees", "service point ukk_sekayu", "office lubuklinggau"} <= names
    assert all(r["source"] and r["cite"] and r["confidence"] for r in rows)
    table = subprocess.run([*mia_command(), "facts"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    assert "requirements_adult" in table and "Permenkumham 18/2022" in table and "fakta" in table


# -- no invented address, hour or phone number ------------------------------------------------------------

PHONE = re.compile(r"(?:\+62|\b0)\d[\d\s.-]{6,}\d")
HOUR = re.compile(r"\b\d{1,2}[.:]\d{2}\b")
ADDRESS = re.compile(r"\b(?:Jl\.|Jalan|Jln\.?)\s+\w+", re.I)


def data_text() -> str:
    return "\n".join(p.read_text(encoding="utf-8") for p in (ROOT / "data").glob("*.yaml"))


def test_no_reply_states_an_address_hour_or_phone_that_data_does_not_hold(content):
    """Every intent's template, in both languages, for every office and a regency of each."""
    from bot.content.checks import _sample_contexts

    kb = content.knowledge
    known = data_text()
    rendered = 0
    base = _sample_contexts(content)[1]
    for office in kb.offices:
        regions = kb.regencies_of(office) or kb.regencies[:1]
        for region in regions[:3]:
            for it in content.intents.intents:
                for lang in ("id", "en"):
                    service = kb.services.get(it.id)
                    text = content.responses.render(
                        lang, it.response, **dict(base, office=office, region=region, place=region.short_name,
                                                  service=service,
                                                  service_offices=[kb.office(o) for o in (service.offices if service else ())]))
                    rendered += 1
                    for pattern in (PHONE, HOUR, ADDRESS):
                        for found in pattern.findall(text):
                            assert found in known, f"{it.response} ({lang}) states {found!r}, not in data/"
    assert rendered > 200


def test_citizens_never_see_repository_paths_or_article_ids(content):
    from bot.content.checks import _sample_contexts

    kb = content.knowledge
    for ctx in _sample_contexts(content)[1:]:
        for lang in ("id", "en"):
            for name in sorted(content.responses.names(lang)):
                if name.startswith("_") or name.startswith("staff_"):
                    continue
                service = kb.services.get(name)
                text = content.responses.render(lang, name, **dict(
                    ctx, service=service, service_offices=[kb.office(o) for o in (service.offices if service else ())]))
                assert "shared/" not in text and "FACTS.md" not in text and "548302" not in text, name


async def test_weekly_digest_lists_facts_older_than_a_year(content):
    from bot.runtime.digest import Digest

    sent: list[dict] = []

    class Holder:
        pass

    holder = Holder()
    holder.content = content

    class Store:
        async def review_items(self, since=0.0, office=None, status="open", kinds=None):
            return []

    async def notify(payload):
        sent.append(payload)

    digest = Digest(Store(), None, holder, notify, operator_chat="ops")
    await digest.send(now=dt.datetime(2026, 11, 30, 8).timestamp())
    stale = next(p["text"] for p in sent if "perlu dicek ulang" in p["text"])
    assert "data/facts.yaml: pickup_deadline" in stale and "Kompas, Agustus 2022" in stale
    assert "contacts" not in stale and "office palembang" not in stale  # confirmed this month


def test_asking_for_an_office_address_names_the_nearest_point_and_the_new_office(content):
    reply = ask(content, "alamat kantor imigrasi di lubuklinggau dimana")
    assert "UKK Lubuklinggau" in reply and "Januari 2026" in reply
    assert "belum tercantum" in reply and "www.imigrasi.go.id" in reply
