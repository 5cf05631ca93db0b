"""Topics: what names an intent in a citizen's words, and what each answer's lines say (follow-ups)."""

from __future__ import annotations

import math
from collections import Counter

from jinja2 import TemplateError

from bot.core.content import Content
from bot.core.nlu.matcher import MARKERS
from bot.core.turn import reply
from bot.store.base import ConversationState


def _root(word: str) -> str:
    """A word without the clitic "-nya" ("syaratnya" -> "syarat"), as a topic's words are compared;
    the model itself keeps the clitic (reading it away everywhere cost understanding: docs/benchmarks.md)."""
    return word[:-3] if word.endswith("nya") and len(word) > 5 else word


class Topics:
    """What names a topic and what an answer says, for one content snapshot.

    A topic is named by its own keywords (intents/*.yaml): those no other intent lists, as MIA
    reads them. A word weighs as much as it is rare among the intents' examples (its inverse
    document frequency over intents): "sabtu" tells more than "paspor" or "saya".
    """

    def __init__(self, content: Content):
        self.content = content
        matcher = content.matcher
        own = {it.id: tuple(k for k in dict.fromkeys(" ".join(matcher.prepare(k).tokens) for k in it.keywords) if k)
               for it in content.intents.intents}
        owners = Counter(k for keywords in own.values() for k in keywords)
        self.keywords = {intent: tuple(k for k in keywords if owners[k] == 1) for intent, keywords in own.items()}
        users: dict[str, set[str]] = {}  # word -> the intents whose examples use it
        for item, example in zip(matcher.items, matcher.item_examples):
            if example is not None and example.intent is not None:
                for word in item.lexical.split():
                    users.setdefault(word, set()).add(example.intent)
        n = len(content.intents.intents)
        self._rarest = math.log(n + 1)  # a word no example uses
        self._weight = {w: math.log((n + 1) / (len(intents) + 1)) for w, intents in users.items()}
        self._lines: dict[str, tuple[frozenset[str], ...]] = {}
        self._titles: dict[str, frozenset[str]] = {}

    def weight(self, word: str) -> float:
        return self._rarest if word in MARKERS else self._weight.get(word, self._rarest)

    def named(self, text: str, intent: str) -> bool:
        """True when the (normalized) message names the topic by one of its own keywords."""
        return bool(self._naming(text, intent))

    def _naming(self, text: str, intent: str | None) -> set[str]:
        """The words of the topic's own keywords that the message uses ("syaratnya" uses "syarat")."""
        padded = f" {text} "
        bare = " " + " ".join(_root(w) for w in text.split()) + " "
        return {w for k in self.keywords.get(intent, ()) if f" {k} " in padded or f" {k} " in bare
                for w in k.split()}

    def echo(self, text: str, answer: str, topic: str | None) -> float:
        """How much of what the (normalized) message asks, by weight, one line of the answer of
        intent `answer` says, 0..1: 1.0 for "sabtu minggu diitung ga" after "Sabtu dan Minggu tidak
        dihitung".

        The line must speak of what the message names (the words of its own topic's keywords), and
        what the message asks about it is the rest: "ada layanan sabtu minggu?" asks what that line
        does not say. A place is asked about and never in a line; a year is left out ("terbit 2008"
        against "terbit setelah 2009"). A line naming `topic` by the title word the message uses
        points there instead, as a list of services does ("lapor tunggu itu apa?"); "dendanya brp"
        after the lost passport asks what its line on the fine says, "biaya" in it or not."""
        naming = self._naming(text, topic)
        words = text.split()
        asked = [w for w in words if w not in naming and not w.isdigit()]
        total = sum(self.weight(w) for w in asked)
        if not total:
            return 0.0
        title = (self._title_words(topic) if topic else frozenset()) & set(words)

        def said(line: frozenset[str]) -> float:  # "dendanya" is said by a line with "denda"
            return sum(self.weight(w) for w in asked if w not in MARKERS and (w in line or _root(w) in line))

        return max((said(line) / total for line in self.lines(answer) if naming <= line and not title & line),
                   default=0.0)

    def _title_words(self, intent: str) -> frozenset[str]:
        """The rarest word of each of the intent's titles: what names it in a list."""
        if intent not in self._titles:
            target, out = self.content.intents.get(intent), set()
            for title in target.title.values() if target is not None else ():
                words = [w for w in self.content.matcher.prepare(title).tokens if w not in MARKERS]
                if words:
                    out.add(max(words, key=self.weight))
            self._titles[intent] = frozenset(out)
        return self._titles[intent]

    def lines(self, intent: str) -> tuple[frozenset[str], ...]:
        """The answer's lines in both languages, each as the words MIA reads (no place: what every
        citizen reads)."""
        if intent not in self._lines:
            content, texts = self.content, []
            target = content.intents.get(intent)
            for lang in ("id", "en") if target is not None else ():
                try:
                    texts.append(reply(content, ConversationState(lang=lang), target.response, intent, 1.0)
                                 .replies[0].text)
                except TemplateError:  # an answer that needs its conversation (a request) says nothing here
                    continue
            self._lines[intent] = tuple(frozenset(content.matcher.prepare(line).tokens)
                                        for t in texts for line in t.splitlines() if line.strip())
        return self._lines[intent]
