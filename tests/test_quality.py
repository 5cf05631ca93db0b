"""The quality bar on the labelled set, held out from the intent examples."""

from __future__ import annotations

import pytest

from bot.content.evaluation import evaluate, load_cases
from bot.core.nlu.normalize import clean
from tests.conftest import ROOT

LABELLED = ROOT / "tests" / "data" / "labelled.yaml"


@pytest.fixture(scope="module")
def result(content):
    from bot.core.assistant import Assistant

    return evaluate(Assistant(content, store=None), load_cases(LABELLED))


def test_labelled_set_is_large_and_held_out(content):
    cases = load_cases(LABELLED)
    assert len(cases) >= 300
    examples = {clean(e.text) for it in content.intents.intents for e in it.examples}
    copied = [c.text for c in cases if clean(c.text) in examples]
    assert not copied, f"labelled messages copied from intent examples: {copied[:5]}"


def test_intent_accuracy(result):
    assert result.accuracy >= 0.95, [c for c in result.confusions][:10]


def test_never_a_wrong_office(result):
    assert result.wrong_office == []
    assert result.office_accuracy == 1.0, result.missing_office


def test_out_of_scope_falls_back(result):
    assert result.out_of_scope_rate >= 0.90
