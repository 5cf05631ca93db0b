"""Operators change office assignment by editing data only."""

from __future__ import annotations

import yaml

from bot.core.assistant import Assistant
from bot.core.content import Content
from bot.store.base import ConversationState


def test_third_office_takes_its_area_by_data_edit_only(content_copy):
    """The day the Lubuklinggau office's area is published, an operator moves the regencies."""
    path = content_copy / "data" / "offices.yaml"
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    moved = ["16.73", "16.05", "16.13"]  # Lubuklinggau, Musi Rawas, Musi Rawas Utara
    before = Assistant(Content.load(content_copy), store=None).respond("kantor imigrasi utk muratara dimana",
                                                                       ConversationState())
    assert before.office == "muaraenim"  # until then: the office of record, and a word about the new one
    for office in data["offices"]:
        office["regencies"] = [c for c in office["regencies"] if c not in moved]
        if office["id"] == "lubuklinggau":
            office["regencies"] = moved
            office["mention_for"] = []
            office["source"] = "test: the published area"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")

    assistant = Assistant(Content.load(content_copy), store=None)
    moved_answer = assistant.respond("kantor imigrasi utk muratara dimana", ConversationState())
    assert moved_answer.office == "lubuklinggau"
    assert "Kantor Imigrasi Kelas III Non TPI Lubuklinggau" in moved_answer.replies[0].text
    assert "belum diumumkan" not in moved_answer.replies[0].text
    stays = assistant.respond("kantor imigrasi utk lahat dimana", ConversationState())
    assert stays.office == "muaraenim"
    listing = assistant.respond("ada berapa kantor imigrasi di sumsel", ConversationState())
    assert "Lubuklinggau" in listing.replies[0].text


def test_regency_served_twice_is_an_error(content_copy):
    import pytest

    from bot.core.yamlfile import ContentErrors

    path = content_copy / "data" / "offices.yaml"
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    data["offices"][0]["regencies"].append("16.04")  # Lahat also in palembang
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    with pytest.raises(ContentErrors) as err:
        Content.load(content_copy)
    assert "16.04" in str(err.value)
