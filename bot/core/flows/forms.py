"""The Lapor Rakit callback request: a multi-turn form whose state lives in the conversation."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field as dataclass_field
from typing import Callable

import phonenumbers

FORM_NAME = "lapor_rakit"
MAX_WRONG = 3  # wrong answers to one question before MIA offers an officer

_LETTERS = re.compile(r"[^\W\d_]", re.UNICODE)


@dataclass(frozen=True, slots=True)
class Answer:
    """A validated answer (value to store, text to show) or an error key."""

    value: object = None
    shown: str = ""
    error: str | None = None


def _text(raw: str, min_len: int, max_len: int, min_letters: int = 2) -> Answer:
    # Control and format characters never reach a request (or the staff chat).
    text = " ".join("".join(ch for ch in raw if unicodedata.category(ch) not in ("Cc", "Cf")).split())
    if len(text) < min_len or len(_LETTERS.findall(text)) < min_letters:
        return Answer(error="too_short")
    if len(text) > max_len:
        return Answer(error="too_long")
    return Answer(text, text)


def validate_name(raw: str, _ctx) -> Answer:
    """A person's name: letters, 2 to 80 characters, at most a few digits, never a question."""
    if "?" in raw:
        return Answer(error="not_a_name")
    answer = _text(raw, 2, 80)
    if answer.error is None and sum(ch.isdigit() for ch in raw) > 2:
        return Answer(error="name_digits")
    return answer


def validate_relation(raw: str, _ctx) -> Answer:
    return _text(raw, 3, 40)


def validate_phone(raw: str, _ctx) -> Answer:
    """An Indonesian phone number, stored in E.164 (+62...)."""
    try:
        number = phonenumbers.parse(raw.strip()[:40], "ID")
    except phonenumbers.NumberParseException:
        return Answer(error="phone_invalid")
    if number.country_code != 62 or not phonenumbers.is_valid_number(number):
        return Answer(error="phone_invalid")
    e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    shown = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.NATIONAL)
    return Answer(e164, shown)


def validate_address(raw: str, _ctx) -> Answer:
    answer = _text(raw, 8, 200, min_letters=5)
    if answer.error is None and len(str(answer.value).split()) < 2:
        return Answer(error="address_short")
    return answer


def validate_condition(raw: str, _ctx) -> Answer:
    return _text(raw, 3, 200)


def validate_day(raw: str, _ctx) -> Answer:
    return _text(raw, 3, 60)


def validate_region(raw: str, ctx) -> Answer:
    """A regency or district of South Sumatra, resolved by the place matcher to one office."""
    return ctx.resolve_region(raw)


@dataclass(frozen=True, slots=True)
class Step:
    """One question of the form."""

    field: str
    validate: Callable[[str, object], Answer]
    # Button suggestions in each language (any fitting text is accepted too).
    choices: dict[str, tuple[str, ...]] = dataclass_field(default_factory=dict)
    # Words that name this answer when the citizen says which one to change ("ganti alamat", "nomor hp").
    names: frozenset[str] = frozenset()


STEPS: tuple[Step, ...] = (
    Step("applicant_name", validate_name, names=frozenset("nama name".split())),
    Step("relation", validate_relation,
         {"id": ("Anak", "Orang tua", "Suami/Istri", "Saudara", "Diri sendiri"),
          "en": ("Child", "Parent", "Spouse", "Sibling", "Myself")},
         frozenset("hubungan relation relationship".split())),
    Step("phone", validate_phone,
         names=frozenset("nomor nomer no telepon telpon telp tlp hp wa whatsapp phone number".split())),
    Step("address", validate_address, names=frozenset("alamat alamatnya address".split())),
    Step("region", validate_region,
         names=frozenset("kabupaten kab kota kecamatan kec daerah wilayah region regency city district".split())),
    Step("condition", validate_condition, names=frozenset("kondisi keadaan sakit penyakit condition".split())),
    Step("preferred_day", validate_day,
         {"id": ("Secepatnya", "Senin", "Selasa", "Rabu", "Kamis", "Jumat"),
          "en": ("As soon as possible", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday")},
         frozenset("hari jadwal tanggal kunjungan day date".split())),
)
FIELDS = tuple(s.field for s in STEPS)
STEP_BY_FIELD = {s.field: s for s in STEPS}
CONFIRM = "confirm"  # the summary step: Ya / Ubah / Batal
CHOOSE_FIELD = "choose_field"  # after "Ubah": which answer to change


def new_form(now: float, ttl_seconds: float) -> dict:
    """A fresh form state (stored in the conversation's data)."""
    return {"name": FORM_NAME, "step": FIELDS[0], "values": {}, "shown": {}, "wrong": 0,
            "editing": False, "expires_at": now + ttl_seconds}


def next_step(form: dict) -> str:
    """The first unanswered field, or the summary."""
    if form.get("editing"):
        return CONFIRM
    for field in FIELDS:
        if field not in form["values"]:
            return field
    return CONFIRM
