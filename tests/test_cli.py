"""The mia command as an operator or a script uses it: real processes, real output."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from tests.conftest import ROOT, mia_command


def run(args, *, input=None, env_extra=None, cwd=ROOT, timeout=120):
    env = dict(os.environ, **(env_extra or {}))
    return subprocess.run(mia_command() + args, input=input, capture_output=True, text=True, cwd=cwd,
                          env=env, timeout=timeout)


def test_ask_prints_reply_and_buttons():
    out = run(["ask", "kantor imigrasi utk muba dimana"])
    assert out.returncode == 0, out.stderr
    assert "Kantor Imigrasi Kelas I TPI Palembang" in out.stdout
    assert "[1]" in out.stdout


def test_ask_json_has_the_contract_keys():
    out = run(["ask", "--json", "sy tinggal di rambang niru, bikin paspor kmn"])
    data = json.loads(out.stdout)
    assert set(data) == {"intent", "confidence", "region", "office", "reply", "buttons"}
    assert data["intent"] == "office_for_region"
    assert data["region"] == "16.03" and data["office"] == "muaraenim"
    assert 0 < data["confidence"] <= 1
    assert isinstance(data["buttons"], list) and all(isinstance(b, str) for b in data["buttons"])


def test_ask_json_fallback_has_null_intent():
    data = json.loads(run(["ask", "--json", "resep rendang padang yang enak"]).stdout)
    assert data["intent"] is None and data["office"] is None
    assert data["reply"]


def test_ask_json_stdin_thousand_lines_each_fresh():
    lines = ["kantor imigrasi untuk daerah saya dimana", "lahat"] * 500
    out = run(["ask", "--json", "-"], input="\n".join(lines) + "\n")
    assert out.returncode == 0, out.stderr
    rows = [json.loads(line) for line in out.stdout.splitlines()]
    assert len(rows) == 1000
    # every line is a fresh conversation: "lahat" alone never completes the previous question
    assert all(r["intent"] == "office_for_region" and r["office"] is None for r in rows[0::2])
    assert all(r["intent"] is None for r in rows[1::2])


def test_chat_works_with_piped_stdin(tmp_path):
    out = run(["chat"], input="halo\nkantor imigrasi utk daerah sy\nlahat\n",
              env_extra={"MIA_DB_PATH": str(tmp_path / "chat.db")})
    assert out.returncode == 0, out.stderr
    assert "Kantor Imigrasi Kelas II Non TPI Muaraenim" in out.stdout
    assert (tmp_path / "chat.db").exists()


def test_intents_check_passes_on_shipped_content():
    out = run(["intents", "check", "--quiet"])
    assert out.returncode == 0, out.stdout + out.stderr
    assert "OK: 0 error(s)" in out.stdout


def test_intents_check_names_file_and_line(content_copy):
    path = content_copy / "intents" / "general.yaml"
    text = path.read_text(encoding="utf-8")
    lines = text.splitlines()
    # Give an intent an unknown button and copy an example of one intent into another.
    idx = next(i for i, l in enumerate(lines) if l.strip().startswith("buttons:"))
    lines[idx] = lines[idx].replace("buttons: [", "buttons: [no_such_intent, ")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    out = run(["intents", "check"], env_extra={"MIA_CONTENT_DIR": str(content_copy)})
    assert out.returncode == 1
    assert f"{path}:" in out.stdout + out.stderr
    assert "no_such_intent" in out.stdout + out.stderr


def test_intents_check_reports_yaml_syntax_line(content_copy):
    path = content_copy / "intents" / "passport.yaml"
    lines = path.read_text(encoding="utf-8").splitlines()
    lines.insert(5, "  - id: [unclosed")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    out = run(["intents", "check"], env_extra={"MIA_CONTENT_DIR": str(content_copy)})
    assert out.returncode == 1
    assert f"{path}:" in out.stdout


def test_intents_check_finds_duplicate_example_and_missing_template(content_copy):
    passport = content_copy / "intents" / "passport.yaml"
    text = passport.read_text(encoding="utf-8")
    passport.write_text(text.replace("    examples:\n", "    examples:\n      - apa kabar min\n", 1), encoding="utf-8")
    general = content_copy / "intents" / "general.yaml"
    general.write_text(general.read_text(encoding="utf-8").replace("    examples:\n", "    examples:\n      - apa kabar min\n", 1),
                       encoding="utf-8")
    (content_copy / "responses" / "en" / "thanks.j2").unlink()
    (content_copy / "responses" / "id" / "orphan.j2").write_text("tidak dipakai", encoding="utf-8")
    out = run(["intents", "check"], env_extra={"MIA_CONTENT_DIR": str(content_copy)})
    assert out.returncode == 1
    assert "apa kabar min" in out.stdout
    assert "thanks.j2" in out.stdout
    assert "orphan.j2" in out.stdout and "unused" in out.stdout


def test_intents_check_renders_templates(content_copy):
    tpl = content_copy / "responses" / "id" / "greeting.j2"
    tpl.write_text("Halo\n{{ no_such_variable }}\n", encoding="utf-8")
    out = run(["intents", "check"], env_extra={"MIA_CONTENT_DIR": str(content_copy)})
    assert out.returncode == 1
    assert f"{tpl}:2" in out.stdout


def test_intents_test_reports_and_gates(tmp_path):
    labelled = tmp_path / "cases.yaml"
    labelled.write_text(
        '- {text: "biaya paspor brp", intent: passport_fees}\n'
        '- {text: "kantor imigrasi utk lahat", intent: office_for_region, region: "16.04", office: muaraenim}\n'
        '- {text: "resep pempek", intent: null}\n'
        '- {text: "halo", intent: passport_fees}\n',
        encoding="utf-8",
    )
    out = run(["intents", "test", str(labelled), "--json"])
    data = json.loads(out.stdout)
    assert data["total"] == 4 and data["accuracy"] == 0.75
    assert data["office"]["correct"] == 1 and data["office"]["wrong"] == []
    assert data["out_of_scope"]["rate"] == 1.0
    assert data["confusions"][0]["expected"] == "passport_fees" and data["confusions"][0]["got"] == "greeting"
    gate = run(["intents", "test", str(labelled), "--min-accuracy", "0.9"])
    assert gate.returncode == 1
    assert "Intent accuracy: 75.0%" in gate.stdout


def test_intents_test_counts_accepted_alternatives_and_kinds(tmp_path):
    field = tmp_path / "field.yaml"
    field.write_text(
        '- {text: "biaya paspor brp", intent: passport_requirements, also: [passport_fees], kind: social}\n'
        '- {text: "syarat paspor apa aja", intent: passport_requirements, kind: faq}\n'
        '- {text: "resep pempek", intent: null, also: [], kind: news}\n',
        encoding="utf-8",
    )
    out = run(["intents", "test", str(field)])
    assert out.returncode == 0, out.stderr
    assert "Intent accuracy: 66.7% (2/3)" in out.stdout
    assert "Answer serves the message (its label or an accepted 'also'): 100.0% (3/3)" in out.stdout
    assert "By kind: faq 100.0% (1/1), news 100.0% (1/1), social 0.0% (0/1)" in out.stdout
    bad = tmp_path / "bad.yaml"
    bad.write_text('- {text: "biaya paspor brp", intent: passport_fees, also: passport_requirements}\n', encoding="utf-8")
    out = run(["intents", "test", str(bad)])
    assert out.returncode == 1 and "'also' is a list of intent ids" in out.stderr


def test_intents_check_rejects_a_field_label_that_is_not_an_intent(content_copy):
    field = content_copy / "tests" / "data" / "field.yaml"
    field.parent.mkdir(parents=True)
    field.write_text('- text: "biaya paspor brp"\n  intent: passport_fees\n'
                     '- text: "paspor sy ilang"\n  intent: passport_lost\n  also: [passport_feez]\n', encoding="utf-8")
    out = run(["intents", "check"], env_extra={"MIA_CONTENT_DIR": str(content_copy)})
    assert out.returncode == 1
    assert f"{field}:3" in out.stdout and "'passport_lost', which is not an intent" in out.stdout
    assert "'passport_feez', which is not an intent" in out.stdout


def test_requests_list_and_export(tmp_path):
    import asyncio
    import csv
    import stat

    from bot.store.sqlite import SQLiteStore

    db = tmp_path / "req.db"

    async def seed():
        store = SQLiteStore(db)
        await store.open()
        async with store.unit() as u:
            await u.create_request("telegram", "1", "muaraenim", "16.04",
                                   {"applicant_name": "Siti Aminah", "relation": "anak", "phone": "+6281234567890",
                                    "address": "Jl. Merdeka 5", "place": "Lahat", "condition": "stroke",
                                    "preferred_day": "Senin"})
            req = await u.create_request("web", "2", "palembang", "16.71",
                                         {"applicant_name": "Budi", "relation": "ayah", "phone": "+6281300000000",
                                          "address": "Jl. Sudirman 1", "place": "Plaju", "condition": "lumpuh",
                                          "preferred_day": "Rabu"})
            await u.set_request_status(req.ref, "claimed", "Petugas A (9)")
        await store.close()

    asyncio.run(seed())
    env = {"MIA_DB_PATH": str(db)}
    listed = run(["requests", "list", "--office", "muaraenim"], env_extra=env)
    assert listed.returncode == 0 and "Siti Aminah" in listed.stdout and "Budi" not in listed.stdout
    claimed = run(["requests", "list", "--status", "claimed"], env_extra=env)
    assert "Budi" in claimed.stdout and "Siti" not in claimed.stdout
    out = tmp_path / "export" / "requests.csv"
    exported = run(["requests", "export", "--csv", str(out)], env_extra=env)
    assert exported.returncode == 0, exported.stderr
    rows = list(csv.DictReader(out.open(encoding="utf-8")))
    assert [r["applicant_name"] for r in rows] == ["Siti Aminah", "Budi"]
    assert rows[1]["claimed_by"] == "Petugas A (9)" and rows[0]["phone"] == "+6281234567890"
    assert stat.S_IMODE(out.stat().st_mode) == 0o600  # personal data: owner only


@pytest.mark.parametrize("env, missing", [
    ({"WHATSAPP_ACCESS_TOKEN": "EAAG-x", "WHATSAPP_APP_SECRET": "s"},
     "WhatsApp is partly configured; missing WHATSAPP_VERIFY_TOKEN, WHATSAPP_PHONE_NUMBER_ID"),
    ({"TELEGRAM_BOT_TOKEN": "123456:T", "TELEGRAM_WEBHOOK_URL": "https://mia.example/telegram"},
     "Telegram is partly configured; missing TELEGRAM_WEBHOOK_SECRET"),
])
def test_run_refuses_a_partly_configured_channel_and_names_what_is_missing(tmp_path, env, missing):
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("TELEGRAM_", "WHATSAPP_"))}
    out = subprocess.run(mia_command() + ["run"], capture_output=True, text=True, cwd=ROOT, timeout=60,
                         env=dict(clean, MIA_DB_PATH=str(tmp_path / "mia.db"), MIA_WEB_PORT="0", **env))
    assert out.returncode == 1
    assert f"MIA cannot start: {missing}" in out.stderr
    assert "123456:T" not in out.stdout + out.stderr and "EAAG-x" not in out.stdout + out.stderr


async def test_db_migrate_brings_either_back_end_up_to_date(tmp_path):
    """An operator rolling out a new version runs `mia db migrate` once, before the workers."""
    from bot.store.postgres_schema import MIGRATIONS as PG
    from bot.store.sqlite_schema import MIGRATIONS as SQLITE
    from tests.test_store_contract import postgres_database

    db = tmp_path / "fresh.db"
    out = run(["db", "migrate"], env_extra={"MIA_DB_PATH": str(db), "MIA_DATABASE_URL": ""})
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == f"Database {db}: schema version {len(SQLITE)}, up to date."
    async with postgres_database() as url:
        out = run(["db", "migrate"], env_extra={"MIA_DATABASE_URL": url.replace("postgres@", "postgres:pw@")})
        assert out.returncode == 0, out.stderr
        assert f"schema version {len(PG)}, up to date." in out.stdout and "pw" not in out.stdout


def test_mia_refuses_to_start_with_a_template_that_cannot_render(content_copy):
    """A mistyped variable would give citizens a server error instead of the answer: MIA refuses to
    start and names the file and line, as a live reload refuses the same edit."""
    path = content_copy / "responses" / "id" / "_choose_office.j2"
    path.write_text(path.read_text(encoding="utf-8").replace("{% if office %}", "{% if ofice %}"), encoding="utf-8")
    out = run(["ask", "biaya paspor"], env_extra={"MIA_CONTENT_DIR": str(content_copy)})
    assert out.returncode == 1 and "Rp" not in out.stdout
    assert out.stderr.count(f"{path}:2: cannot render: 'ofice' is undefined") == 1


def test_a_mistyped_office_in_the_reports_is_named_not_an_empty_log(tmp_path):
    env = {"MIA_DB_PATH": str(tmp_path / "mia.db")}
    for args in (["report", "unanswered", "--office", "muaraenm"], ["review", "--list", "--office", "plembang"]):
        out = run(args, env_extra=env)
        assert out.returncode == 2 and "unknown office" in out.stderr and "muaraenim" in out.stderr
