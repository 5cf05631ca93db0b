"""Personal data and secrets kept out of logs and reports: phone numbers, NIK-like digit runs,
e-mail addresses, tokens."""

from __future__ import annotations

import logging
import re
from typing import Callable

_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
# Phone numbers as Indonesians write them: +62 / 62 / 0, then digits with spaces, dashes, dots or
# brackets between them: "0812-3456-7890", "(0812) 3456-7890", "0812.3456.7890", "+62 (812) 3456 7890".
_PHONE = re.compile(r"(?<![\w+.(-])(?:\(?\+\s?|\+?\()?(?:62|0)[\d\s().-]{6,24}\d(?!\w)")
_PHONE_MIN_DIGITS = 9  # fewer is a time or a date ("08.00-16.00"); more is masked all the same
_DIGITS = re.compile(r"(?<![\d-])\d{6,}")  # NIK (16 digits), KK, passport-like numbers, account numbers
# A secret shorter than this is a test value, not a credential: redacting it would mangle every
# log line that happens to contain those letters ("ou***box").
MIN_SECRET_LENGTH = 8


def _phone(match: re.Match) -> str:
    text = match.group(0)
    digits = sum(ch.isdigit() for ch in text)
    return "[telepon]" if digits >= _PHONE_MIN_DIGITS else text


def mask(text: str) -> str:
    """Replace e-mail addresses, phone numbers and long digit runs with placeholders."""
    text = _EMAIL.sub("[email]", text)
    text = _PHONE.sub(_phone, text)
    return _DIGITS.sub("[angka]", text)


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
