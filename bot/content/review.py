"""The operators' review: what citizens asked that MIA did not understand, chose from a menu, or
said did not help; grouped, with MIA's suggestion; a confirmed group becomes an intent example."""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from bot.core.content import Content
from bot.content.editing import EditError, add_example, restore
from bot.core.nlu.normalize import clean, expand_slang
from bot.core.privacy import example_text
from bot.content.reports import Group, group_unanswered

KINDS = {"not_helpful": "said 'not helpful'", "menu_choice": "chose in a menu", "menu": "got a menu",
         "fallback": "not understood"}


@dataclass
class Suggestion:
    """The intent MIA suggests for a group and why."""

    intent: str | None
    why: str


def groups_to_review(rows: list[dict], content: Content) -> list[Group]:
    """Open review rows grouped by meaning and wording (largest first)."""
    embedder = content.matcher.embedder
    lexicon = content.lexicon
    return group_unanswered(rows, normalize=lambda t: " ".join(expand_slang(clean(t).split(), lexicon)),
                            embed=embedder.embed if embedder is not None else None)


def suggest(group: Group, content: Content) -> Suggestion:
    """What the citizens chose in menus, else what MIA makes of the example now (never the answer
    a citizen said did not help)."""
    chosen = Counter(r["chosen"] for r in group.rows if r.get("chosen") and r["chosen"] != "human_handoff")
    if chosen:
        intent, n = chosen.most_common(1)[0]
        return Suggestion(intent, f"{n} citizen(s) chose it in a menu")
    rejected = {r["answered"] for r in group.rows if r.get("answered")} | {"human_handoff"}
    guesses: Counter = Counter()
    for r in group.rows:  # what MIA thought when the citizen wrote (the text it read was not masked yet)
        best = next((c for c, _ in r["candidates"] if c not in rejected and c in content.intents.ids), None)
        if best:
            guesses[best] += 1
    if guesses:
        intent, n = guesses.most_common(1)[0]
        return Suggestion(intent, f"MIA's best guess for {n} of {group.count}")
    return Suggestion(None, "no suggestion")


def describe(group: Group) -> str:
    """"3 chose in a menu, 1 said 'not helpful'"."""
    kinds = Counter(r["kind"] for r in group.rows)
    return ", ".join(f"{n} {KINDS.get(k, k)}" for k, n in kinds.most_common())


async def confirm(store, content_dir: Path, group: Group, intent: str, by: str, check) -> str:
    """Add the group's example (masked data left out) to `intent`, if the content still passes
    `check(content_dir)`; mark the group's rows confirmed. Returns what happened, for the operator."""
    text = example_text(group.example)
    if len(text.split()) < 2:
        return "Not added: too little is left of the message once names and numbers are left out."
    try:
        path, original = await asyncio.to_thread(add_example, Path(content_dir) / "intents", intent, text)
    except EditError as exc:
        return f"Not added: {exc}."
    report = await asyncio.to_thread(check, content_dir)
    if report.errors:
        await asyncio.to_thread(restore, path, original)
        first = report.errors[0]
        return f"Not added: the content would fail its check ({first}). {path.name} is unchanged."
    await store.decide_review([r["id"] for r in group.rows], "confirmed", intent, by)
    await store.add_confirmed_example(text, intent, by)
    return f"Added to {intent} in {path.name}: \"{text}\". A running MIA picks it up within seconds."


async def drop(store, group: Group, by: str) -> str:
    n = await store.decide_review([r["id"] for r in group.rows], "dropped", None, by)
    return f"Dropped {n} message(s)."
