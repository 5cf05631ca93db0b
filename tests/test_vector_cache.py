"""The sentence vectors of the examples are built once and kept: a first start after a content
change that is killed halfway (a supervisor's start-up timeout, a crash loop) leaves its work
on disk, and the next start embeds only what is left."""

from __future__ import annotations

import numpy as np
import pytest

from bot.core.nlu import embedding
from bot.core.nlu.embedding import BATCH, VectorCache


class CountingModel:
    """A stand-in for the sentence model that counts what it embeds and can die after n batches
    (the real model takes a minute over the examples: too slow to kill at a chosen moment)."""

    name = "counting-test-model"
    dim = 4

    def __init__(self, die_after: int | None = None):
        self.embedded: list[str] = []
        self.die_after = die_after
        self.calls = 0

    def embed(self, texts):
        if self.die_after is not None and self.calls == self.die_after:
            raise KeyboardInterrupt  # the process is gone: nothing after this line runs
        self.calls += 1
        self.embedded.extend(texts)
        rows = np.array([[len(t), t.count("a"), 1.0, 0.0] for t in texts], dtype=np.float32)
        return rows / np.linalg.norm(rows, axis=1, keepdims=True)


EXAMPLES = [f"contoh pertanyaan nomor {i} tentang paspor" for i in range(10 * BATCH)]


def test_a_start_killed_while_embedding_leaves_its_work_to_the_next(tmp_path, monkeypatch):
    monkeypatch.setattr(embedding, "SAVE_EVERY_SECONDS", 0.0)
    dying = CountingModel(die_after=6)
    with pytest.raises(KeyboardInterrupt):
        VectorCache(tmp_path, dying).vectors(EXAMPLES)
    assert len(dying.embedded) == 6 * BATCH

    model = CountingModel()
    vectors = VectorCache(tmp_path, model).vectors(EXAMPLES)
    # At most the batch in hand at the kill is embedded twice; the rest is read from disk.
    assert len(model.embedded) <= 5 * BATCH
    assert set(model.embedded) == set(EXAMPLES[len(EXAMPLES) - len(model.embedded):])
    assert vectors.shape == (len(EXAMPLES), 4)
    assert np.allclose(vectors, CountingModel().embed(EXAMPLES))

    again = CountingModel()
    VectorCache(tmp_path, again).vectors(EXAMPLES)
    assert again.embedded == []  # a later start embeds nothing


def test_a_short_build_writes_the_cache_once(tmp_path, monkeypatch):
    saves = []
    monkeypatch.setattr(VectorCache, "_save", lambda self: saves.append(len(self._vectors)))
    VectorCache(tmp_path, CountingModel()).vectors(EXAMPLES)
    assert saves == [len(EXAMPLES)]  # five seconds never passed: one write at the end
