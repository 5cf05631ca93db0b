"""CSV files for offices and operators: readable by their owner only, and no cell a spreadsheet
would run as a formula."""

from __future__ import annotations

import csv
import os
import re
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

# OWASP, CSV injection: a cell starting with one of these is a formula to Excel and LibreOffice.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_NUMBER = re.compile(r"[+-]?\d+(?:[.,]\d+)?")  # "+6281234567890", "-5": numbers, not formulas


def cell(value) -> str:
    """A value as a CSV cell; text that a spreadsheet would evaluate gets a leading "'"."""
    text = "" if value is None else str(value)
    if text.startswith(_FORMULA_START) and not _NUMBER.fullmatch(text):
        return "'" + text
    return text


class _SafeWriter:
    def __init__(self, writer):
        self._writer = writer

    def writerow(self, row) -> None:
        self._writer.writerow([cell(v) for v in row])


@contextmanager
def private_csv(path: Path) -> Iterator[_SafeWriter]:
    """A CSV writer on `path` (created or truncated with mode 0600, folders made as needed)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.chmod(path, 0o600)  # an existing file keeps its mode on open: personal data, owner only
    with os.fdopen(fd, "w", newline="", encoding="utf-8") as f:
        yield _SafeWriter(csv.writer(f))
