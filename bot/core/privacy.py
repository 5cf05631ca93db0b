"""Personal data and secrets kept out of logs and reports: phone numbers, NIK-like digit runs,
e-mail addresses, tokens."""

from __future__ import annotations

import logging
import re
from typing import Callable

_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
# Phone numbers as Indonesians write them: +62 / 62 / 0, then digits with spaces, dashes (any),
# dots, slashes, commas, underscores or brackets between them: "0812-3456-7890", "(0812) 3456-7890",
# "0812.3456.7890", "0812/3456/7890", "0812_3456_7890", "+62 (812) 3456 7890".
_SEP = r"\s().,/_\-\u2010-\u2015"
_PHONE = re.compile(rf"(?<![\w+.(\-])(?:\(?\+\s?|\+?\()?(?:62|0)[\d{_SEP}]{{6,24}}\d(?!\w)")
_PHONE_MIN_DIGITS = 9  # fewer is a time or a date ("08.00-16.00"); more is masked all the same
_DIGITS = re.compile(r"(?<![\d-])\d{6,}")  # NIK (16 digits), KK, passport-like numbers, account numbers
# The same numbers written in groups: "3171 2345 6789 0001", "3171.2345.6789.0001".
_GROUPED = re.compile(rf"(?<!\d)\d{{2,6}}(?:[{_SEP}]\d{{2,6}}){{2,}}(?!\d)")
_GROUPED_MIN_DIGITS = 14  # a NIK or KK (16); a phone number has fewer and is masked as one
# Words after which citizens write a person's name ("nama saya Budi Santoso", "atas nama Siti").
_NAME_CUES = re.compile(r"\b(nama(?:\s+(?:saya|ku|aku|anak|ibu|bapak|suami|istri|pemohon))?|namanya|namaku|bernama|"
                        r"atas\s+nama|a\.?\s?n\.?|my\s+name\s+is|name)\s*:?\s+", re.IGNORECASE)
_HONORIFIC = re.compile(r"\b(bapak|ibu|pak|bu|bpk|sdr|sdri|saudara|saudari|mr|mrs|ms)\.?\s+", re.IGNORECASE)
# Words after which citizens introduce themselves ("saya Siti Aminah mau tanya", "this is Budi"): a
# capitalised word there that MIA does not know is a name.
_SELF = re.compile(r"\b(saya|sy|aku|gw|gue|ini|i\s+am|i'm|im|this\s+is)\s+", re.IGNORECASE)
_WORD = re.compile(r"[^\W\d_]{2,}")
# A secret shorter than this is a test value, not a credential: redacting it would mangle every
# log line that happens to contain those letters ("ou***box").
MIN_SECRET_LENGTH = 8


def _phone(match: re.Match) -> str:
    text = match.group(0)
    digits = sum(ch.isdigit() for ch in text)
    return "[telepon]" if digits >= _PHONE_MIN_DIGITS else text


def _grouped(match: re.Match) -> str:
    text = match.group(0)
    return "[angka]" if sum(ch.isdigit() for ch in text) >= _GROUPED_MIN_DIGITS else text


def mask(text: str) -> str:
    """Replace e-mail addresses, phone numbers and long digit runs with placeholders."""
    text = _EMAIL.sub("[email]", text)
    text = _GROUPED.sub(_grouped, text)
    text = _PHONE.sub(_phone, text)
    return _DIGITS.sub("[angka]", text)


def mask_names(text: str, known: frozenset[str] = frozenset(), names: tuple[str | None, ...] = ()) -> str:
    """Replace people's names with "[nama]": the words after "nama saya", "atas nama"... (up to
    three), a capitalised word after "Pak"/"Ibu", capitalised words after "saya"/"this is" (up to
    three), and the words of the sender's profile name.
    Words MIA knows (`known`: its vocabulary) are never taken for a name."""
    out = text
    spans: list[tuple[int, int]] = []
    for cue, limit, need_capital in ((_NAME_CUES, 3, False), (_HONORIFIC, 2, True), (_SELF, 3, True)):
        for m in cue.finditer(out):
            pos = m.end()
            for _ in range(limit):
                w = _WORD.match(out, pos)
                if w is None or w.group(0).lower() in known or (need_capital and not w.group(0)[0].isupper()):
                    break
                spans.append((w.start(), w.end()))
                pos = w.end()
                while pos < len(out) and out[pos] == " ":
                    pos += 1
    own = {w.lower() for name in names if name for w in _WORD.findall(name) if len(w) >= 3}
    if own:
        spans += [(w.start(), w.end()) for w in _WORD.finditer(out) if w.group(0).lower() in own]
    for start, end in sorted(set(spans), reverse=True):
        out = out[:start] + "[nama]" + out[end:]
    return re.sub(r"\[nama\](?:\s+\[nama\])+", "[nama]", out)


def review_text(text: str, known: frozenset[str] = frozenset(), names: tuple[str | None, ...] = ()) -> str:
    """What the operators' review keeps of a message: names, phone numbers, NIK and e-mails masked,
    then lower-cased, squeezed and cut at 300 characters."""
    return " ".join(mask(mask_names(text, known, names)).lower().split())[:300]


PLACEHOLDERS = ("[nama]", "[telepon]", "[angka]", "[email]")


def example_text(review: str) -> str:
    """A reviewed message as an intent example: the placeholders of masked data left out."""
    words = [w for w in review.split() if not any(p in w for p in PLACEHOLDERS)]
    return " ".join(words)


class _RewritingFilter(logging.Filter):
    """A log filter that rewrites the message and the traceback (exception text included)."""

    def rewrite(self, text: str) -> str:
        raise NotImplementedError

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        changed = self.rewrite(message)
        if changed != message:
            record.msg, record.args = changed, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.rewrite(record.exc_text)  # the formatter prints exc_text as it is
        if record.stack_info:
            record.stack_info = self.rewrite(record.stack_info)
        return True


class MaskingFilter(_RewritingFilter):
    """Masks personal data in every log line and traceback."""

    def rewrite(self, text: str) -> str:
        return mask(text)


class SecretFilter(_RewritingFilter):
    """Replaces secrets in every log line and traceback (Bot API URLs carry the token).
    Values shorter than MIN_SECRET_LENGTH are ignored."""

    def __init__(self, secrets: list[str]):
        super().__init__()
        self.secrets = sorted({s for s in secrets if s and len(s) >= MIN_SECRET_LENGTH}, key=len, reverse=True)
        self._replace: Callable[[str], str] = (
            re.compile("|".join(map(re.escape, self.secrets))).sub if self.secrets else None)

    def rewrite(self, text: str) -> str:
        return self._replace("***", text) if self._replace else text
