"""Every example in docs/operators.md is carried out here, on a copy of the content."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess

import yaml
from ruamel.yaml import YAML

from bot.core.assistant import Assistant
from bot.content.checks import check_content
from bot.core.content import Content
from bot.content.editing import add_example
from bot.store.base import ConversationState
from tests.conftest import ROOT, mia_command

DOC = ROOT / "docs" / "operators.md"
BLOCK = re.compile(r"```(\w+)\n(.*?)```", re.S)


def blocks() -> list[tuple[str, str]]:
    return BLOCK.findall(DOC.read_text(encoding="utf-8"))


def _append(path, key: str, items: list) -> None:
    y = YAML()
    y.preserve_quotes = True
    y.indent(mapping=2, sequence=4, offset=2)
    data = y.load(path.read_text(encoding="utf-8"))
    data[key].extend(items)
    with path.open("w", encoding="utf-8") as f:
        y.dump(data, f)


def test_every_documented_edit_and_command_works(content_copy, tmp_path):
    env = dict(os.environ, MIA_CONTENT_DIR=str(content_copy), MIA_DB_PATH=str(tmp_path / "doc.db"))
    applied = {"sh": 0, "yaml": 0, "jinja": 0}
    for lang, body in blocks():
        first = body.splitlines()[0]
        if lang == "sh":
            for line in body.strip().splitlines():
                assert line.startswith("mia "), line
                args = shlex.split(line)[1:]
                # A hang guard, not a speed goal: `mia intents test` on the field set takes about 45 s on a
                # quiet 2-core machine, and past 120 s on a busy one.
                out = subprocess.run(mia_command() + args, cwd=ROOT, env=env, capture_output=True, text=True,
                                     timeout=600)
                assert out.returncode == 0, f"{line}\n{out.stdout}\n{out.stderr}"
                applied["sh"] += 1
        elif lang == "yaml":
            data = yaml.safe_load(body)
            if first.startswith("# contoh untuk intent:"):
                intent = first.split(":", 1)[1].strip()
                for text in data:
                    add_example(content_copy / "intents", intent, text)
            elif first.startswith("# intent baru"):
                target = re.search(r"intents/\S+\.yaml", first).group(0)
                _append(content_copy / target, "intents", data)
            elif first.startswith("# ubah kantor") or first.startswith("# ubah unit layanan"):
                key = "offices" if first.startswith("# ubah kantor") else "service_points"
                offices = content_copy / "data" / "offices.yaml"
                current = yaml.safe_load(offices.read_text(encoding="utf-8"))
                moved = {c for change in data for c in change.get("regencies", ())}
                for office in current["offices"]:
                    office["regencies"] = [c for c in office["regencies"] if c not in moved]
                for change in data:
                    target = next(o for o in current[key] if o["id"] == change["id"])
                    target.update(change)
                offices.write_text(yaml.safe_dump(current, allow_unicode=True, sort_keys=False), encoding="utf-8")
            elif first.startswith("# ubah fakta"):
                path = content_copy / "data" / "facts.yaml"
                current = yaml.safe_load(path.read_text(encoding="utf-8"))
                for name, change in data.items():
                    current["facts"][name].update(change)
                path.write_text(yaml.safe_dump(current, allow_unicode=True, sort_keys=False), encoding="utf-8")
            elif first.startswith("# pesan warga"):
                field = content_copy / "field.yaml"
                field.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
                out = subprocess.run(mia_command() + ["intents", "test", str(field)], cwd=ROOT, env=env,
                                     capture_output=True, text=True, timeout=120)
                assert out.returncode == 0 and "Intent accuracy" in out.stdout, out.stderr
            else:
                raise AssertionError(f"a YAML example without an instruction line: {first}")
            applied["yaml"] += 1
        elif lang == "jinja":
            m = re.match(r"\{# (responses/\S+\.j2) #\}", first)
            if m:
                (content_copy / m.group(1)).write_text(body.split("\n", 1)[1], encoding="utf-8")
            else:  # a fragment: it must at least compile and render with the facts
                from jinja2.sandbox import ImmutableSandboxedEnvironment

                kb = Content.load(ROOT).knowledge
                ImmutableSandboxedEnvironment().from_string(body).render(kb=kb, office=kb.offices[0])
            applied["jinja"] += 1
    assert applied["sh"] >= 6 and applied["yaml"] == 6 and applied["jinja"] == 3, applied

    report = check_content(content_copy)
    assert not report.errors, [str(p) for p in report.errors]
    assistant = Assistant(Content.load(content_copy), store=None)
    parking = assistant.respond("di kanim lahat ada parkiran mobil gak", ConversationState())
    assert parking.intent == "office_parking" and "belum tercantum" in parking.replies[0].text
    assert "Muaraenim" in parking.replies[0].text
    moved = assistant.respond("kantor imigrasi utk muratara dimana", ConversationState())
    assert moved.office == "lubuklinggau"
    sekayu = assistant.respond("bisa bikin e paspor di sekayu gak", ConversationState()).replies[0].text
    assert "Sejak Desember 2026" in sekayu and "Kanwil Sumsel, Desember 2026" in sekayu
    ready = assistant.respond("paspor jadi brp hari", ConversationState()).replies[0].text
    assert "3 hari kerja" in ready and "Ditjen Imigrasi, 2026" in ready
    fees = assistant.respond("harga e-paspor 10 tahun brp", ConversationState())
    assert fees.intent == "passport_fees"
    out = subprocess.run(mia_command() + ["ask", "--json", "ongkos bikin e-paspor skrg brp"], cwd=ROOT, env=env,
                         capture_output=True, text=True)
    assert json.loads(out.stdout)["intent"] == "passport_fees"
