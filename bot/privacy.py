"""Personal data kept out of logs and reports: phone numbers, NIK-like digit runs, e-mail addresses."""

from __future__ import annotations

import logging
import re

_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
# Phone numbers as Indonesians write them: +62 / 62 / 0 followed by 8-13 digits, spaces or dashes allowed.
_PHONE = re.compile(r"(?<!\w)(?:\+?62|0)[\s-]?\d(?:[\s-]?\d){6,12}(?!\w)")
_DIGITS = re.compile(r"(?<![\d-])\d{6,}")  # NIK (16 digits), KK, passport-like numbers, account numbers


def mask(text: str) -> str:
    """Replace e-mail addresses, phone numbers and long digit runs with placeholders."""
    text = _EMAIL.sub("[email]", text)
    text = _PHONE.sub("[telepon]", text)
    return _DIGITS.sub("[angka]", text)


class MaskingFilter(logging.Filter):
    """A log filter that masks personal data in every formatted message."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = mask(message)
        if masked != message:
            record.msg, record.args = masked, None
        return True
