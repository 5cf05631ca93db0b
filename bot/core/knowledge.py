"""Facts MIA may state (offices, regions, fees, services), loaded from data/ with their sources."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal, Sequence

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator

from bot.core.yamlfile import ContentError, ContentErrors, load_yaml, validate


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Localized(_Strict):
    """A text in Indonesian and English."""

    id: str
    en: str


class LocalizedList(_Strict):
    id: tuple[str, ...] = ()
    en: tuple[str, ...] = ()


class Sourced(_Strict):
    """What every fact carries: its full source, the short one citizens read, its date, how sure it is."""

    source: str = Field(min_length=3)
    cite: str = Field(min_length=2)  # the short source shown under an answer ("PP 45/2024")
    as_of: date  # the date of the newest source that confirms the fact
    confidence: Literal["high", "medium-high", "medium", "low"]
    changes: bool = True  # a fee, rule, unit or quota: answers name its date once it is old

    @field_validator("as_of")
    @classmethod
    def _not_in_the_future(cls, value: date) -> date:
        if value > date.today() + timedelta(days=1):  # a day of slack for time zones
            raise ValueError(f"tanggal sumber {value.isoformat()} ada di masa depan; tulis tanggal sumber itu terbit "
                             f"/ the source's date is in the future")
        return value


class Fact(Sourced):
    """A passport fact from data/facts.yaml: points to state, per language."""

    text: LocalizedList


class Office(Sourced):
    """An immigration office and the regencies it serves. Unknown facts are None."""

    id: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    name: str
    short_name: str
    seat_names: tuple[str, ...] = ()
    regencies: tuple[str, ...]
    address: str | None = None
    phone: str | None = None
    hours: str | None = None
    mention_for: tuple[str, ...] = ()  # regencies told about this office though it does not serve them yet
    note: Localized | None = None


class ServicePoint(Sourced):
    """A service point (UKK, a public-service-mall counter) under its parent office."""

    id: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    name: str
    parent: str
    town: str
    regency: str
    where: Localized | None = None
    since: date
    nearby: tuple[str, ...] = ()  # regencies for which it is the point in or nearest to them
    offers: LocalizedList = LocalizedList()
    closed: date | None = None


class _OfficesFile(_Strict):
    offices: tuple[Office, ...] = Field(min_length=1)
    service_points: tuple[ServicePoint, ...] = ()


class _FactsFile(_Strict):
    facts: dict[str, Fact]


class _PlacesFile(_Strict):
    source: str
    aliases: dict[str, list[str]]
    district_aliases: dict[str, list[str]] = {}
    needs_cue: list[str] = []
    outside_aliases: dict[str, str] = {}
    outside_ignore: list[str] = []
    towns: dict[str, str] = {}  # town name -> code of the district it lies in
    countries: dict[str, str] = {}  # how citizens write a country -> its name (not read as places)


def _whole_rupiah(value: Any) -> Any:
    """A fee in whole rupiah, written as digits: YAML reads "350.000" as the number 350.0, which
    would quietly become Rp350."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"tulis biaya dalam rupiah sebagai angka tanpa titik, koma atau 'Rp', misalnya 350000 "
                         f"(bukan 350.000) / write the fee as plain digits, e.g. 350000; got {value!r}")
    return value


Rupiah = Annotated[int, BeforeValidator(_whole_rupiah)]


class PassportFee(_Strict):
    kind: str
    name: Localized
    prices: dict[int, Rupiah]


class Acceleration(_Strict):
    price: Rupiah
    note: Localized


class LostDamaged(Sourced):
    lost: Rupiah
    damaged: Rupiah
    disaster_free: bool


class Fees(Sourced):
    """Passport fees (PNBP) with their legal source."""

    passports: tuple[PassportFee, ...]
    acceleration: Acceleration
    ten_year_rule: Localized
    lost_damaged: LostDamaged


class Service(Sourced):
    """A service or innovation of the offices: only the facts its source gives."""

    id: str
    name: str
    also_known_as: tuple[str, ...] = ()
    expansion: str | None = None
    offices: tuple[str, ...] = ()
    facts: LocalizedList


class MPaspor(Sourced):
    name: str
    facts: LocalizedList


class ServedCount(Sourced):
    value: int
    note: Localized


class _ServicesFile(_Strict):
    services: tuple[Service, ...]
    mpaspor: MPaspor
    served_count: ServedCount


@dataclass(frozen=True, slots=True)
class District:
    """A kecamatan of South Sumatra."""

    code: str
    name: str
    regency_code: str


@dataclass(frozen=True, slots=True)
class Village:
    """A desa or kelurahan of South Sumatra, with its postal code."""

    code: str
    name: str
    district_code: str
    postal_code: str


@dataclass(frozen=True, slots=True)
class Regency:
    """A kabupaten or kota of South Sumatra, with its capital and aliases."""

    code: str
    name: str
    type: str
    districts: tuple[District, ...]
    aliases: tuple[str, ...]

    @property
    def short_name(self) -> str:
        """"Kabupaten Lahat" -> "Lahat"; "Kota Palembang" -> "Palembang"."""
        for prefix in ("Kabupaten ", "Kota "):
            if self.name.startswith(prefix):
                return self.name[len(prefix):]
        return self.name


ABROAD = "luar negeri"  # the "province" of a country in data/places.yaml
AT_WORDS = ("di", "in", "at")  # before a country: the citizen is there


@dataclass(frozen=True, slots=True)
class OutsidePlace:
    """A province or regency elsewhere in Indonesia (or abroad): not served by our offices."""

    name: str
    province: str  # ABROAD for a country


@dataclass(frozen=True, slots=True)
class FactAge:
    """A fact, where it lives, and how many days ago its newest source confirmed it."""

    file: str
    name: str
    fact: Sourced
    days: int


@dataclass(frozen=True)
class Knowledge:
    """Everything MIA knows as fact, each piece with its source."""

    offices: tuple[Office, ...]
    regencies: tuple[Regency, ...]
    fees: Fees
    services: dict[str, Service]
    mpaspor: MPaspor
    served_count: ServedCount
    province_name: str
    regions_source: str
    places_source: str
    district_aliases: dict[str, tuple[str, ...]]
    needs_cue: frozenset[str]
    outside: dict[str, OutsidePlace]
    villages: tuple[Village, ...] = ()  # data/villages.json
    word_zipf: dict[str, float] = field(default_factory=dict)  # how common village-name words are
    towns: dict[str, str] = field(default_factory=dict)  # data/places.yaml: town -> district code
    countries: dict[str, str] = field(default_factory=dict)  # data/places.yaml: written -> country name
    facts: dict[str, Fact] = field(default_factory=dict)
    service_points: tuple[ServicePoint, ...] = ()
    _office_by_regency: dict[str, Office] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        for office in self.offices:
            for code in office.regencies:
                self._office_by_regency[code] = office

    def office(self, office_id: str) -> Office | None:
        """The office with this id, or None."""
        return next((o for o in self.offices if o.id == office_id), None)

    def office_for(self, regency_code: str) -> Office | None:
        """The office serving a regency, or None when no office is assigned."""
        return self._office_by_regency.get(regency_code)

    def abroad_in(self, text: str, outside: Sequence[Any] = ()) -> str | None:
        """The country a (cleaned) message places the citizen in, after "di"/"in"/"at" ("paspor hilang
        di malaysia"): from `countries`, or its places outside South Sumatra (`outside`); or None."""
        for match in outside:
            if match.place.province == ABROAD and match.preceded_by in AT_WORDS:
                return match.place.name
        padded = f" {text} "
        found = [(padded.find(f" {at} {written} "), name) for written, name in self.countries.items()
                 for at in AT_WORDS if f" {at} {written} " in padded]
        return min(found)[1] if found else None

    def regency(self, code: str) -> Regency | None:
        """The regency with this Kemendagri code (a district code gives its regency)."""
        code = ".".join(code.split(".")[:2])
        return next((r for r in self.regencies if r.code == code), None)

    def regencies_of(self, office: Office) -> list[Regency]:
        """The regencies an office serves, in the order of data/offices.yaml."""
        return [r for code in office.regencies if (r := self.regency(code)) is not None]

    def points_of(self, office: Office) -> list[ServicePoint]:
        """The open service points under an office."""
        return [p for p in self.service_points if p.parent == office.id and p.closed is None]

    def points_near(self, regency_code: str) -> list[ServicePoint]:
        """Open service points in or nearest to a regency (a district code gives its regency)."""
        code = ".".join(regency_code.split(".")[:2])
        return [p for p in self.service_points if code in p.nearby and p.closed is None]

    def offices_mentioned_for(self, regency_code: str) -> list[Office]:
        """Offices the citizens of a regency are told about though they do not serve it yet."""
        code = ".".join(regency_code.split(".")[:2])
        return [o for o in self.offices if code in o.mention_for and code not in o.regencies]

    def facts_by_age(self, today: date | None = None) -> list["FactAge"]:
        """Every fact with its age in days, oldest first (for `mia facts` and the digest)."""
        today = today or date.today()
        rows = [FactAge(file, name, f, (today - f.as_of).days) for file, name, f in self.sourced()]
        return sorted(rows, key=lambda r: (-r.days, r.file, r.name))

    def sourced(self) -> list[tuple[str, str, Sourced]]:
        """Every fact MIA may state: (data file, name, fact), in file order."""
        rows: list[tuple[str, str, Sourced]] = []
        rows += [("offices.yaml", f"office {o.id}", o) for o in self.offices]
        rows += [("offices.yaml", f"service point {p.id}", p) for p in self.service_points]
        rows += [("facts.yaml", name, f) for name, f in self.facts.items()]
        rows += [("fees.yaml", "passport fees", self.fees), ("fees.yaml", "lost/damaged fees", self.fees.lost_damaged)]
        rows += [("services.yaml", s.id, s) for s in self.services.values()]
        rows += [("services.yaml", "mpaspor", self.mpaspor), ("services.yaml", "served_count", self.served_count)]
        return rows


def load_knowledge(data_dir: Path) -> Knowledge:
    """Load and validate data/*.yaml and data/regions.json; raise ContentErrors on problems."""
    errors: list[ContentError] = []

    def load(name: str, model: type[BaseModel]) -> Any:
        path = data_dir / name
        try:
            data, lines = load_yaml(path)
            return validate(model, data, path, lines)
        except ContentErrors as exc:
            errors.extend(exc.errors)
        except ContentError as exc:
            errors.append(exc)
        return None

    offices_file = load("offices.yaml", _OfficesFile)
    places = load("places.yaml", _PlacesFile)
    fees = load("fees.yaml", Fees)
    services_file = load("services.yaml", _ServicesFile)
    facts_file = load("facts.yaml", _FactsFile)
    regions_path = data_dir / "regions.json"
    try:
        regions = json.loads(regions_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        errors.append(ContentError(regions_path, None, f"cannot read: {exc}"))
        regions = None
    villages_path = data_dir / "villages.json"
    try:
        villages_data = json.loads(villages_path.read_text(encoding="utf-8"))
        villages = tuple(Village(*row) for row in villages_data["villages"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        errors.append(ContentError(villages_path, None, f"cannot read: {exc}"))
        villages_data, villages = None, ()
    if errors:
        raise ContentErrors(errors)

    regencies = []
    for r in regions["regencies"]:
        districts = tuple(District(d["code"], d["name"], r["code"]) for d in r["districts"])
        aliases = tuple(a.lower() for a in places.aliases.get(r["code"], []))
        regencies.append(Regency(r["code"], r["name"], r["type"], districts, aliases))

    path = data_dir / "offices.yaml"
    codes = {r.code for r in regencies}
    seen: dict[str, str] = {}
    ids: set[str] = set()
    for office in offices_file.offices:
        if office.id in ids:
            errors.append(ContentError(path, None, f"office id '{office.id}' is used twice"))
        ids.add(office.id)
        for code in office.regencies:
            if code not in codes:
                errors.append(ContentError(path, None, f"office '{office.id}': unknown regency code {code}"))
            elif code in seen:
                errors.append(
                    ContentError(path, None, f"regency {code} is served by both '{seen[code]}' and '{office.id}'")
                )
            seen[code] = office.id
    for code in sorted(codes - seen.keys()):
        errors.append(ContentError(path, None, f"regency {code} is not served by any office"))
    for office in offices_file.offices:
        for code in office.mention_for:
            if code not in codes:
                errors.append(ContentError(path, None, f"office '{office.id}': mention_for: unknown regency code {code}"))
    point_ids: set[str] = set()
    for point in offices_file.service_points:
        where = f"service point '{point.id}'"
        if point.id in point_ids:
            errors.append(ContentError(path, None, f"{where}: id is used twice"))
        point_ids.add(point.id)
        if point.parent not in ids:
            errors.append(ContentError(path, None, f"{where}: unknown parent office '{point.parent}'"))
        for code in (point.regency, *point.nearby):
            if code not in codes:
                errors.append(ContentError(path, None, f"{where}: unknown regency code {code}"))
    places_path = data_dir / "places.yaml"
    for code in places.aliases:
        if code not in codes:
            errors.append(ContentError(places_path, None, f"aliases: unknown regency code {code}"))
    district_codes = {d.code for r in regencies for d in r.districts}
    for code in places.district_aliases:
        if code not in district_codes:
            errors.append(ContentError(places_path, None, f"district_aliases: unknown district code {code}"))
    for town, code in places.towns.items():
        if code not in district_codes:
            errors.append(ContentError(places_path, None, f"towns: {town}: unknown district code {code}"))
    for v in villages:
        if v.district_code not in district_codes:
            errors.append(ContentError(villages_path, None, f"village {v.code}: unknown district code {v.district_code}"))
    svc_path = data_dir / "services.yaml"
    for svc in services_file.services:
        for oid in svc.offices:
            if oid not in ids:
                errors.append(ContentError(svc_path, None, f"service '{svc.id}': unknown office '{oid}'"))
    if errors:
        raise ContentErrors(errors)

    outside: dict[str, OutsidePlace] = {}
    ignore = {w.lower() for w in places.outside_ignore}
    for o in regions["outside"]:
        key = o["name"].lower()
        for prefix in ("kabupaten administrasi ", "kota administrasi ", "kabupaten ", "kota ", "provinsi "):
            if key.startswith(prefix):
                key = key[len(prefix):]
                break
        if key not in ignore:
            outside.setdefault(key, OutsidePlace(o["name"], o["province"]))
    for alias, province in places.outside_aliases.items():
        outside[alias.lower()] = OutsidePlace(alias.title(), province)

    return Knowledge(
        offices=offices_file.offices,
        regencies=tuple(regencies),
        fees=fees,
        services={s.id: s for s in services_file.services},
        mpaspor=services_file.mpaspor,
        served_count=services_file.served_count,
        province_name=regions["province"]["name"],
        regions_source=regions["meta"]["source"],
        places_source=places.source,
        district_aliases={k: tuple(a.lower() for a in v) for k, v in places.district_aliases.items()},
        needs_cue=frozenset(w.lower() for w in places.needs_cue),
        outside=outside,
        villages=villages,
        word_zipf=dict(villages_data.get("word_zipf", {})),
        towns=dict(places.towns),
        countries={k.lower(): v for k, v in places.countries.items()},
        facts=dict(facts_file.facts),
        service_points=offices_file.service_points,
    )
