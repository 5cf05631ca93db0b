"""The operators' loop: live edits behind a gate, the unanswered log and digest, retention."""

from __future__ import annotations

import asyncio
import json
import os
import stat
import sqlite3
import subprocess
import time

import httpx
import pytest

from bot.app import MiaApp
from bot.core.assistant import Assistant
from bot.runtime.config import Settings
from bot.store.sqlite import SQLiteStore
from tests.conftest import ROOT, Chat, mia_command
from tests.fakes.recording import RecordingSender

OPERATORS = "-1009"




async def ask_web(app: MiaApp, text: str, session: httpx.AsyncClient) -> str:
    response = await session.post("/api/messages", json={"text": text})
    return "\n".join(m["text"] for m in response.json()["messages"] if m["role"] == "bot")


@pytest.fixture
async def live(content_copy, db_path):
    gate = content_copy / "gate.yaml"
    gate.write_text(
        '- {text: "biaya bikin paspor berapa ya", intent: passport_fees}\n'
        '- {text: "kantor imigrasi utk lahat dimana", intent: office_for_region, region: "16.04", office: muaraenim}\n'
        '- {text: "resep pempek kapal selam", intent: null}\n', encoding="utf-8")
    settings = Settings(_env_file=None, mia_content_dir=content_copy, mia_db_path=db_path, mia_web_port=0,
                        mia_outbox_poll_seconds=0.1, mia_operator_telegram_chat=OPERATORS, mia_gate_file=gate,
                        mia_gate_min_accuracy=1.0)
    app = MiaApp(settings)
    await app.start()
    operators = RecordingSender()
    app.worker.senders["telegram"] = operators
    app.operators = operators
    async with httpx.AsyncClient(base_url=app.web_url) as session:
        app.session = session
        yield app
    await app.stop()


async def wait_until(predicate, timeout: float = 15.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.1)


async def test_edit_goes_live_without_restart(live, content_copy):
    before = await ask_web(live, "kapan loket buka dihari raya lebaran", live.session)
    assert "Jam layanan" not in before
    from bot.content.editing import add_example

    add_example(content_copy / "intents", "office_hours", "kapan loket buka dihari raya lebaran")
    old = live.assistant.content
    await wait_until(lambda: live.assistant.content is not old)
    after = await ask_web(live, "kapan loket buka dihari raya lebaran", live.session)
    assert "Jam layanan" in after


async def test_broken_edit_keeps_last_good_version_and_tells_operators(live, content_copy):
    path = content_copy / "intents" / "passport.yaml"
    lines = path.read_text(encoding="utf-8").splitlines()
    lines.insert(8, "      - [unclosed")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    await wait_until(lambda: any(chat == OPERATORS for chat, _ in live.operators.sent))
    message = next(p["text"] for chat, p in live.operators.sent if chat == OPERATORS)
    assert "BELUM dipakai" in message and "passport.yaml:" in message
    assert "Rp350.000" in await ask_web(live, "biaya paspor brp", live.session)  # still answering


async def test_edit_failing_the_gate_is_refused(live, content_copy):
    # Moving Lahat to the Palembang office passes every check but gives the labelled set a wrong office.
    path = content_copy / "data" / "offices.yaml"
    text = path.read_text(encoding="utf-8")
    text = text.replace('regencies: ["16.03", "16.04", ', 'regencies: ["16.03", ')
    text = text.replace('regencies: ["16.71", ', 'regencies: ["16.04", "16.71", ')
    path.write_text(text, encoding="utf-8")
    await wait_until(lambda: any("BELUM dipakai" in p["text"] for _, p in live.operators.sent))
    message = next(p["text"] for _, p in live.operators.sent if "BELUM dipakai" in p["text"])
    assert "kantor yang salah" in message
    assert "Muaraenim" in await ask_web(live, "kantor imigrasi utk lahat dimana", live.session)


async def test_renamed_template_does_not_break_the_running_version(live, content_copy):
    for folder in ("id", "en"):
        (content_copy / "responses" / folder / "passport_fees.j2").rename(
            content_copy / "responses" / folder / "passport_fees_old.j2")
    await wait_until(lambda: any("BELUM dipakai" in p["text"] for _, p in live.operators.sent))
    assert "Rp350.000" in await ask_web(live, "biaya paspor brp", live.session)


async def test_unanswered_questions_are_logged_masked_and_grouped(content, db_path, tmp_path):
    store = SQLiteStore(db_path)
    await store.open()
    chat = Chat(Assistant(content, store), chat_id="u1")
    await chat.say("hp saya 0812-3456-7890, ruang laktasi buat ibu menyusui ada gak?")
    await chat.say("ruang laktasi ibu menyusui ada ga min")
    await chat.say("NIK 1671012345678901 email budi@contoh.id tolong cek")
    await chat.say("biaya paspor brp")  # answered: not logged
    await store.close()
    with sqlite3.connect(db_path) as db:
        rows = [r[0] for r in db.execute("SELECT text FROM unanswered ORDER BY id")]
    assert len(rows) == 3
    joined = " ".join(rows)
    assert "0812" not in joined and "1671012345678901" not in joined and "budi@contoh.id" not in joined
    assert "[telepon]" in joined and "[angka]" in joined and "[email]" in joined
    out = tmp_path / "groups.csv"
    report = subprocess.run(mia_command() + ["report", "unanswered", "--since", "7d", "--csv", str(out)],
                            capture_output=True, text=True, cwd=ROOT, env=dict(os.environ, MIA_DB_PATH=str(db_path)))
    assert report.returncode == 0, report.stderr
    assert "3 pertanyaan tak terjawab" in report.stdout
    assert "2x" in report.stdout and "laktasi" in report.stdout  # the two nursing-room questions are one group
    assert out.read_text(encoding="utf-8").startswith("count,example,nearest_intent")


async def test_digest_button_adds_the_example_keeping_comments(live, content_copy):
    session = live.session
    for text in ("kursi roda buat lansia disediakan gak", "kursi roda utk lansia disediakan ga min"):
        await ask_web(live, text, session)
    groups = await live.digest.send()
    assert groups >= 1
    await wait_until(lambda: any("kursi roda" in p["text"] for _, p in live.operators.sent))
    items = [p for chat, p in await_sent(live) if "kursi roda" in p["text"]]
    buttons = items[0]["buttons"] if items else []
    assert [b["title"] for b in buttons][-2:] == ["Intent lain", "Abaikan"]
    assert all(b["kind"] == "digest" for b in buttons)
    item_id = int(buttons[-1]["payload"].split(":")[1])
    before = (content_copy / "intents" / "services.yaml").read_text(encoding="utf-8")
    result = await live.digest.decide(f"to:{item_id}:services_list", "Operator Ani")
    assert "Ditambahkan ke services_list" in result
    after = (content_copy / "intents" / "services.yaml").read_text(encoding="utf-8")
    assert after.count("#") == before.count("#")  # comments kept
    assert "kursi roda" in after
    assert "sudah diputuskan" in await live.digest.decide(f"ign:{item_id}", "Operator Budi")
    confirmed = await live.store.confirmed_examples()
    assert confirmed and confirmed[0]["intent"] == "services_list"


def await_sent(app) -> list[tuple[str, dict]]:
    return list(app.operators.sent)


async def test_retention_purge_anonymizes_and_deletes(db_path):
    store = SQLiteStore(db_path)
    await store.open()
    async with store.unit() as u:
        old = await u.create_request("telegram", "1", "muaraenim", "16.04",
                                     {"applicant_name": "Siti", "phone": "+6281234567890", "address": "Jl. X 1",
                                      "condition": "stroke", "place": "Lahat"})
        await u.set_request_status(old.ref, "done", "Petugas A (1)")
        fresh = await u.create_request("telegram", "2", "muaraenim", "16.04", {"applicant_name": "Budi"})
        await u.log_turn("telegram", "1", "halo", "greeting", 1.0, None, None, "Halo!")
    await store.close()
    long_ago = time.time() - 100 * 86400
    with sqlite3.connect(db_path) as db:
        db.execute("UPDATE callback_requests SET done_at = ? WHERE ref = ?", (long_ago, old.ref))
        db.execute("UPDATE turns SET created_at = ?", (long_ago,))
    env = dict(os.environ, MIA_DB_PATH=str(db_path))
    dry = subprocess.run(mia_command() + ["db", "purge", "--dry-run"], capture_output=True, text=True, cwd=ROOT, env=env)
    assert "requests_anonymized: 1" in dry.stdout and "turns_deleted: 1" in dry.stdout
    with sqlite3.connect(db_path) as db:
        assert json.loads(db.execute("SELECT fields FROM callback_requests WHERE ref = ?", (old.ref,)).fetchone()[0])
    real = subprocess.run(mia_command() + ["db", "purge"], capture_output=True, text=True, cwd=ROOT, env=env)
    assert real.returncode == 0
    with sqlite3.connect(db_path) as db:
        fields, status, office = db.execute("SELECT fields, status, office FROM callback_requests WHERE ref = ?",
                                            (old.ref,)).fetchone()
        assert json.loads(fields) == {} and status == "done" and office == "muaraenim"  # statistics stay
        assert json.loads(db.execute("SELECT fields FROM callback_requests WHERE ref = ?",
                                     (fresh.ref,)).fetchone()[0])["applicant_name"] == "Budi"
        assert db.execute("SELECT count(*) FROM turns").fetchone()[0] == 0


def test_add_example_command_keeps_comments_and_refuses_conflicts(content_copy):
    env = dict(os.environ, MIA_CONTENT_DIR=str(content_copy))
    path = content_copy / "intents" / "passport.yaml"
    before = path.read_text(encoding="utf-8")
    ok = subprocess.run(mia_command() + ["intents", "add-example", "passport_fees", "ongkos", "e-paspor", "brp", "skrg"],
                        capture_output=True, text=True, cwd=ROOT, env=env)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    after = path.read_text(encoding="utf-8")
    assert "ongkos e-paspor brp skrg" in after and after.count("#") == before.count("#")
    dup = subprocess.run(mia_command() + ["intents", "add-example", "greeting", "ongkos e-paspor brp skrg"],
                         capture_output=True, text=True, cwd=ROOT, env=env)
    assert dup.returncode == 1  # the same example in two intents is refused and the file restored
    assert "ongkos e-paspor brp skrg" not in (content_copy / "intents" / "general.yaml").read_text(encoding="utf-8")


def test_logs_mask_phone_numbers(caplog):
    import logging

    from bot.core.privacy import MaskingFilter

    handler = logging.StreamHandler()
    handler.addFilter(MaskingFilter())
    record = logging.LogRecord("x", logging.WARNING, __file__, 1, "outbox to whatsapp:%s failed", ("6281234567890",),
                               None)
    handler.filter(record)
    assert "6281234567890" not in record.getMessage() and "[telepon]" in record.getMessage()



def test_add_example_keeps_the_files_mode_and_quotes_what_yaml_would_misread(content_copy):
    """An operator's added example leaves the file readable by the user MIA runs as, and "off"
    (a boolean to YAML) stays the text "off"."""
    env = dict(os.environ, MIA_CONTENT_DIR=str(content_copy))
    path = content_copy / "intents" / "general.yaml"
    path.chmod(0o644)
    ok = subprocess.run(mia_command() + ["intents", "add-example", "goodbye", "off"],
                        capture_output=True, text=True, cwd=ROOT, env=env)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert '- "off"' in path.read_text(encoding="utf-8")  # and add-example's own check read it back as text


def test_a_fee_written_with_thousands_dots_or_a_source_dated_in_the_future_is_refused(content_copy):
    """YAML reads "350.000" as 350: the check refuses it, naming the file and line, instead of MIA
    telling citizens a passport costs Rp350; a source dated in the future is a typo too."""
    env = dict(os.environ, MIA_CONTENT_DIR=str(content_copy))
    fees = content_copy / "data" / "fees.yaml"
    text = fees.read_text(encoding="utf-8")
    assert "350000" in text
    fees.write_text(text.replace("350000", "350.000", 1), encoding="utf-8")
    out = subprocess.run(mia_command() + ["intents", "check"], capture_output=True, text=True, cwd=ROOT, env=env)
    assert out.returncode == 1
    line = next(i for i, l in enumerate(fees.read_text(encoding="utf-8").splitlines(), 1) if "350.000" in l)
    assert f"{fees}:{line}:" in out.stdout and "350000 (bukan 350.000)" in out.stdout
    dated = next(l for l in text.splitlines() if "as_of:" in l).strip()
    fees.write_text(text.replace(dated, "as_of: 2062-01-15", 1), encoding="utf-8")
    out = subprocess.run(mia_command() + ["intents", "check"], capture_output=True, text=True, cwd=ROOT, env=env)
    assert out.returncode == 1 and "2062-01-15 ada di masa depan" in out.stdout


def test_add_example_names_a_yaml_error_in_another_file_instead_of_crashing(content_copy):
    env = dict(os.environ, MIA_CONTENT_DIR=str(content_copy))
    broken = content_copy / "intents" / "general.yaml"
    lines = broken.read_text(encoding="utf-8").splitlines()
    lines.insert(5, "  - id: [unclosed")
    broken.write_text("\n".join(lines) + "\n", encoding="utf-8")
    fees = (content_copy / "intents" / "passport.yaml").read_bytes()
    out = subprocess.run(mia_command() + ["intents", "add-example", "passport_fees", "ongkos paspor skrg"],
                         capture_output=True, text=True, cwd=ROOT, env=env)
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert f"{broken}:" in out.stderr and "not valid YAML" in out.stderr
    assert (content_copy / "intents" / "passport.yaml").read_bytes() == fees
