"""Personal data and secrets out of logs and files (issue 13's low findings): phone numbers
however they are written, exception text, short test secrets, file modes, spreadsheet formulas."""

from __future__ import annotations

import csv
import logging
import os
import sqlite3
import stat
import subprocess

import pytest

from bot.core.assistant import Assistant
from bot.core.privacy import MaskingFilter, SecretFilter, mask
from bot.store.sqlite import SQLiteStore
from tests.conftest import ROOT, Chat, mia_command


# -- personal data and secrets in logs and files -------------------------------------------


@pytest.mark.parametrize("written", ["(0812) 3456-7890", "0812.3456.7890", "+62 (812) 3456 7890", "0812-3456-7890",
                                     "+6281234567890", "62 812 3456 7890", "(+62) 812-3456-7890"])
def test_phone_numbers_are_masked_however_they_are_written(written):
    masked = mask(f"hp sy {written} tolong telp")
    assert masked == "hp sy [telepon] tolong telp", masked


@pytest.mark.parametrize("text", ["jam 08.00-16.00 wib", "biaya Rp350.000", "tgl 2024-01-15", "RKT-2026-000123",
                                  "antrian no 12"])
def test_what_is_not_a_phone_number_stays(text):
    assert mask(text) == text


async def test_unanswered_log_masks_a_bracketed_number(content, db_path):
    store = SQLiteStore(db_path)
    await store.open()
    await Chat(Assistant(content, store)).say("hp sy (0812) 3456-7890, ruang laktasi ada gak?")
    await store.close()
    with sqlite3.connect(db_path) as db:
        [text] = [r[0] for r in db.execute("SELECT text FROM unanswered")]
    assert "3456" not in text and "[telepon]" in text


def log_line(filters, emit) -> str:
    """What a handler with `filters` writes when `emit(logger)` logs."""
    records: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record):
            records.append(self.format(record))

    handler = Keep()
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    for f in filters:
        handler.addFilter(f)
    logger = logging.getLogger("test.hardening")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        emit(logger)
    finally:
        logger.removeHandler(handler)
        logger.propagate = True
    return "\n".join(records)


def test_exception_text_in_tracebacks_is_masked_and_redacted():
    def emit(logger):
        try:
            raise ValueError("send to 6281234567890 failed: https://api.telegram.org/bot123456:SECRET-TOKEN/x")
        except ValueError:
            logger.exception("outbox failed")

    line = log_line([SecretFilter(["123456:SECRET-TOKEN"]), MaskingFilter()], emit)
    assert "Traceback" in line and "ValueError" in line
    assert "6281234567890" not in line and "SECRET-TOKEN" not in line
    assert "[telepon]" in line and "***" in line


def test_secrets_too_short_to_be_real_are_not_redacted():
    line = log_line([SecretFilter(["t", "ab", "a-real-secret-value"])],
                    lambda logger: logger.warning("outbox to whatsapp failed, token a-real-secret-value"))
    assert line == "WARNING outbox to whatsapp failed, token ***"


async def test_database_and_unanswered_csv_are_owner_only(content, tmp_path):
    old = os.umask(0o022)
    try:
        db = tmp_path / "var" / "mia.db"
        store = SQLiteStore(db)
        await store.open()
        await Chat(Assistant(content, store)).say("ruang laktasi ada gak min")
        files = [p for p in db.parent.iterdir() if p.name.startswith("mia.db")]
        assert {p.name for p in files} >= {"mia.db", "mia.db-wal", "mia.db-shm"}
        assert {p.name: stat.S_IMODE(p.stat().st_mode) for p in files} == {p.name: 0o600 for p in files}
        await store.close()
        out = tmp_path / "report" / "groups.csv"
        report = subprocess.run(mia_command() + ["report", "unanswered", "--csv", str(out)], capture_output=True,
                                text=True, cwd=ROOT, env=dict(os.environ, MIA_DB_PATH=str(db)), timeout=120)
        assert report.returncode == 0, report.stderr
        assert stat.S_IMODE(out.stat().st_mode) == 0o600
    finally:
        os.umask(old)


async def test_exported_cells_cannot_be_spreadsheet_formulas(tmp_path):
    db = tmp_path / "req.db"
    store = SQLiteStore(db)
    await store.open()
    attacks = {"applicant_name": "=HYPERLINK(\"http://evil.example\",\"klik\")", "relation": "+cmd|' /C calc'!A0",
               "address": "-2+3+cmd|' /C calc'!A0", "place": "@SUM(1+1)*cmd|' /C calc'!A0", "condition": "\t=1+1"}
    async with store.unit() as u:
        await u.create_request("web", "1", "palembang", "16.71",
                               dict(attacks, phone="+6281234567890", preferred_day="Senin"))
    await store.close()
    out = tmp_path / "requests.csv"
    run = subprocess.run(mia_command() + ["requests", "export", "--csv", str(out)], capture_output=True, text=True,
                         cwd=ROOT, env=dict(os.environ, MIA_DB_PATH=str(db)), timeout=120)
    assert run.returncode == 0, run.stderr
    [row] = list(csv.DictReader(out.open(encoding="utf-8")))
    for column, value in attacks.items():
        assert row[column] == "'" + value, row[column]
    assert row["phone"] == "+6281234567890"  # a plain number is no formula: kept as it is
    assert row["preferred_day"] == "Senin"
