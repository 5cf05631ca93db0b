"""The interface of a multi-turn dialogue flow (a form, a handoff) that the assistant runs.

A flow is registered with the assistant; while it is active (its key is in the conversation
state) it receives the citizen's messages; one of its intents starts it. Adding a flow is one
new module and one line in the assistant's list of flows.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:  # pragma: no cover
    from bot.core.messages import Reply
    from bot.core.nlu.matcher import Understanding
    from bot.core.turn import Outcome, PlaceContext, Turn
    from bot.store.base import ConversationState


class Flow(Protocol):
    """A dialogue that spans several messages."""

    key: str  # the conversation data key that holds the flow's state while it is active
    intents: frozenset[str]  # the intents whose answer starts it
    # True: the citizen's messages reach the flow as written, before MIA reads them (a handoff
    # relays them to staff); False: the flow receives MIA's understanding of each (a form).
    raw: bool

    def active(self, state: "ConversationState") -> bool:
        """True while the flow holds the conversation."""

    def start(self, turn: "Turn", intent: str, u: "Understanding | None", place: "PlaceContext") -> "Outcome":
        """Begin: `intent` is the one understood, `place` where the message (or the chat) points."""

    def turn(self, turn: "Turn", u: "Understanding | None") -> "Outcome":
        """One message while active (`u` is None for a raw flow)."""

    def expire(self, turn: "Turn") -> "tuple[Reply, ...]":
        """Drop the flow's state if it timed out; what the citizen is told about it."""

    def cancel(self, state: "ConversationState") -> bool:
        """/batal: close the flow; True if it was open."""
