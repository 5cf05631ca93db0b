"""Hostile input: any text, any length, any button payload: no exception, bounded time, escaped HTML."""

from __future__ import annotations

import time

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.core.assistant import Assistant
from bot.core.flows import forms
from bot.core.flows.lapor_rakit import RegionResolver
from bot.core.nlu.normalize import clean
from bot.core.nlu.places import tokens_of
from bot.store.base import CallbackRequest, ConversationState

TEXT = st.text(st.characters(codec="utf-8"), max_size=600)
SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@SETTINGS
@given(TEXT)
def test_understanding_any_text(content, text):
    started = time.perf_counter()
    u = content.matcher.understand(text)
    assert time.perf_counter() - started < 1.0
    assert 0.0 <= u.confidence <= 1.0
    assert len(clean(text).split()) <= 48


@SETTINGS
@given(TEXT)
def test_places_any_text(content, text):
    result = content.places.find(tokens_of(text))
    for m in result.matches:
        assert content.knowledge.office_for(m.place.regency_code) is not None


@SETTINGS
@given(TEXT, st.sampled_from([None, "office_for_region", "handoff_region"]))
def test_respond_any_text_in_any_state(content, text, pending):
    outcome = Assistant(content, None).respond(text, ConversationState(pending=pending))
    assert outcome.replies and all(r.text.strip() for r in outcome.replies)
    assert outcome.office in (None, "palembang", "muaraenim")


@SETTINGS
@given(TEXT)
def test_form_validators_any_text(content, text):
    resolver = RegionResolver(content)
    for step in forms.STEPS:
        answer = step.validate(text, resolver)
        assert (answer.error is None) != (answer.value is None) or answer.error is not None


@SETTINGS
@given(st.dictionaries(st.sampled_from(["applicant_name", "relation", "phone", "address", "place", "condition",
                                        "preferred_day"]), TEXT, min_size=7, max_size=7))
def test_staff_notification_never_carries_citizen_markup(content, fields):
    request = CallbackRequest("RKT-2026-000001", "telegram", "1", "muaraenim", "16.04", fields, "open", 0.0)
    html = content.responses.render("id", "staff_request", kb=content.knowledge,
                                    office=content.knowledge.office("muaraenim"), request=request)
    from tests.fakes.botapi import parse_html

    text, entities = parse_html(html)  # Telegram would accept it
    flat = "".join(text.split())
    for value in fields.values():
        assert "".join(value.split()) in flat  # shown as typed (white space aside), never as markup
    citizen_spans = [e for e in entities if e["type"] != "bold"]
    assert citizen_spans == []  # no link, code or other markup can come from a citizen
